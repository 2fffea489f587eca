"""The scheduler's entry points: :func:`check_migration_mode` and :func:`schedule`."""

from __future__ import annotations

from collections.abc import Sequence
from operator import mul

from .filters import FILTERS
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
from .weights import WEIGHTS

# Hosts named in a "no host" message; the verdicts carry the rest.
_MESSAGE_HOSTS = 3


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
    # Filter by filter over all hosts rather than host by host: each judge is a list comprehension, and
    # only failing hosts allocate anything.
    failures: dict[int, list[Rejection]] = {}
    for name, judge in judges:
        for position, reason in [(i, r) for i, r in enumerate(judge(states)) if r is not None]:
            failures.setdefault(position, []).append(Rejection(name, reason))
    positions = [i for i in range(len(states)) if i not in failures]
    eligible = [states[i] for i in positions]
    if scorers:
        factors = [factor for factor, _ in scorers]
        columns = [scorer(eligible) for _, scorer in scorers]
        totals = [sum(map(mul, factors, row)) for row in zip(*columns, strict=True)]
    else:
        totals = [0.0] * len(eligible)
    order = sorted(range(len(eligible)), key=totals.__getitem__)

    verdicts: list[HostVerdict | None] = [None] * len(states)
    for position, failed in failures.items():
        verdicts[position] = HostVerdict(states[position].id, False, None, None, tuple(failed))
    chosen: HostState | None = None
    placement: Placement | None = None
    for start, index in enumerate(order):
        result = place(plan, eligible[index])
        if isinstance(result, NoFit):
            failed = (Rejection(result.filter, result.reason),)
            verdicts[positions[index]] = HostVerdict(eligible[index].id, False, None, None, failed)
            continue
        chosen, placement = eligible[index], result
        order = order[start:]
        break
    else:
        order = []
    for rank, index in enumerate(order, start=1):
        verdicts[positions[index]] = HostVerdict(eligible[index].id, True, totals[index], rank)
    error = None if chosen else _no_host(vm, hosts, verdicts)
    ranked = tuple(eligible[index].id for index in order)
    return Decision(tuple(verdicts), ranked, chosen.id if chosen else None, placement, error)


def _no_host(vm: VMRequest, hosts: Sequence[HostState], verdicts: list[HostVerdict]) -> SchedulingError:
    if not hosts:
        return SchedulingError("no_host", f"no host to run VM {vm.name} on: the cluster has no hosts")
    details = [
        f"host {host.name} did not satisfy "
        + ", ".join(f"filter {r.filter} because {r.reason}" for r in verdict.rejections)
        for host, verdict in zip(hosts[:_MESSAGE_HOSTS], verdicts, strict=False)
    ]
    more = len(hosts) - _MESSAGE_HOSTS
    tail = f"; and {more} more host{'s' if more > 1 else ''}" if more > 0 else ""
    return SchedulingError(
        "no_host",
        f"There is no host that satisfies the scheduling constraints for VM {vm.name}: " + "; ".join(details) + tail,
    )
