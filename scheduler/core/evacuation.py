"""Evacuation planning: where each VM of a host goes when the host is emptied, the VMs placed together.

A VM moves with the placement :func:`~scheduler.core.pipeline.schedule` would give it on its destination,
judged against the hosts as the moves planned before it leave them, so no pCPU, hugepage or MiB is promised
twice; or it stays, with the reason. A VM allowed to run degraded takes, on a host that does not fit its whole
configuration, the fewest settings suspended that let it in, as the scheduler does. The best plan leaves the
fewest VMs behind, then degrades the fewest VMs, then suspends the fewest settings, then has the lowest sum of
the movers' scores (each VM's score on its destination at the moment it is placed). Affinity rules are judged
against where the VMs run when the plan starts.

The VMs are planned largest first (most vCPUs, then most memory, then lowest id): the hard ones get the
most choice. The search is a depth-first branch and bound over "VM -> host or stays" in that order; at each
step the hosts are tried cheapest first (ties: lower host id), staying last, so the first plan found is
the scheduler's own one-by-one choice and, among equally good plans, the one that deviates from it latest
is kept. Two bounds rest on a host only filling up as VMs are added to it — a host a VM does not pass now
it never passes later, and no weight improves as a host fills — so from any step, a VM that no host takes
now will stay, and every other VM will cost at least its cheapest option now, component by component (a
host filling up can only move a VM from its whole configuration to more settings suspended). Paths that leave
the hosts alike (identical VMs swapped) are explored once.

With up to :data:`EXACT_VMS` VMs to move and :data:`EXACT_HOSTS` candidate hosts the search is complete,
hence optimal, unless it takes more than :data:`EXACT_STEPS` steps (the plan then says it is not proven
exact). Beyond, it is a limited-discrepancy search: each VM tries only its
:data:`HEURISTIC_CHOICES` best hosts besides staying, a plan departs from the best-scored option at most
:data:`HEURISTIC_DISCREPANCIES` times, and the search stops after :data:`HEURISTIC_STEPS` steps, keeping
the best plan found. A VM the search leaves behind that fits once the plan is made is then moved.
``benchmarks/bench_evacuation.py`` measures how far that is from the exact plan.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from math import inf
from typing import Literal

from .affinity import members_where
from .filters import FILTERS, Judge
from .fit import NoFit
from .model import Allocation, ClusterConfig, Placement, ScheduleRequest, VMRequest
from .pipeline import check_migration_mode, schedule
from .placement import Plan, make_plan, place
from .relaxation import relax, suspension_sets
from .state import HostState, build_host_state
from .weights import WEIGHTS, Scorer

Initiator = Literal["user", "system"]

GIB_PAGE_KIB = 1024 * 1024

#: Sizes up to which the plan is exact: VMs that may move, hosts that can take at least one of them.
EXACT_VMS = 12
EXACT_HOSTS = 8
#: The heuristic beyond: hosts tried per VM, departures from the best-scored option per plan, search steps.
HEURISTIC_CHOICES = 3
HEURISTIC_DISCREPANCIES = 1
HEURISTIC_STEPS = 400
#: Steps after which even an exact-sized search stops with the best plan so far (then not proven exact).
EXACT_STEPS = 20_000


@dataclass(frozen=True, slots=True)
class Move:
    """A VM that leaves: its placement on the destination and what the move costs (lower is better): whether it
    runs degraded there, how many settings it suspends, the scheduler's score."""

    vm_id: int
    placement: Placement
    cost: Cost

    @property
    def score(self) -> float:
        return self.cost[2]

    @property
    def host_id(self) -> int:
        return self.placement.host_id


@dataclass(frozen=True, slots=True)
class Stay:
    vm_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class EvacuationPlan:
    """``moves`` in the order they were planned: each holds on the hosts as the moves before it leave them.
    ``stays`` in the order the VMs were given; ``exact``: the plan is proven best."""

    moves: tuple[Move, ...]
    stays: tuple[Stay, ...]
    exact: bool

    @property
    def cost(self) -> Cost:
        """VMs degraded, settings suspended, the sum of the scores."""
        total = _FREE
        for move in self.moves:
            total = _add(total, move.cost)
        return total

    @property
    def score(self) -> float:
        return self.cost[2]


#: What a move costs, compared in this order: VMs degraded (0 or 1), settings suspended, the scheduler's score.
Cost = tuple[int, int, float]
_FREE: Cost = (0, 0, 0.0)


def _add(a: tuple, b: tuple) -> tuple:
    return tuple(x + y for x, y in zip(a, b, strict=True))


@dataclass(frozen=True, slots=True)
class _Variant:
    """The VM with a set of settings suspended (none: its whole configuration), filters and weights prepared."""

    suspended: int
    plan: Plan
    judges: tuple[Judge, ...]
    scorers: tuple[tuple[float, Scorer], ...]

    @property
    def needs(self) -> tuple[int, int, int]:
        """What the VM takes on any host, at least: exclusive pCPUs, 1 GiB pages, small-page KiB."""
        plan = self.plan
        cpus = plan.vcpus if plan.vm.exclusive else 0
        if plan.page_kib == GIB_PAGE_KIB:
            return cpus, -(-plan.memory_kib // GIB_PAGE_KIB), 0
        return cpus, 0, plan.memory_kib if not plan.hugepages else 0


@dataclass(frozen=True, slots=True)
class _Mover:
    """A VM that may move: its whole configuration first, then (where it may run degraded) each set of settings
    that may be suspended, fewest first, as the scheduler tries them."""

    vm: VMRequest
    variants: tuple[_Variant, ...]

    @property
    def needs(self) -> tuple[int, int, int]:
        """What the VM takes on any host at least, whichever of its variants runs there."""
        return tuple(min(v.needs[r] for v in self.variants) for r in range(3))  # type: ignore[return-value]

    def options(self, states: Sequence[HostState]) -> list[tuple[Cost, int] | None]:
        """Per host: the cost of the first variant every filter passes there, and which; None if none does."""
        states = [s.without(self.vm.id) for s in states]
        out: list[tuple[Cost, int] | None] = [None] * len(states)
        open_ = list(range(len(states)))
        for index, variant in enumerate(self.variants):
            rejected = set()
            judged = [states[i] for i in open_]
            for judge in variant.judges:
                rejected.update(judge(judged))
            totals = [0.0] * len(judged)
            for factor, scorer in variant.scorers:
                totals = [total + factor * weight for total, weight in zip(totals, scorer(judged), strict=True)]
            for k, i in enumerate(open_):
                if k not in rejected:
                    out[i] = ((int(index > 0), variant.suspended, totals[k]), index)
            open_ = [i for k, i in enumerate(open_) if k in rejected]
            if not open_:
                break
        return out


def plan_evacuation(
    hosts: Sequence[HostState],
    vms: Sequence[VMRequest],
    source: int,
    initiator: Initiator,
    cluster: ClusterConfig,
    allow_degraded: Collection[int] = (),
    ignore_vm_affinity: bool = False,
) -> EvacuationPlan:
    """Plan moving ``vms`` (those running on host ``source``) to the other ``hosts``.

    A user's maintenance counts as manual migration (force), so it moves "manual migration only" VMs too; a
    system one moves only "manual and automatic" VMs. "Do not allow migration" VMs always stay. The VMs whose
    ids are in ``allow_degraded`` may move with settings suspended where nothing fits them whole.
    ``ignore_vm_affinity``: enforcing VM-to-VM affinity rules do not filter.
    """
    # Affinity rules are judged against where the VMs run now (those leaving included, on the host emptied).
    where = members_where(cluster.affinity_groups, hosts)
    request = ScheduleRequest(
        action="migrate", force=initiator == "user", ignore_vm_affinity=ignore_vm_affinity, member_hosts=where
    )
    others = [h for h in hosts if h.id != source]
    reasons: dict[int, str] = {}
    movers: list[_Mover] = []
    for vm in vms:
        if vm.running_on != source:
            raise ValueError(f"VM {vm.name} does not run on host {source}")
        if error := check_migration_mode(vm, request):
            reasons[vm.id] = error.message
            continue
        groups = [frozenset(), *(suspension_sets(vm) if vm.id in allow_degraded else ())]
        movers.append(_Mover(vm, tuple(_variant(relax(vm, g), len(g), request, cluster) for g in groups)))
    movers.sort(key=lambda m: (-m.vm.vcpus, -m.vm.memory_mib, m.vm.id))

    rows = [m.options(others) for m in movers]
    for mover, row in zip(movers, rows, strict=True):
        judged = replace(request, allow_degraded=mover.vm.id in allow_degraded)
        if all(option is None for option in row) and (error := schedule(others, mover.vm, judged, cluster).error):
            reasons[mover.vm.id] = error.message
    kept = [i for i, mover in enumerate(movers) if mover.vm.id not in reasons]
    movers = [movers[i] for i in kept]
    targets = [j for j in range(len(others)) if any(rows[i][j] is not None for i in kept)]
    exact = len(movers) <= EXACT_VMS and len(targets) <= EXACT_HOSTS
    search = _Search(movers, [others[j] for j in targets], exact)
    search.run(0, 0, _FREE, None if exact else HEURISTIC_DISCREPANCIES)

    final = {h.id: h for h in others}
    moves: list[Move] = []
    left: list[_Mover] = []
    for mover, move in zip(movers, search.best, strict=True):
        if move is None:
            left.append(mover)
            continue
        moves.append(move)
        final[move.host_id] = _with(final[move.host_id], move.placement.to_allocation(mover.vm.id))
    for mover in left:
        judged = replace(request, allow_degraded=mover.vm.id in allow_degraded)
        decision = schedule(list(final.values()), mover.vm, judged, cluster)
        if decision.error:
            reasons[mover.vm.id] = f"once the other VMs are placed: {decision.error.message}"
        elif placement := decision.placement:
            verdict = decision.verdict(placement.host_id)
            score = verdict.score if verdict and verdict.score else 0.0
            moves.append(
                Move(mover.vm.id, placement, (int(bool(placement.suspended)), len(placement.suspended), score))
            )
            final[placement.host_id] = _with(final[placement.host_id], placement.to_allocation(mover.vm.id))
    stays = tuple(Stay(vm.id, reasons[vm.id]) for vm in vms if vm.id in reasons)
    return EvacuationPlan(tuple(moves), stays, exact and search.complete)


def _variant(vm: VMRequest, suspended: int, request: ScheduleRequest, cluster: ClusterConfig) -> _Variant:
    plan = make_plan(vm, request, cluster)
    judges = tuple(judge for _, factory in FILTERS if (judge := factory(plan)) is not None)
    scorers = tuple(
        (factor, scorer)
        for name, factory in WEIGHTS
        if (factor := cluster.factor(name)) and (scorer := factory(plan)) is not None
    )
    return _Variant(suspended, plan, judges, scorers)


def _with(host: HostState, allocation: Allocation) -> HostState:
    return build_host_state(host.topology, [*host.allocations, allocation])


def _signature(allocation: Allocation) -> tuple:
    """What an allocation takes, whoever holds it: two paths that leave every host alike are the same."""
    return (
        tuple(sorted(allocation.exclusive_cpus)),
        tuple(sorted(allocation.shared_cpus)),
        allocation.vcpus,
        tuple(sorted(allocation.memory_mib.items())),
        tuple(sorted((node, tuple(sorted(pages.items()))) for node, pages in allocation.hugepages.items())),
    )


class _Search:
    """The branch and bound of the module's docstring over ``movers`` (in planning order) and ``states``."""

    def __init__(self, movers: Sequence[_Mover], states: Sequence[HostState], exact: bool) -> None:
        self.movers = movers
        self.states = list(states)
        self.exact = exact
        # rows[i][j]: mover i's cost on host j as the current path leaves it, and its variant (None: rejected).
        self.rows = [m.options(self.states) for m in movers]
        self.taken: list[tuple] = [() for _ in self.states]
        self.path: list[Move | None] = []
        self.best: list[Move | None] = [None] * len(movers)
        self.best_cost: tuple = (inf, inf, inf, inf)
        self.seen: dict[tuple, tuple] = {}
        self.steps = 0
        self.complete = True

    def run(self, depth: int, stays: int, cost: Cost, discrepancies: int | None) -> None:
        if depth == len(self.movers):
            if (stays, *cost) < self.best_cost:
                self.best_cost, self.best = (stays, *cost), list(self.path)
            return
        if self.steps >= (EXACT_STEPS if self.exact else HEURISTIC_STEPS):
            self.complete = False
            return
        self.steps += 1
        if self._bound(depth, stays, cost) >= self.best_cost:
            return
        key = (depth, discrepancies, *self.taken)
        if (seen := self.seen.get(key)) is not None and (stays, *cost) >= seen:
            return
        self.seen[key] = (stays, *cost)

        mover = self.movers[depth]
        options = sorted((o[0], self.states[j].id, j, o[1]) for j, o in enumerate(self.rows[depth]) if o is not None)
        if not self.exact:
            options = options[:HEURISTIC_CHOICES]
        tried = 0
        for host_cost, _, j, variant in options:
            if tried and discrepancies == 0:
                return
            placement = place(mover.variants[variant].plan, self.states[j].without(mover.vm.id))
            if isinstance(placement, NoFit):
                continue
            left = discrepancies if discrepancies is None or not tried else discrepancies - 1
            tried += 1
            undo = self._apply(depth, j, placement)
            self.path.append(Move(mover.vm.id, placement, host_cost))
            self.run(depth + 1, stays, _add(cost, host_cost), left)
            self.path.pop()
            undo()
        if tried and discrepancies == 0:
            return
        self.path.append(None)
        self.run(depth + 1, stays + 1, cost, discrepancies if discrepancies is None or not tried else discrepancies - 1)
        self.path.pop()

    def _bound(self, depth: int, stays: int, cost: Cost) -> tuple:
        """No completion of the current path does better than this (see the module's docstring): at least so many
        VMs stay, and each cost component is at least the sum of the smallest ones of the VMs that may move."""
        bests: list[Cost] = []
        needs: list[tuple[int, int, int]] = []
        for mover, row in zip(self.movers[depth:], self.rows[depth:], strict=True):
            costs = [o[0] for o in row if o is not None]
            if not costs:
                stays += 1
            else:
                bests.append(tuple(min(c[k] for c in costs) for k in range(3)))  # type: ignore[arg-type]
                needs.append(mover.needs)
        left = max(_cannot_fit([need[r] for need in needs], supply) for r, supply in enumerate(self._supply()))
        moving = len(bests) - left
        least = tuple(sum(sorted(c[k] for c in bests)[:moving]) for k in range(3))
        return (stays + left, *_add(cost, least))

    def _supply(self) -> tuple[int, int, int]:
        """What the candidate hosts have left in all: pCPUs held by nobody, 1 GiB pages, small-page KiB. A host
        holding more than it has (its memory overcommitted) adds nothing, and takes nothing from the others."""
        return (
            sum(max(h.free_threads, 0) for h in self.states),
            sum(max(h.hugepages_free.get(GIB_PAGE_KIB, 0), 0) for h in self.states),
            sum(max(h.small_free_kib, 0) for h in self.states),
        )

    def _apply(self, depth: int, j: int, placement: Placement):
        """Add the move to host ``j`` and rescore that host for the VMs still to plan; returns the undo."""
        allocation = placement.to_allocation(self.movers[depth].vm.id)
        state, taken = self.states[j], self.taken[j]
        self.states[j] = _with(state, allocation)
        self.taken[j] = tuple(sorted((*taken, _signature(allocation))))
        later = range(depth + 1, len(self.movers))
        saved = [self.rows[i][j] for i in later]
        for i in later:
            self.rows[i][j] = self.movers[i].options([self.states[j]])[0]

        def undo() -> None:
            self.states[j], self.taken[j] = state, taken
            for i, value in zip(later, saved, strict=True):
                self.rows[i][j] = value

        return undo


def _cannot_fit(needs: list[int], supply: int) -> int:
    """How many of these needs stay unmet at least, whatever is chosen: the most that fit are the smallest."""
    total = 0
    for count, need in enumerate(sorted(needs)):
        total += need
        if total > supply:
            return len(needs) - count
    return 0
