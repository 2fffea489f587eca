"""The evacuation planner: migration modes, moves planned together, its order of preference, and an exhaustive
cross-check against brute force on generated small clusters."""

from __future__ import annotations

from dataclasses import replace
from math import inf

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from scheduler.core import (
    DEFAULT_WEIGHT_FACTORS,
    ClusterConfig,
    HostState,
    ScheduleRequest,
    VMRequest,
    build_host_state,
    schedule,
)
from scheduler.core.evacuation import EvacuationPlan, plan_evacuation

from .factory import GIB_KIB, held, make_host, make_topology, make_vm
from .test_properties import PAGE, vms

SOURCE = 1
GIB = 1024
CLUSTER = ClusterConfig()


def source_host(*vm_list: VMRequest) -> HostState:
    """The host to empty, big enough to hold its VMs (what it holds does not matter to the plan)."""
    return make_host(SOURCE, cores=32, memory_mib=256 * GIB, allocations=[held(vm.id) for vm in vm_list])


def dedicated(vm_id: int, vcpus: int, **fields) -> VMRequest:
    return make_vm(vm_id, cores=vcpus, cpu_pinning_policy="dedicated", running_on=SOURCE, **fields)


def where(plan: EvacuationPlan) -> dict[int, int | None]:
    """VM id -> destination host id, None for a VM that stays."""
    return {**{m.vm_id: m.host_id for m in plan.moves}, **{s.vm_id: None for s in plan.stays}}


def test_migration_modes_under_a_users_maintenance():
    """A user's maintenance moves "manual and automatic" and "manual only" VMs; "Do not allow" ones stay, saying so."""
    auto = dedicated(10, 2, migration_mode="migratable")
    manual = dedicated(11, 2, migration_mode="user_migratable")
    pinned = dedicated(12, 2, migration_mode="pinned")
    hosts = [source_host(auto, manual, pinned), make_host(2, cores=8)]
    plan = plan_evacuation(hosts, [auto, manual, pinned], SOURCE, "user", CLUSTER)
    assert where(plan) == {10: 2, 11: 2, 12: None}
    assert plan.stays[0].reason == "VM vm12 is pinned to host: its migration mode does not allow migration"
    assert plan.exact


def test_a_system_maintenance_moves_only_automatically_migratable_vms():
    auto = dedicated(10, 2, migration_mode="migratable")
    manual = dedicated(11, 2, migration_mode="user_migratable")
    hosts = [source_host(auto, manual), make_host(2, cores=8)]
    plan = plan_evacuation(hosts, [auto, manual], SOURCE, "system", CLUSTER)
    assert where(plan) == {10: 2, 11: None}
    assert "VM vm11 allows manual migration only" in plan.stays[0].reason


def test_moves_are_planned_together_so_nothing_is_promised_twice():
    """Two 3-vCPU VMs, one host with 4 free pCPUs: each alone fits, only one of them gets it."""
    a, b = dedicated(10, 3), dedicated(11, 3)
    hosts = [source_host(a, b), make_host(2, cores=4)]
    plan = plan_evacuation(hosts, [a, b], SOURCE, "user", CLUSTER)
    assert where(plan) == {10: 2, 11: None}
    assert plan.stays[0].reason.startswith("once the other VMs are placed: There is no host that satisfies")
    assert "filter CPU" in plan.stays[0].reason


def test_the_source_is_never_a_destination():
    vm = dedicated(10, 2)
    plan = plan_evacuation([source_host(vm), make_host(2, cores=1)], [vm], SOURCE, "user", CLUSTER)
    assert where(plan) == {10: None}
    assert "There is no host that satisfies the scheduling constraints for VM vm10" in plan.stays[0].reason
    assert "host h2 did not satisfy filter CPU" in plan.stays[0].reason


def test_fewest_vms_left_behind_beats_the_one_by_one_choice():
    """The 4-vCPU VM prefers h3 (less memory committed), which would leave no room there for the VM needing
    1 GiB pages that only h3 has; the plan sends the large VM to h2 instead and moves both."""
    large = dedicated(10, 4)
    paged = dedicated(11, 2, memory_mib=2 * GIB, hugepage_kib=GIB_KIB)
    h2 = make_host(2, cores=4, memory_mib=8 * GIB)
    h3 = make_host(3, cores=4, memory_mib=64 * GIB, hugepages={GIB_KIB: 4})
    hosts = [source_host(large, paged), h2, h3]
    one_by_one = schedule(hosts, large, ScheduleRequest(action="migrate", force=True))
    assert one_by_one.chosen == 3
    plan = plan_evacuation(hosts, [large, paged], SOURCE, "user", CLUSTER)
    assert where(plan) == {10: 2, 11: 3}
    assert plan.moves[1].placement.hugepages == {0: {GIB_KIB: 2}}


def test_among_plans_moving_every_vm_the_lowest_total_score_wins():
    """Scored on committed memory only: h2 has 10 GiB, h3 100 GiB of which 60 are used. One by one, the 6 GiB VM
    takes h2 (0.6 < 0.66) and the 4 GiB one h3 (0.64): 1.24; the other way round costs 0.66 + 0.4 = 1.06."""
    only_memory = ClusterConfig(weight_factors={name: 0.0 for name in DEFAULT_WEIGHT_FACTORS} | {"memory_load": 1.0})
    big = make_vm(10, memory_mib=6 * GIB, running_on=SOURCE)
    small = make_vm(11, memory_mib=4 * GIB, running_on=SOURCE)
    h2 = make_host(2, cores=4, memory_mib=10 * GIB)
    h3 = make_host(3, cores=4, memory_mib=100 * GIB, allocations=[held(50, memory_mib={0: 60 * GIB})])
    plan = plan_evacuation([source_host(big, small), h2, h3], [big, small], SOURCE, "user", only_memory)
    assert where(plan) == {10: 3, 11: 2}
    assert plan.score == pytest.approx(66 / 100 + 4 / 10)


def test_a_host_whose_small_page_memory_is_overcommitted_hides_no_room_for_hugepage_backed_vms():
    """h2 reserves more for hugepages (3 GiB in 1 GiB pages, 2 GiB in 2 MiB pages) than its 4 GiB hold, so its
    small-page memory is below zero; its 2 MiB pool still takes one of the two 2 GiB hugepage-backed VMs, and the
    plan moves the one that scores better there, as trying every assignment does."""
    wide = make_vm(10, cores=6, memory_mib=2 * GIB, hugepage_kib=PAGE, running_on=SOURCE)
    narrow = dedicated(11, 2, memory_mib=2 * GIB, hugepage_kib=PAGE)
    h2 = make_host(2, cores=12, nodes=1, memory_mib=4 * GIB, hugepages={GIB_KIB: 3, PAGE: 1024})
    hosts = [source_host(wide, narrow), h2]
    plan = plan_evacuation(hosts, [wide, narrow], SOURCE, "user", CLUSTER)
    assert len(plan.moves) == 1
    stays, _, _, score = brute_force(hosts, [wide, narrow], "user", CLUSTER)
    assert (len(plan.stays), plan.score) == pytest.approx((stays, score))


def test_a_vm_not_running_on_the_source_is_refused():
    vm = make_vm(10, running_on=2)
    with pytest.raises(ValueError, match="VM vm10 does not run on host 1"):
        plan_evacuation([source_host(), make_host(2)], [vm], SOURCE, "user", CLUSTER)


def test_identical_vms_beyond_the_exact_size_all_move_with_the_heuristic():
    """20 identical VMs over 10 hosts of 4 pCPUs, 2 VMs of 2 vCPUs per host: the plan fills every host."""
    movers = [dedicated(10 + i, 2) for i in range(20)]
    hosts = [source_host(*movers), *(make_host(h, cores=4) for h in range(2, 12))]
    plan = plan_evacuation(hosts, movers, SOURCE, "system", CLUSTER)
    assert not plan.exact
    assert plan.stays == ()
    assert sorted(where(plan).values()) == sorted(h for h in range(2, 12) for _ in range(2))


# --- Exhaustive cross-check -------------------------------------------------------------------------------------


def planning_order(vm_list: list[VMRequest]) -> list[VMRequest]:
    """The documented order: most vCPUs, then most memory, then lowest id."""
    return sorted(vm_list, key=lambda vm: (-vm.sockets * vm.cores * vm.threads, -vm.memory_mib, vm.id))


def may_move(vm: VMRequest, initiator: str) -> bool:
    return vm.migration_mode == "migratable" or (vm.migration_mode == "user_migratable" and initiator == "user")


def brute_force(
    hosts: list[HostState], vm_list: list[VMRequest], initiator: str, cluster: ClusterConfig, degraded: bool = False
):
    """The best (VMs left behind, VMs degraded, settings suspended, total score) over every assignment of the
    movable VMs, in planning order, each step judged by ``schedule`` for that one destination on the hosts as the
    earlier steps left them (``degraded``: with settings suspended where the whole configuration does not fit)."""
    movable = planning_order([vm for vm in vm_list if may_move(vm, initiator)])
    fixed = len(vm_list) - len(movable)
    best = (inf, inf, inf, inf)

    def go(index: int, states: dict[int, HostState], stays: int, cost: tuple[int, int, float]) -> None:
        nonlocal best
        if index == len(movable):
            best = min(best, (fixed + stays, *cost))
            return
        vm = movable[index]
        for host_id in states:
            if host_id == SOURCE:
                continue
            request = ScheduleRequest(
                action="migrate", destination=host_id, force=initiator == "user", allow_degraded=degraded
            )
            decision = schedule(list(states.values()), vm, request, cluster)
            if (placement := decision.placement) is not None:
                host = states[host_id]
                moved = build_host_state(host.topology, [*host.allocations, placement.to_allocation(vm.id)])
                suspended = len(placement.suspended)
                step = (cost[0] + (suspended > 0), cost[1] + suspended, cost[2] + decision.verdict(host_id).score)
                go(index + 1, states | {host_id: moved}, stays, step)
        go(index + 1, states, stays + 1, cost)

    go(0, {h.id: h for h in hosts}, 0, (0, 0, 0.0))
    return best


def replay(
    hosts: list[HostState],
    vm_list: list[VMRequest],
    plan: EvacuationPlan,
    initiator: str,
    cluster,
    degraded: bool = False,
) -> None:
    """Every move, judged in order by ``schedule`` for its destination on the hosts as the earlier moves left
    them, is accepted with the same placement, suspended settings and score; every VM appears once."""
    states = {h.id: h for h in hosts}
    by_id = {vm.id: vm for vm in vm_list}
    for move in plan.moves:
        assert move.host_id != SOURCE
        request = ScheduleRequest(
            action="migrate", destination=move.host_id, force=initiator == "user", allow_degraded=degraded
        )
        decision = schedule(list(states.values()), by_id[move.vm_id], request, cluster)
        assert decision.placement == move.placement, decision.error
        assert decision.verdict(move.host_id).score == pytest.approx(move.score)
        host = states[move.host_id]
        states[move.host_id] = build_host_state(
            host.topology, [*host.allocations, move.placement.to_allocation(move.vm_id)]
        )
    listed = [m.vm_id for m in plan.moves] + [s.vm_id for s in plan.stays]
    assert sorted(listed) == sorted(by_id)
    assert all(s.reason for s in plan.stays)


@st.composite
def destination(draw, host_id: int) -> HostState:
    """Up to 2 sockets (one NUMA node each, now and then none) x 2-6 cores x 1-2 threads, 1 GiB and 2 MiB pools;
    another VM holds some scattered pCPUs exclusively, some memory and some pages."""
    sockets, threads = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    nodes = sockets if draw(st.integers(0, 4)) else 0
    memory = draw(st.sampled_from([4096, 8192, 8192]))
    pools = {GIB_KIB: draw(st.integers(0, 3)), PAGE: draw(st.sampled_from([0, 512, 1024]))}
    topology = make_topology(
        host_id,
        sockets=sockets,
        cores=draw(st.integers(2, 6)),
        threads=threads,
        nodes=nodes,
        memory_mib=memory,
        hugepages={size: pages for size, pages in pools.items() if pages},
    )
    cpus = sorted(cpu.id for cpu in topology.cpus)
    taken = draw(st.sets(st.sampled_from(cpus), max_size=len(cpus) // 3))
    node = draw(st.integers(0, max(nodes - 1, 0)))
    small = {node: draw(st.sampled_from([0, 512, 2048]))}
    pages = {node: {GIB_KIB: draw(st.integers(0, pools[GIB_KIB]))}}
    return build_host_state(topology, [held(50 + host_id, taken, memory_mib=small, hugepages=pages)])


@st.composite
def evacuations(draw):
    """1-4 destination hosts holding scattered allocations; 1-5 VMs of mixed policies and modes on the source."""
    destinations = [draw(destination(host_id)) for host_id in range(2, draw(st.integers(1, 4)) + 2)]
    vm_list = []
    for i in range(draw(st.integers(1, 5))):
        policy = draw(
            st.sampled_from(["none", "dedicated", "dedicated", "isolate_threads", "manual", "resize_and_pin_numa"])
        )
        vnuma = draw(st.sampled_from([False, False, True])) if policy != "resize_and_pin_numa" else False
        vm = draw(vms(host_ids=tuple(h.id for h in destinations), policy=policy, vnuma=vnuma))
        mode = draw(st.sampled_from(["migratable", "migratable", "migratable", "user_migratable", "pinned"]))
        vm_list.append(replace(vm, id=10 + i, name=f"vm{10 + i}", migration_mode=mode, running_on=SOURCE))
    return [source_host(*vm_list), *destinations], vm_list


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(evacuations(), st.sampled_from(["user", "system"]), st.booleans())
def test_the_plan_is_as_good_as_brute_force_and_every_move_holds(case, initiator, threads_as_cores):
    hosts, vm_list = case
    cluster = ClusterConfig(threads_as_cores=threads_as_cores)
    plan = plan_evacuation(hosts, vm_list, SOURCE, initiator, cluster)
    note(f"plan: {where(plan)}")
    assert plan.exact
    stays, _, _, score = brute_force(hosts, vm_list, initiator, cluster)
    # Never worse than the best assignment; fewer left behind only when a VM left behind fits once the others
    # are placed (moved after them, out of the planning order), else the very same objective.
    assert len(plan.stays) <= stays
    if len(plan.stays) == stays:
        assert plan.score == pytest.approx(score, abs=1e-9)
    event(f"{len(plan.moves)} moved")
    event(f"{stays - len(plan.stays)} more moved than the best assignment in planning order")
    event(f"{sum(s.reason.startswith('once the other VMs') for s in plan.stays)} left behind for the others")
    replay(hosts, vm_list, plan, initiator, cluster)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(evacuations(), st.sampled_from(["user", "system"]))
def test_a_plan_with_degraded_moves_is_as_good_as_brute_force(case, initiator):
    """Every VM may run degraded: the plan leaves the fewest behind, then degrades the fewest VMs, then suspends
    the fewest settings, then scores lowest, as the best assignment does."""
    hosts, vm_list = case
    plan = plan_evacuation(hosts, vm_list, SOURCE, initiator, CLUSTER, [vm.id for vm in vm_list])
    note(f"plan: {where(plan)} cost {plan.cost}")
    assert plan.exact
    stays, degraded, suspended, score = brute_force(hosts, vm_list, initiator, CLUSTER, degraded=True)
    assert len(plan.stays) <= stays
    if len(plan.stays) == stays:
        assert plan.cost[:2] == (degraded, suspended)
        assert plan.score == pytest.approx(score, abs=1e-9)
    event(f"{plan.cost[0]} degraded")
    replay(hosts, vm_list, plan, initiator, CLUSTER, degraded=True)
