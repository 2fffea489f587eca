"""The core's own rules: migration modes, host state accounting, placement details, ranking, claims."""

from __future__ import annotations

import pytest

from scheduler.core import (
    Allocation,
    ClusterConfig,
    ScheduleRequest,
    build_host_state,
    check_migration_mode,
    cpus_of,
    parse_pinning,
    schedule,
)
from scheduler.core import pipeline as pipeline_module
from scheduler.core.fit import NoFit

from .factory import held, make_host, make_vm, vnode
from .validity import placement_problems

START = ScheduleRequest(action="start")
MIGRATE = ScheduleRequest(action="migrate")
FORCED = ScheduleRequest(action="migrate", force=True)
GIB_PAGE = 1024 * 1024


class TestMigrationMode:
    def test_start_is_always_allowed(self):
        assert check_migration_mode(make_vm(migration_mode="pinned"), START) is None

    def test_do_not_allow_migration(self):
        error = check_migration_mode(make_vm(migration_mode="pinned", running_on=1), FORCED)
        assert (error.code, error.message) == (
            "migration_mode",
            "VM vm100 is pinned to host: its migration mode does not allow migration",
        )

    def test_high_availability_does_not_unpin(self):
        error = check_migration_mode(make_vm(migration_mode="pinned", running_on=1, high_availability=True), FORCED)
        assert error.code == "migration_mode"
        assert "restarted only on its placement hosts" in error.message

    def test_manual_only_needs_force(self):
        vm = make_vm(migration_mode="user_migratable", running_on=1)
        error = check_migration_mode(vm, MIGRATE)
        assert error.code == "migration_mode"
        assert "must pass force=True" in error.message
        assert check_migration_mode(vm, FORCED) is None

    def test_migratable_moves_without_force(self):
        assert check_migration_mode(make_vm(running_on=1), MIGRATE) is None

    def test_a_vm_that_does_not_run_cannot_migrate(self):
        assert check_migration_mode(make_vm(), FORCED).code == "not_running"

    def test_schedule_refuses_before_judging_hosts(self):
        decision = schedule([make_host()], make_vm(migration_mode="user_migratable", running_on=1), MIGRATE)
        assert decision.error.code == "migration_mode"
        assert decision.verdicts == ()


class TestHostState:
    def test_free_capacity_counts_pending_claims(self):
        host = make_host(
            sockets=2,
            cores=2,
            threads=2,
            memory_mib=8192,
            hugepages={GIB_PAGE: 4},
            allocations=[
                held(1, [0, 1], memory_mib={0: 1024}),
                held(2, [5], pending=True, hugepages={1: {GIB_PAGE: 3}}),
                Allocation(vm_id=3, shared_cpus=frozenset({2}), vcpus=4, memory_mib={1: 512}),
            ],
        )
        assert cpus_of(host.free) == [3, 4, 6, 7]
        assert host.free_threads == 4
        assert host.free_cores == 1  # core {6, 7}; core {2, 3} has 2 pinned by VM 3
        assert host.node_by_index[0].small_free_kib == (8192 - 4096 - 1024) * 1024
        assert host.node_by_index[1].hugepages_free == {GIB_PAGE: 1}
        assert host.max_shared_vcpus == 4
        assert host.exclusive_core_count == 1  # core {0, 1}; core {4, 5} still has a thread for others

    def test_without_frees_the_vms_own_share(self):
        host = make_host(cores=4, allocations=[held(1, [0, 1], memory_mib={0: 1024}), held(2, [2])])
        assert cpus_of(host.without(1).free) == [0, 1, 3]
        assert host.without(9) is host

    def test_host_without_numa_is_one_pseudo_node(self):
        host = make_host(sockets=2, cores=2, nodes=0, memory_mib=4096, allocations=[held(1, memory_mib={5: 1024})])
        assert not host.numa_supported
        assert [n.index for n in host.nodes] == [0]
        assert host.small_free_kib == 3072 * 1024

    def test_offline_cpus_are_never_free(self):
        host = make_host(cores=4, online=[0, 1, 3])
        assert cpus_of(host.free) == [0, 1, 3]
        assert host.online_count == 3

    def test_cpu_numa_disagreement_is_refused(self):
        from scheduler.core import HostCpu, HostNumaNode, HostTopology

        with pytest.raises(ValueError, match="CPU 1 says NUMA node 1"):
            HostTopology(
                id=1,
                name="h1",
                cpus=(HostCpu(0, 0, 0, 0), HostCpu(1, 0, 1, 1)),
                numa_nodes=(HostNumaNode(0, frozenset({0, 1}), 1024),),
            )


def test_vm_vnodes_must_partition_the_vcpus():
    with pytest.raises(ValueError, match="in two vNUMA nodes"):
        make_vm(cores=2, numa_nodes=[(0, [0, 1], 512), (1, [1], 512)])
    with pytest.raises(ValueError, match="must hold each of the 2 vCPUs once"):
        make_vm(cores=2, numa_nodes=[(0, [0], 512)])


def test_unknown_weight_names_and_negative_factors_are_refused():
    with pytest.raises(ValueError, match="unknown weights"):
        ClusterConfig(weight_factors={"least_loaded": 1})
    with pytest.raises(ValueError, match=r"must be 0 or more: \['cpu_load'\]"):
        ClusterConfig(weight_factors={"cpu_load": -1})


def test_a_host_failing_several_filters_lists_them_all():
    host = make_host(cores=1, memory_mib=1024, status="maintenance", flags=["sse4_2"])
    vm = make_vm(cores=2, memory_mib=4096, cpu_passthrough=True, cpu_flags_at_start={"avx2"}, running_on=2)
    decision = schedule([host], vm, FORCED)
    assert [r.filter for r in decision.verdict(1).rejections] == ["HostStatus", "CpuLevel", "CPU", "Memory"]
    assert decision.error.code == "no_host"
    assert "host h1 did not satisfy filter HostStatus because the host is in maintenance" in decision.error.message


def test_no_host_message_names_a_few_hosts_only():
    hosts = [make_host(i, status="down") for i in range(1, 6)]
    message = schedule(hosts, make_vm(), START).error.message
    assert "host h3 did not satisfy" in message
    assert "h4" not in message
    assert message.endswith("; and 2 more hosts")


def test_empty_cluster():
    assert schedule([], make_vm(), START).error.code == "no_host"


def test_isolate_threads_take_whole_cores():
    host = make_host(cores=4, threads=2, allocations=[held(7, [0])])
    vm = make_vm(cores=2, cpu_pinning_policy="isolate_threads", optimized_for="high_performance", io_threads=1)
    placement = schedule([host], vm, START).placement
    assert dict(placement.vcpu_pins) == {0: {2}, 1: {4}}
    assert placement.exclusive_cpus == {2, 3, 4, 5}
    # Off the VM's cores: the first two pCPUs no VM holds exclusively (0 is VM 7's), shared with other VMs.
    assert placement.emulator_cpus == placement.io_thread_cpus == {1, 6}
    assert placement.shared_cpus == {1, 6}
    assert placement_problems(host, vm, placement) == []


def test_dedicated_threads_go_to_sibling_threads():
    host = make_host(cores=4, threads=2, allocations=[held(7, [0, 2])])
    vm = make_vm(cores=2, threads=2, cpu_pinning_policy="dedicated")
    placement = schedule([host], vm, START).placement
    assert dict(placement.vcpu_pins) == {0: {4}, 1: {5}, 2: {6}, 3: {7}}


def test_dedicated_single_threads_fill_broken_cores_first():
    host = make_host(cores=4, threads=2, allocations=[held(7, [0, 2])])
    vm = make_vm(cores=2, cpu_pinning_policy="dedicated")
    assert dict(schedule([host], vm, START).placement.vcpu_pins) == {0: {1}, 1: {3}}


def test_server_vm_leaves_emulator_threads_unpinned():
    vm = make_vm(cores=2, cpu_pinning_policy="dedicated", io_threads=1)
    placement = schedule([make_host(cores=4)], vm, START).placement
    assert placement.emulator_cpus == placement.io_thread_cpus == frozenset()


def test_vm_without_vnuma_is_kept_on_one_node_when_it_fits():
    host = make_host(sockets=2, cores=4, memory_mib=[8192, 8192], allocations=[held(7, [0])])
    vm = make_vm(cores=3, memory_mib=2048, cpu_pinning_policy="dedicated", optimized_for="high_performance")
    placement = schedule([host], vm, START).placement
    assert set().union(*placement.vcpu_pins.values()) == {4, 5, 6}
    assert placement.memory_mib == {1: 2048}
    assert placement.emulator_cpus == {7}  # what node 1 has left beside the vCPUs


def test_vm_without_vnuma_spreads_when_no_node_fits():
    host = make_host(sockets=2, cores=4, memory_mib=[2048, 8192], allocations=[held(7, [0, 4])])
    vm = make_vm(sockets=2, cores=3, memory_mib=6144, cpu_pinning_policy="dedicated")
    placement = schedule([host], vm, START).placement
    assert placement_problems(host, vm, placement) == []
    assert set().union(*placement.vcpu_pins.values()) == {1, 2, 3, 5, 6, 7}
    assert sum(placement.memory_mib.values()) == 6144


def test_unpinned_memory_goes_where_there_is_most_room():
    host = make_host(sockets=2, cores=2, memory_mib=[4096, 8192])
    placement = schedule([host], make_vm(memory_mib=6144), START).placement
    assert placement.memory_mib == {1: 6144}
    assert placement.vcpu_pins == {}


def test_per_host_numa_pinning_overrides_the_default():
    hosts = [make_host(1, sockets=2), make_host(2, sockets=2)]
    vm = make_vm(memory_mib=1024, numa_nodes=[vnode(0, [0], 1024, pinned_to=[0], by_host={2: [1]})])
    decision = schedule(hosts, vm, START)
    assert decision.placement.numa == ({0: 0} if decision.chosen == 1 else {0: 1})
    other = schedule(hosts, vm, ScheduleRequest(action="start", destination=2))
    assert other.placement.numa == {0: 1}
    assert other.placement.memory_mib == {1: 1024}


def test_manual_pinning_is_kept_and_shared_cpus_are_avoided_by_dedicated_vms():
    manual = make_vm(1, cores=2, cpu_pinning_policy="manual", cpu_pinning=parse_pinning("0#0-1_1#1"))
    host = make_host(cores=4)
    placement = schedule([host], manual, START).placement
    assert dict(placement.vcpu_pins) == {0: {0, 1}, 1: {1}}
    assert placement.shared_cpus == {0, 1}
    assert placement.exclusive_cpus == frozenset()
    host = build_host_state(host.topology, [placement.to_allocation(manual.id, pending=False)])
    dedicated = make_vm(2, cores=2, cpu_pinning_policy="dedicated")
    assert set().union(*schedule([host], dedicated, START).placement.vcpu_pins.values()) == {2, 3}


def test_claims_keep_two_decisions_apart():
    """Recording the placement as a pending allocation makes the next decision pick other pCPUs and pages."""
    host = make_host(cores=6, memory_mib=8192, hugepages={GIB_PAGE: 4})
    first = make_vm(1, cores=2, memory_mib=2048, hugepage_kib=GIB_PAGE, cpu_pinning_policy="dedicated")
    placement = schedule([host], first, START).placement
    claim = placement.to_allocation(first.id)
    assert claim.pending and claim.vcpus == 2 and claim.hugepages == {0: {GIB_PAGE: 2}}
    host = build_host_state(host.topology, [claim])
    second = make_vm(2, cores=2, memory_mib=2048, hugepage_kib=GIB_PAGE, cpu_pinning_policy="dedicated")
    again = schedule([host], second, START).placement
    assert not set().union(*again.vcpu_pins.values()) & set().union(*placement.vcpu_pins.values())
    host = build_host_state(host.topology, [claim, again.to_allocation(second.id)])
    third = schedule([host], make_vm(3, memory_mib=1024, hugepage_kib=GIB_PAGE), START)
    assert third.verdict(1).rejections[0].reason == "0 of 1 needed 1 GiB pages free"


def test_ranking_lower_score_first_ties_in_input_order():
    hosts = [make_host(3, cores=4), make_host(1, cores=4), make_host(2, cores=4, allocations=[held(7, [0, 1])])]
    decision = schedule(hosts, make_vm(cores=2, cpu_pinning_policy="dedicated"), START)
    assert decision.ranked == (3, 1, 2)
    assert [v.rank for v in decision.verdicts] == [1, 2, 3]
    assert decision.chosen == 3


def test_weight_factors_change_the_ranking():
    busy_memory = make_host(1, cores=8, memory_mib=8192, allocations=[held(7, memory_mib={0: 6144})])
    busy_cpus = make_host(2, cores=8, memory_mib=8192, allocations=[held(8, [0, 1, 2, 3, 4, 5])])
    vm = make_vm(cores=1, memory_mib=1024)
    assert schedule([busy_memory, busy_cpus], vm, START).chosen == 1
    memory_first = ClusterConfig(weight_factors={"memory_load": 10})
    assert schedule([busy_memory, busy_cpus], vm, START, memory_first).chosen == 2


def test_a_failed_placement_falls_back_to_the_next_host(monkeypatch):
    real_place = pipeline_module.place

    def place(plan, host):
        return NoFit("lost a race", "CpuPinning") if host.id == 1 else real_place(plan, host)

    monkeypatch.setattr(pipeline_module, "place", place)
    hosts = [make_host(1, cores=4), make_host(2, cores=4, allocations=[held(7, [0])])]
    decision = schedule(hosts, make_vm(cpu_pinning_policy="dedicated"), START)
    assert decision.chosen == 2
    assert decision.verdict(1).rejections[0].reason == "lost a race"
    assert decision.ranked == (2,)
    assert decision.verdict(2).rank == 1


def test_numa_mapping_failure_explains_each_node():
    """Enough pCPUs and pages on the host as a whole, but no node has both: every shortfall is named."""
    allocations = [held(7, [0], hugepages={0: {GIB_PAGE: 3}}), held(8, [4, 5, 6], hugepages={1: {GIB_PAGE: 1}})]
    host = make_host(sockets=2, cores=4, memory_mib=8192, hugepages={GIB_PAGE: 4}, allocations=allocations)
    vm = make_vm(
        cores=2,
        memory_mib=4096,
        hugepage_kib=GIB_PAGE,
        cpu_pinning_policy="dedicated",
        numa_nodes=[(0, [0, 1], 4096)],
    )
    assert {r.filter: r.reason for r in schedule([host], vm, START).verdict(1).rejections} == {
        "NUMA": "vNUMA node 0 (2 vCPUs, 4096 MiB) fits no host node: 1 of 4 needed 1 GiB pages free on node 0; "
        "1 of 2 needed pCPUs free on node 1; 3 of 4 needed 1 GiB pages free on node 1"
    }


@pytest.mark.parametrize("threads_as_cores", [False, True])
@pytest.mark.parametrize("policy", ["none", "manual", "dedicated", "isolate_threads"])
@pytest.mark.parametrize("exclusive", [(), (0,), (0, 1), (0, 2, 4), (0, 1, 2, 3, 4)])
@pytest.mark.parametrize("shared_vcpus", [0, 3, 6])
def test_cpu_filter_counts_as_ovirt(threads_as_cores, policy, exclusive, shared_vcpus):
    """CPUPolicyUnit: units - exclusively held units - (own exclusive units + largest shared VM) >= 0."""
    others = [held(7, exclusive), Allocation(vm_id=8, vcpus=shared_vcpus)]
    host = make_host(cores=4, threads=2, allocations=others)
    vm = make_vm(cores=3, cpu_pinning_policy=policy)
    if threads_as_cores:
        units, taken = 8, len(exclusive)
        own = {"dedicated": 3, "isolate_threads": 6}.get(policy, 0)
    else:
        units, taken = 4, sum(1 for core in range(4) if {2 * core, 2 * core + 1} <= set(exclusive))
        own = {"dedicated": 2, "isolate_threads": 3}.get(policy, 0)
    largest_shared = shared_vcpus if own else max(shared_vcpus, 3)
    fits = units - taken - own - largest_shared >= 0
    decision = schedule([host], vm, START, ClusterConfig(threads_as_cores=threads_as_cores))
    assert ("CPU" not in {r.filter for r in decision.verdicts[0].rejections}) == fits
