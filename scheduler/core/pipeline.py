"""The scheduler's entry points: :func:`check_migration_mode` and :func:`schedule`."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from itertools import compress, repeat
from operator import add, is_not, mul, not_

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
from .placement import make_plan, place
from .state import HostState
from .weights import WEIGHTS, Scorer

# Hosts named in a "no host" message; the verdicts carry the rest.
_MESSAGE_HOSTS = 3
# A verdict from its five fields without the Python-level NamedTuple constructor: a decision makes one per host.
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
    """
    cluster = cluster or ClusterConfig()
    if error := check_migration_mode(vm, request):
        return Decision((), (), None, None, error)
    if request.destination is not None:
        hosts = [h for h in hosts if h.id == request.destination]
        if not hosts:
            message = f"host {request.destination} is not in the VM's cluster"
            return Decision((), (), None, None, SchedulingError("unknown_host", message))

    plan = make_plan(vm, request, cluster)
    judges = [(name, judge) for name, factory in FILTERS if (judge := factory(plan)) is not None]
    scorers = [
        (factor, scorer)
        for name, factory in WEIGHTS
        if (factor := cluster.factor(name)) and (scorer := factory(plan)) is not None
    ]

    vm_id = vm.id
    states = [h.without(vm_id) if vm_id in h.vm_ids else h for h in hosts]
    rejections = _judge(states, judges)
    passed = list(map(not_, rejections))
    positions = list(compress(range(len(states)), passed))
    eligible = list(compress(states, passed))
    totals = _totals(eligible, scorers)
    order = sorted(range(len(eligible)), key=totals.__getitem__)

    chosen: HostState | None = None
    placement: Placement | None = None
    for start, index in enumerate(order):
        result = place(plan, eligible[index])
        if isinstance(result, NoFit):
            rejections[positions[index]] = (Rejection(result.filter, result.reason),)
            continue
        chosen, placement = eligible[index], result
        order = order[start:]
        break
    else:
        order = []
    ids = [h.id for h in states]
    ranked = [positions[index] for index in order]
    verdicts = _verdicts(ids, rejections, ranked, [totals[index] for index in order])
    error = None if chosen else _no_host(vm, hosts, verdicts)
    return Decision(verdicts, tuple(ids[p] for p in ranked), chosen.id if chosen else None, placement, error)


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
    ids: Sequence[int], rejections: Sequence[tuple[Rejection, ...]], ranked: Sequence[int], scores: Sequence[float]
) -> tuple[HostVerdict, ...]:
    """A verdict per host in input order; ``ranked`` are the positions of the ranked hosts, best first."""
    score_of: list[float | None] = [None] * len(ids)
    rank_of: list[int | None] = [None] * len(ids)
    for rank, (position, score) in enumerate(zip(ranked, scores, strict=True), start=1):
        score_of[position] = score
        rank_of[position] = rank
    eligible = map(is_not, rank_of, repeat(None))  # exactly the ranked hosts
    return tuple(map(_verdict, zip(ids, eligible, score_of, rank_of, rejections, strict=True)))


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
