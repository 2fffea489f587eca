"""The scheduler's entry points: :func:`check_migration_mode` and :func:`schedule`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from itertools import compress, repeat
from operator import add, is_not, mul, not_

from .affinity import groups_of, members_where
from .filters import FILTERS, Judge
from .fit import NoFit
from .model import (
    ClusterConfig,
    Decision,
    HostVerdict,
    Placement,
    Rejection,
    ScheduleRequest,
    SchedulingError,
    VMRequest,
)
from .placement import Plan, make_plan, place
from .relaxation import FIXED_FILTERS, SETTINGS, relax, suspension_sets
from .state import HostState
from .weights import WEIGHTS, Scorer

# Hosts named in a "no host" message; the verdicts carry the rest.
_MESSAGE_HOSTS = 3
# A verdict from its six fields without the Python-level NamedTuple constructor: a decision makes one per host.
_verdict = partial(tuple.__new__, HostVerdict)


def check_migration_mode(vm: VMRequest, request: ScheduleRequest) -> SchedulingError | None:
    """May this VM be migrated this way at all? The single rule used by the scheduler and the services.

    * "Do not allow migration" (``pinned``) refuses every migration, as oVirt's VmValidator does.
    * "Allow manual migration only" (``user_migratable``) needs ``force``: the admin's Migrate dialog and
      user-started host maintenance send it, automation (load balancing, system maintenance) does not.
    * High availability does not relax either rule: restarting an HA VM after its host failed is a
      ``start``, which is always allowed here (PinToHost then limits a pinned VM to its placement hosts).
    """
    if request.action != "migrate":
        return None
    if vm.running_on is None:
        return SchedulingError("not_running", f"VM {vm.name} is not running, so it cannot be migrated")
    if vm.migration_mode == "pinned":
        message = f"VM {vm.name} is pinned to host: its migration mode does not allow migration"
        if vm.high_availability:
            message += " (being highly available it is restarted only on its placement hosts)"
        return SchedulingError("migration_mode", message)
    if vm.migration_mode == "user_migratable" and not request.force:
        return SchedulingError(
            "migration_mode",
            f"VM {vm.name} allows manual migration only; automatic migration must pass force=True to move it "
            "(as the Migrate dialog and maintenance started by a user do)",
        )
    return None


def schedule(
    hosts: Sequence[HostState],
    vm: VMRequest,
    request: ScheduleRequest,
    cluster: ClusterConfig | None = None,
) -> Decision:
    """Judge every host (or only ``request.destination``), rank the eligible ones, place the VM on the best.

    Pure: reads the host states, returns a :class:`Decision`. The host the VM holds resources on is judged
    as if the VM were not there. Only the winner gets a full placement; should that fail, the host is
    rejected with the reason and the next one is tried.

    With ``request.allow_degraded``, a host that the whole configuration fails only for settings a suspension
    can satisfy is judged again with the fewest settings suspended that let the VM in (:mod:`.relaxation`).
    Hosts that fit the whole configuration come first, then the degraded ones, fewer suspended settings first;
    the weights order each group.
    """
    cluster = cluster or ClusterConfig()
    if error := check_migration_mode(vm, request):
        return Decision((), (), None, None, error)
    if request.member_hosts is None and (groups := groups_of(vm.id, cluster.affinity_groups)):
        request = replace(request, member_hosts=members_where(groups, hosts))
    if request.destination is not None:
        hosts = [h for h in hosts if h.id == request.destination]
        if not hosts:
            message = f"host {request.destination} is not in the VM's cluster"
            return Decision((), (), None, None, SchedulingError("unknown_host", message))

    vm_id = vm.id
    states = [h.without(vm_id) if vm_id in h.vm_ids else h for h in hosts]
    plan, judges, scorers = _prepare(vm, request, cluster)
    rejections = _judge(states, judges)
    positions = list(compress(range(len(states)), map(not_, rejections)))
    totals = _totals([states[p] for p in positions], scorers)
    # Position, score, plan, suspended settings: the candidates in the order they are tried.
    order = sorted(range(len(positions)), key=totals.__getitem__)
    candidates = [(positions[i], totals[i], plan, ()) for i in order]
    if request.allow_degraded:
        candidates += _degraded(states, vm, request, cluster, rejections)

    chosen: HostState | None = None
    placement: Placement | None = None
    for start, (position, _, host_plan, _) in enumerate(candidates):
        result = place(host_plan, states[position])
        if isinstance(result, NoFit):
            rejections[position] += (Rejection(result.filter, result.reason),)
            continue
        chosen, placement = states[position], result
        candidates = candidates[start:]
        break
    else:
        candidates = []
    ids = [h.id for h in states]
    verdicts = _verdicts(ids, rejections, candidates)
    error = None if chosen else _no_host(vm, hosts, verdicts)
    ranked = tuple(ids[position] for position, _, _, _ in candidates)
    return Decision(verdicts, ranked, chosen.id if chosen else None, placement, error)


def _prepare(
    vm: VMRequest, request: ScheduleRequest, cluster: ClusterConfig
) -> tuple[Plan, list[tuple[str, Judge]], list[tuple[float, Scorer]]]:
    """The VM's plan, the filters that apply to it and its weights with their factors."""
    plan = make_plan(vm, request, cluster)
    judges = [(name, judge) for name, factory in FILTERS if (judge := factory(plan)) is not None]
    scorers = [
        (factor, scorer)
        for name, factory in WEIGHTS
        if (factor := cluster.factor(name)) and (scorer := factory(plan)) is not None
    ]
    return plan, judges, scorers


def _degraded(
    states: Sequence[HostState],
    vm: VMRequest,
    request: ScheduleRequest,
    cluster: ClusterConfig,
    rejections: Sequence[tuple[Rejection, ...]],
) -> list[tuple[int, float, Plan, tuple[str, ...]]]:
    """The hosts the whole configuration fails that take the VM with settings suspended, each with the first
    set (fewest settings) that lets it in, as candidates of :func:`schedule`: fewer settings first, then by
    score."""
    open_ = [p for p, found in enumerate(rejections) if found and not any(r.filter in FIXED_FILTERS for r in found)]
    out = []
    for group in suspension_sets(vm) if open_ else ():
        relaxed = relax(vm, group)
        plan, judges, scorers = _prepare(relaxed, request, cluster)
        found = _judge([states[p] for p in open_], judges)
        fitting = [p for p, r in zip(open_, found, strict=True) if not r]
        suspended = tuple(s for s in SETTINGS if s in relaxed.suspended)
        totals = _totals([states[p] for p in fitting], scorers)
        out += [(p, total, plan, suspended) for p, total in zip(fitting, totals, strict=True)]
        open_ = [p for p, r in zip(open_, found, strict=True) if r]
        if not open_:
            break
    return sorted(out, key=lambda c: (len(c[3]), c[1]))


def _judge(states: Sequence[HostState], judges: Sequence[tuple[str, Judge]]) -> list[tuple[Rejection, ...]]:
    """Every filter's rejections per host, in filter order; () for a host that every filter passes."""
    rejections: list[tuple[Rejection, ...]] = [()] * len(states)
    for name, judge in judges:
        # Hosts rejected for the same reason share one rejection: a large cluster repeats a few reasons often.
        alike: dict[str, tuple[Rejection]] = {}
        for position, reason in judge(states).items():
            if (rejection := alike.get(reason)) is None:
                rejection = alike[reason] = (Rejection(name, reason),)
            rejections[position] += rejection
    return rejections


def _verdicts(
    ids: Sequence[int],
    rejections: Sequence[tuple[Rejection, ...]],
    candidates: Sequence[tuple[int, float, Plan, tuple[str, ...]]],
) -> tuple[HostVerdict, ...]:
    """A verdict per host in input order; ``candidates`` are the ranked hosts, best first."""
    score_of: list[float | None] = [None] * len(ids)
    rank_of: list[int | None] = [None] * len(ids)
    suspended_of: list[tuple[str, ...]] = [()] * len(ids)
    for rank, (position, score, _, suspended) in enumerate(candidates, start=1):
        score_of[position] = score
        rank_of[position] = rank
        if suspended:
            suspended_of[position] = suspended
    eligible = map(is_not, rank_of, repeat(None))  # exactly the ranked hosts
    return tuple(map(_verdict, zip(ids, eligible, score_of, rank_of, rejections, suspended_of, strict=True)))


def _totals(eligible: Sequence[HostState], scorers: Sequence[tuple[float, Scorer]]) -> list[float]:
    """Each host's sum of factor x weight, added weight by weight in the same order as a per-host sum."""
    totals = [0.0] * len(eligible)
    for factor, scorer in scorers:
        totals = list(map(add, totals, map(mul, repeat(factor), scorer(eligible))))
    return totals


def _no_host(vm: VMRequest, hosts: Sequence[HostState], verdicts: list[HostVerdict]) -> SchedulingError:
    """Why no host qualifies, naming a few hosts: the VM's own first (its placement hosts, then the host it runs
    on), all of them, since their reasons are the ones to act on; then others in input order."""
    if not hosts:
        return SchedulingError("no_host", f"no host to run VM {vm.name} on: the cluster has no hosts")

    def own_first(pair: tuple[HostState, HostVerdict]) -> int:
        host_id = pair[0].id
        return 0 if host_id in vm.placement_hosts else 1 if host_id == vm.running_on else 2

    judged = sorted(zip(hosts, verdicts, strict=True), key=own_first)
    named = max(_MESSAGE_HOSTS, sum(own_first(pair) < 2 for pair in judged))
    details = [
        f"host {host.name} did not satisfy "
        + ", ".join(f"filter {r.filter} because {r.reason}" for r in verdict.rejections)
        for host, verdict in judged[:named]
    ]
    more = len(hosts) - named
    tail = f"; and {more} more host{'s' if more > 1 else ''}" if more > 0 else ""
    return SchedulingError(
        "no_host",
        f"There is no host that satisfies the scheduling constraints for VM {vm.name}: " + "; ".join(details) + tail,
    )
