"""The implementation-independent test scenarios of docs/ovirt-reference.md (numbers in the test names)."""

from __future__ import annotations

import pytest

from scheduler.core import ClusterConfig, ScheduleRequest, parse_pinning, schedule
from scheduler.core.fit import CellNeed, map_cells

from .factory import held, make_host, make_vm, vnode
from .validity import placement_problems

START = ScheduleRequest(action="start")
GIB_PAGE = 1024 * 1024


def eligible(decision) -> set[int]:
    return {v.host_id for v in decision.verdicts if v.eligible}


def reasons(decision, host_id: int) -> dict[str, str]:
    return {r.filter: r.reason for r in decision.verdict(host_id).rejections}


def numa_hosts(free_mib: int = 1024):
    """H0 without NUMA, H2 with 2 nodes, H4 with 4 nodes (oVirt's NumaPolicyUnitTest)."""
    return [
        make_host(10, sockets=2, cores=8, nodes=0, memory_mib=4 * free_mib),
        make_host(12, sockets=2, cores=8, nodes=2, memory_mib=free_mib),
        make_host(14, sockets=4, cores=8, nodes=4, memory_mib=free_mib),
    ]


def test_01_vm_without_vnuma_runs_anywhere():
    assert eligible(schedule(numa_hosts(), make_vm(memory_mib=512), START)) == {10, 12, 14}


def test_02_node_pinned_to_first():
    vm = make_vm(memory_mib=1024, numa_nodes=[(0, [0], 1024, [0])])
    decision = schedule(numa_hosts(), vm, START)
    assert eligible(decision) == {12, 14}
    assert reasons(decision, 10) == {"NUMA": "does not support NUMA"}


def test_03_node_pinned_to_fourth():
    vm = make_vm(memory_mib=1024, numa_nodes=[(0, [0], 1024, [3])])
    decision = schedule(numa_hosts(), vm, START)
    assert eligible(decision) == {14}
    assert "host node 3, which the host does not have (it has nodes 0-1)" in reasons(decision, 12)["NUMA"]


def test_04_interleave_is_enforced_like_strict():
    vm = make_vm(memory_mib=1024, numa_nodes=[vnode(0, [0], 1024, [0], tune_mode="interleave")])
    assert eligible(schedule(numa_hosts(), vm, START)) == {12, 14}


def test_04_preferred_is_not_enforced():
    vm = make_vm(memory_mib=1024, numa_nodes=[vnode(0, [0], 1024, [3], tune_mode="preferred")])
    decision = schedule(numa_hosts(), vm, START)
    assert eligible(decision) == {10, 12, 14}
    assert decision.placement.numa == {} or decision.chosen == 14


def test_05_unpinned_vnodes_run_anywhere():
    vm = make_vm(memory_mib=1024, cores=2, numa_nodes=[(0, [0], 512), (1, [1], 512)])
    assert eligible(schedule(numa_hosts(), vm, START)) == {10, 12, 14}


def test_06_three_pinned_nodes():
    vm = make_vm(cores=3, memory_mib=768, numa_nodes=[(0, [0], 256, [0]), (1, [1], 256, [1]), (2, [2], 256, [2])])
    assert eligible(schedule(numa_hosts(), vm, START)) == {14}
    one_unpinned = make_vm(cores=3, memory_mib=768, numa_nodes=[(0, [0], 256, [0]), (1, [1], 256, [1]), (2, [2], 256)])
    assert eligible(schedule(numa_hosts(), one_unpinned, START)) == {12, 14}


def test_07_small_nodes_pinned_to_one():
    three = make_vm(cores=3, memory_mib=768, numa_nodes=[(i, [i], 256, [0]) for i in range(3)])
    assert eligible(schedule(numa_hosts(), three, START)) == {12, 14}
    six = make_vm(cores=6, memory_mib=1536, numa_nodes=[(i, [i], 256, [0]) for i in range(6)])
    decision = schedule(numa_hosts(), six, START)
    assert eligible(decision) == set()
    assert decision.error.code == "no_host"
    assert "each fit a host node but not all together" in reasons(decision, 14)["NUMA"]


@pytest.mark.parametrize(
    ("count", "allowed", "expected"),
    [(6, [0, 1], {12, 14}), (6, [0, 1, 2, 3], {14}), (10, [0, 1, 2, 3], {14})],
)
def test_08_small_nodes_pinned_to_several(count, allowed, expected):
    vm = make_vm(cores=count, memory_mib=256 * count, numa_nodes=[(i, [i], 256, allowed) for i in range(count)])
    assert eligible(schedule(numa_hosts(), vm, START)) == expected


def test_09_assignment_needs_backtracking():
    host = make_host(sockets=4, memory_mib=1500)
    cells = [
        CellNeed(0, (), 1000, allowed=frozenset({0, 1, 2, 3})),
        CellNeed(1, (), 1000, allowed=frozenset({1, 2, 3})),
        CellNeed(2, (), 1000, allowed=frozenset({1, 2, 3})),
        CellNeed(3, (), 1000, allowed=frozenset({1, 2, 3})),
    ]
    mapping = map_cells(host, cells, "none", may_share=True)
    assert mapping[0].node == 0
    assert {mapping[i].node for i in (1, 2, 3)} == {1, 2, 3}


def test_10_no_space_then_two_per_node():
    small = make_host(sockets=2, memory_mib=512)
    vm = make_vm(cores=2, memory_mib=2000, numa_nodes=[(0, [0], 1000, [0, 1]), (1, [1], 1000, [0, 1])])
    assert eligible(schedule([small], vm, START)) == set()
    roomy = make_host(sockets=2, memory_mib=2500)
    vm4 = make_vm(cores=4, memory_mib=4000, numa_nodes=[(i, [i], 1000, [0, 1]) for i in range(4)])
    decision = schedule([roomy], vm4, START)
    assert sorted(decision.placement.numa.values()) == [0, 0, 1, 1]
    assert decision.placement.memory_mib == {0: 2000, 1: 2000}


def test_11_current_host_does_not_count_the_vm_itself():
    """The VM holds nearly all memory and hugepages of h1: during migration only Migration rejects h1."""
    vm = make_vm(
        cores=2,
        memory_mib=4096,
        hugepage_kib=GIB_PAGE,
        running_on=1,
        cpu_pinning_policy="dedicated",
        numa_nodes=[(0, [0, 1], 4096, [0])],
    )
    own = held(100, [0, 1], hugepages={0: {GIB_PAGE: 4}})
    h1 = make_host(1, cores=4, memory_mib=8192, hugepages={GIB_PAGE: 4}, allocations=[own])
    h2 = make_host(2, cores=4, memory_mib=8192, hugepages={GIB_PAGE: 4})
    decision = schedule([h1, h2], vm, ScheduleRequest(action="migrate", force=True))
    assert reasons(decision, 1) == {"Migration": "it currently runs the VM"}
    assert decision.chosen == 2


@pytest.mark.parametrize(
    ("pinning", "problem"),
    [
        ("1#0_2#4", "pCPU 4 is offline"),
        ("1#6", "pCPU 6 is offline"),
        ("1#3-5,^4", None),
        ("1#0_2#3", None),
        ("0#0_1#4,6-7", "pCPUs 4, 6, 7 are offline"),
        ("0#9", "pCPU 9 does not exist on the host"),
    ],
)
def test_12_manual_pinning_needs_online_cpus(pinning, problem):
    host = make_host(cores=8, online=[0, 1, 2, 3, 5])
    vm = make_vm(cores=3, cpu_pinning_policy="manual", cpu_pinning=parse_pinning(pinning))
    decision = schedule([host], vm, START)
    if problem is None:
        assert decision.chosen == 1
        assert placement_problems(host, vm, decision.placement) == []
    else:
        assert reasons(decision, 1) == {"CpuPinning": problem}


def test_12_host_without_cpu_data_and_vm_without_pinning():
    no_cpus = make_host(2, sockets=1, cores=0)
    vm = make_vm(cpu_pinning_policy="manual", cpu_pinning=parse_pinning("0#0"))
    assert reasons(schedule([no_cpus], vm, START), 2)["CpuPinning"] == "the host has not reported its CPUs"
    plain = make_vm(cpu_pinning_policy="manual")
    assert eligible(schedule([make_host(1, cores=4)], plain, START)) == {1}


def test_13_manual_pin_to_an_exclusively_held_pcpu():
    host = make_host(cores=4, allocations=[held(7, [2, 3])])
    vm = make_vm(cpu_pinning_policy="manual", cpu_pinning=parse_pinning("0#2"))
    assert reasons(schedule([host], vm, START), 1) == {"CpuPinning": "pCPU 2 is exclusively pinned by another VM"}


def test_14_cpu_pinning_agrees_with_numa_pinning():
    vm = make_vm(
        cores=2,
        cpu_pinning_policy="manual",
        cpu_pinning=parse_pinning("0#0_1#1"),
        memory_mib=2048,
        numa_nodes=[(0, [0], 1024, [0]), (1, [1], 1024, [1])],
    )
    a = make_host(1, sockets=2, cores=1)  # nodes {0}, {1}
    b = make_host(2, sockets=2, cores=2)  # nodes {0, 1}, {2, 3}: pCPU 1 lies in node 0
    only_pinning = ClusterConfig(
        weight_factors={n: 0 for n in ("cpu_load", "memory_load", "least_pinned", "hp_topology")}
    )
    decision = schedule([b, a], vm, START, only_pinning)
    scores = {v.host_id: v.score for v in decision.verdicts}
    assert scores[1] < scores[2]
    assert decision.chosen == 1
    without_pinning = make_vm(cores=2, memory_mib=2048, numa_nodes=[(0, [0], 1024, [0]), (1, [1], 1024, [1])])
    scores = {v.host_id: v.score for v in schedule([b, a], without_pinning, START, only_pinning).verdicts}
    assert scores[1] == scores[2]


def test_15_high_performance_topology_weight():
    shapes = {1: (8, 1, 1), 2: (4, 2, 1), 3: (2, 2, 2), 4: (1, 4, 2), 5: (4, 4, 4)}
    hosts = [make_host(i, sockets=s, cores=c, threads=t, nodes=1) for i, (s, c, t) in shapes.items()]
    only_topology = ClusterConfig(
        threads_as_cores=True, weight_factors={n: 0 for n in ("cpu_load", "memory_load", "least_pinned")}
    )
    hp = make_vm(sockets=2, cores=2, threads=2, optimized_for="high_performance")
    scores = {v.host_id: v.score for v in schedule(hosts, hp, START, only_topology).verdicts}
    assert {i for i, s in scores.items() if s == min(scores.values())} == {3, 5}
    server = make_vm(sockets=2, cores=2, threads=2, optimized_for="server")
    assert len({v.score for v in schedule(hosts, server, START, only_topology).verdicts}) == 1


def test_16_vm_without_vnuma_prefers_fitting_one_node():
    split = make_host(1, sockets=2, cores=2, memory_mib=2048)
    whole = make_host(2, sockets=1, cores=4, memory_mib=4096)
    only_numa = ClusterConfig(weight_factors={n: 0 for n in ("cpu_load", "memory_load", "least_pinned")})
    decision = schedule([split, whole], make_vm(cores=4, memory_mib=3072), START, only_numa)
    assert decision.chosen == 2
    assert decision.verdict(1).score > decision.verdict(2).score


@pytest.mark.parametrize(
    ("pools", "allocations", "reason"),
    [
        ({}, [], "the host has no 1 MiB pages"),
        ({2048: 1024}, [], "the host has no 1 MiB pages"),
        ({1024: 5}, [], "5 of 1024 needed 1 MiB pages free"),
        ({1024: 50}, [], "50 of 1024 needed 1 MiB pages free"),
        ({1024: 1050}, [held(7, pending=True, hugepages={0: {1024: 50}})], "1000 of 1024 needed 1 MiB pages free"),
        ({1024: 1050, 2048: 100}, [held(7, pending=True, hugepages={0: {2048: 50}})], None),
        ({1024: 1024}, [], None),
    ],
)
def test_17_hugepages(pools, allocations, reason):
    host = make_host(memory_mib=8192, hugepages=pools, allocations=allocations)
    decision = schedule([host], make_vm(memory_mib=1024, hugepage_kib=1024), START)
    if reason is None:
        assert decision.chosen == 1
        assert decision.placement.hugepages == {0: {1024: 1024}}
    else:
        assert reasons(decision, 1) == {"HugePages": reason}


def test_17_memory_not_a_multiple_of_the_page_size():
    host = make_host(memory_mib=8192, hugepages={GIB_PAGE: 4})
    decision = schedule([host], make_vm(memory_mib=1536, hugepage_kib=GIB_PAGE), START)
    assert reasons(decision, 1) == {"HugePages": "the VM's 1536 MiB is not a multiple of the 1 GiB page size"}


def test_18_threads_as_cores():
    host = make_host(sockets=1, cores=2, threads=4)
    vm = make_vm(sockets=2, cores=2)
    assert eligible(schedule([host], vm, START, ClusterConfig(threads_as_cores=True))) == {1}
    decision = schedule([host], vm, START, ClusterConfig(threads_as_cores=False))
    assert "2 of its 2 cores are not exclusively pinned, 4 needed" in reasons(decision, 1)["CPU"]
    no_cores = make_host(2, cores=0)
    assert reasons(schedule([no_cores], vm, START), 2)["CPU"] == "the host reports no CPU cores"


def test_19_passthrough_flags():
    hosts = [make_host(1, flags="ab"), make_host(2, flags="abcd"), make_host(3, flags="abc")]
    vm = make_vm(cpu_passthrough=True, cpu_flags_at_start="abc", running_on=3)
    decision = schedule(hosts, vm, ScheduleRequest(action="migrate", force=True))
    assert eligible(decision) == {2}
    assert reasons(decision, 1) == {"CpuLevel": 'its CPU flags are missing some of the VM\'s required CPU flags: "c"'}
    starting = make_vm(cpu_passthrough=True, cpu_flags_at_start="abc")
    assert eligible(schedule(hosts, starting, START)) == {1, 2, 3}


def test_19_cluster_cpu_type_flags():
    hosts = [make_host(1, flags=["sse4_2"]), make_host(2, flags=["sse4_2", "avx2"])]
    decision = schedule(hosts, make_vm(), START, ClusterConfig(cpu_flags=frozenset({"avx2", "sse4_2"})))
    assert reasons(decision, 1) == {"CpuLevel": 'its CPU lacks flags of the cluster CPU type: "avx2"'}


def test_23_explicit_destination():
    hosts = [make_host(1, cores=4), make_host(2, cores=4, status="maintenance"), make_host(3, cores=1)]
    vm = make_vm(cores=2, running_on=1)
    same = schedule(hosts, vm, ScheduleRequest(action="migrate", destination=1, force=True))
    assert reasons(same, 1) == {"Migration": "it already runs the VM (source and destination are the same)"}
    assert [v.host_id for v in same.verdicts] == [1]
    down = schedule(hosts, vm, ScheduleRequest(action="migrate", destination=2, force=True))
    assert down.error.code == "no_host"
    assert "host h2 did not satisfy filter HostStatus because the host is in maintenance" in down.error.message
    small = schedule(hosts, vm, ScheduleRequest(action="migrate", destination=3, force=True))
    assert set(reasons(small, 3)) == {"CPU"}
    assert small.chosen is None
    elsewhere = schedule(hosts, vm, ScheduleRequest(action="migrate", destination=9, force=True))
    assert elsewhere.error.code == "unknown_host"


def test_24_retry_excludes_hosts_already_tried():
    hosts = [make_host(1, cores=4), make_host(2, cores=4), make_host(3, cores=4)]
    vm = make_vm(running_on=1)
    decision = schedule(hosts, vm, ScheduleRequest(action="migrate", force=True, excluded_hosts=frozenset({2})))
    assert decision.chosen == 3
    assert reasons(decision, 2) == {"Excluded": "an earlier attempt on this host failed"}


def test_a_host_receiving_as_many_migrations_as_allowed_takes_no_more():
    hosts = [make_host(1, cores=4), make_host(2, cores=4), make_host(3, cores=4)]
    vm = make_vm(running_on=1)
    decision = schedule(hosts, vm, ScheduleRequest(action="migrate", force=True, saturated_hosts=frozenset({2})))
    assert decision.chosen == 3
    assert reasons(decision, 2) == {"MigrationLimit": "it already receives as many migrations at once as allowed"}


def test_25_pinned_vm_starts_only_on_its_hosts():
    hosts = [make_host(i) for i in (1, 2, 3)]
    pinned = make_vm(migration_mode="pinned", placement_hosts=[1, 2])
    decision = schedule(hosts, pinned, START)
    assert eligible(decision) == {1, 2}
    assert reasons(decision, 3) == {"PinToHost": "the host is not in the list of hosts the VM is pinned to"}


def test_25_placement_hosts_are_a_start_preference_only():
    hosts = [make_host(i) for i in (1, 2, 3)]
    vm = make_vm(migration_mode="migratable", placement_hosts=[3])
    assert schedule(hosts, vm, START).chosen == 3
    moving = make_vm(migration_mode="migratable", placement_hosts=[3], running_on=1)
    decision = schedule(hosts, moving, ScheduleRequest(action="migrate"))
    assert eligible(decision) == {2, 3}
    assert decision.verdict(2).score == decision.verdict(3).score


@pytest.mark.parametrize(
    ("sockets", "cores", "threads", "expected"),
    [
        (2, 3, 2, None),
        (3, 2, 2, set(range(12))),
        (2, 4, 2, None),
        (1, 1, 1, {0}),
        (1, 2, 1, {0, 1}),
        (2, 1, 2, {0, 1, 2, 3}),
        (3, 5, 1, None),
    ],
)
def test_26_virtual_socket_fits_one_physical_socket(sockets, cores, threads, expected):
    host = make_host(sockets=3, cores=2, threads=2)
    vm = make_vm(sockets=sockets, cores=cores, threads=threads, cpu_pinning_policy="dedicated")
    decision = schedule([host], vm, START)
    if expected is None:
        assert decision.chosen is None
        assert set(reasons(decision, 1)) & {"CPU", "CpuPinning"}
    else:
        assert set().union(*decision.placement.vcpu_pins.values()) == expected
        assert placement_problems(host, vm, decision.placement) == []


def test_26_with_pending_pinning_still_succeeds():
    host = make_host(sockets=3, cores=2, threads=2, allocations=[held(7, [0, 1], pending=True)])
    vm = make_vm(sockets=2, cores=1, threads=2, cpu_pinning_policy="dedicated")
    decision = schedule([host], vm, START)
    # The whole VM fits one node, so it goes to the emptiest one: socket 1 rather than what socket 0 has left.
    assert set().union(*decision.placement.vcpu_pins.values()) == {4, 5, 6, 7}
    assert placement_problems(host, vm, decision.placement) == []


def test_27_dedicated_vm_gets_fresh_pcpus_on_the_destination():
    vm = make_vm(cores=2, cpu_pinning_policy="dedicated", running_on=1)
    source = make_host(1, cores=2, allocations=[held(100, [0, 1])])
    destination = make_host(2, cores=4, allocations=[held(7, [0, 1])])
    decision = schedule([source, destination], vm, ScheduleRequest(action="migrate", force=True))
    assert decision.chosen == 2
    assert dict(decision.placement.vcpu_pins) == {0: {2}, 1: {3}}
    assert decision.placement.to_allocation(vm.id).exclusive_cpus == {2, 3}


def test_28_dedicated_vnuma_mapping_follows_the_chosen_pcpus():
    host = make_host(sockets=2, cores=4, allocations=[held(7, [0, 1, 2])])
    vm = make_vm(cores=4, cpu_pinning_policy="dedicated", numa_nodes=[(0, [0, 1], 512), (1, [2, 3], 512)])
    decision = schedule([host], vm, START)
    assert placement_problems(host, vm, decision.placement) == []
    node_of = {cpu: 0 if cpu < 4 else 1 for cpu in range(8)}
    for vn in vm.numa_nodes:
        assert {node_of[next(iter(decision.placement.vcpu_pins[v]))] for v in vn.vcpus} == {
            decision.placement.numa[vn.index]
        }


def test_29_resize_and_pin_numa_needs_a_suitable_host():
    good = make_host(1, sockets=2, cores=4, threads=2)
    dedicated_there = make_host(2, sockets=2, cores=4, threads=2, allocations=[held(7, [0])])
    one_core = make_host(3, sockets=2, cores=1, threads=2)
    odd_numa = make_host(4, sockets=2, cores=4, threads=2, nodes=4)
    no_numa = make_host(5, sockets=2, cores=4, threads=2, nodes=0)
    vm = make_vm(cpu_pinning_policy="resize_and_pin_numa", memory_mib=4096, optimized_for="high_performance")
    decision = schedule([good, dedicated_there, one_core, odd_numa, no_numa], vm, START)
    assert eligible(decision) == {1}
    assert set(reasons(decision, 2)) == {"CpuPinning"}
    assert set(reasons(decision, 3)) == {"CpuTopology"}
    assert set(reasons(decision, 4)) == {"CpuTopology"}
    assert set(reasons(decision, 5)) == {"CpuTopology", "NUMA"}
    placement = decision.placement
    assert placement.topology == (2, 3, 2)
    assert placement.numa == {0: 0, 1: 1}
    assert placement.memory_mib == {0: 2048, 1: 2048}
    assert set().union(*placement.vcpu_pins.values()) == set(range(16)) - {0, 1, 8, 9}
    assert placement.emulator_cpus == {0, 1}
    assert placement.exclusive_cpus == frozenset()
