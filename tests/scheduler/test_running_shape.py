"""Where a VM's emulator and I/O threads go and how the allocation holds them, the size a running Resize and Pin
NUMA VM keeps when it migrates, and which vNUMA nodes must sit on one host node. Expectations are worked out from
the host layouts the tests build."""

from __future__ import annotations

from scheduler.core import ScheduleRequest, build_host_state, schedule

from .factory import held, make_host, make_vm, vnode
from .validity import placement_problems

START = ScheduleRequest(action="start")
FORCED = ScheduleRequest(action="migrate", force=True)


def eligible(decision) -> set[int]:
    return {v.host_id for v in decision.verdicts if v.eligible}


# -- emulator and I/O threads -------------------------------------------------------------------------------------


def test_isolate_threads_emulator_threads_stay_off_the_vm_cores():
    # One node, 4 cores x 2 threads: core c has pCPUs 2c and 2c + 1. VM 7 holds pCPU 0 exclusively.
    host = make_host(cores=4, threads=2, allocations=[held(7, [0])])
    vm = make_vm(cores=2, cpu_pinning_policy="isolate_threads", optimized_for="high_performance", io_threads=1)
    placement = schedule([host], vm, START).placement

    vm_cores = {cpu // 2 for cpus in placement.vcpu_pins.values() for cpu in cpus}
    candidates = [cpu for cpu in range(8) if cpu != 0 and cpu // 2 not in vm_cores]
    assert placement.emulator_cpus == placement.io_thread_cpus == set(candidates[:2])
    assert placement.emulator_cpus <= placement.shared_cpus
    assert not placement.emulator_cpus & placement.exclusive_cpus
    assert placement_problems(host, vm, placement) == []


def test_emulator_threads_go_to_the_node_the_vm_uses_most():
    # Two nodes of 4 single-thread cores (node 0: pCPUs 0-3, node 1: 4-7); the VM fits node 1 only.
    host = make_host(sockets=2, cores=4, allocations=[held(7, [0, 1, 2])])
    vm = make_vm(cores=3, cpu_pinning_policy="dedicated", optimized_for="high_performance")
    placement = schedule([host], vm, START).placement

    assert set().union(*placement.vcpu_pins.values()) <= {4, 5, 6, 7}
    assert placement.emulator_cpus == {4, 5, 6, 7} - set().union(*placement.vcpu_pins.values())


def test_an_exclusive_vm_placed_later_does_not_take_the_emulator_pcpus():
    # VM 1 floats on host node 1 (strict vNUMA pinning): its emulator threads go to node 1's first two pCPUs.
    host = make_host(sockets=2, cores=4, allocations=[held(7, [0, 1, 2, 3])])
    first = make_vm(1, cores=2, memory_mib=1024, optimized_for="high_performance", numa_nodes=[(0, [0, 1], 1024, [1])])
    placement = schedule([host], first, START).placement
    assert placement.emulator_cpus == {4, 5}

    host = build_host_state(host.topology, [*host.allocations, placement.to_allocation(first.id, pending=False)])
    second = make_vm(2, cores=2, cpu_pinning_policy="dedicated")
    later = schedule([host], second, START).placement

    assert later.exclusive_cpus == {6, 7}


def test_high_performance_vms_of_one_node_share_their_emulator_pcpus():
    host = make_host(cores=8)
    vm = make_vm(1, cores=2, cpu_pinning_policy="dedicated", optimized_for="high_performance")
    first = schedule([host], vm, START).placement
    host = build_host_state(host.topology, [first.to_allocation(1, pending=False)])
    second = schedule(
        [host], make_vm(2, cores=2, cpu_pinning_policy="dedicated", optimized_for="high_performance"), START
    )

    assert second.placement.emulator_cpus == first.emulator_cpus
    assert not first.emulator_cpus & (first.exclusive_cpus | second.placement.exclusive_cpus)


def test_a_host_left_without_a_free_pcpu_runs_the_emulator_threads_on_the_vm_own():
    host = make_host(cores=2)
    vm = make_vm(cores=2, cpu_pinning_policy="dedicated", optimized_for="high_performance")
    placement = schedule([host], vm, START).placement

    assert placement.exclusive_cpus == placement.emulator_cpus == {0, 1}


def test_emulator_pinning_set_by_the_admin():
    vm = make_vm(
        cores=2, cpu_pinning_policy="dedicated", optimized_for="high_performance", emulator_cpus={0}, io_threads=1
    )
    fits = make_host(1, cores=4)
    too_small = make_host(2, cores=4, online=[1, 2, 3])
    taken = make_host(3, cores=4, allocations=[held(7, [0])])
    decision = schedule([fits, too_small, taken], vm, START)

    assert eligible(decision) == {1}
    assert decision.verdict(2).rejections[0].filter == "EmulatorPinning"
    assert decision.verdict(2).rejections[0].reason.endswith("pCPU 0 is offline")
    assert decision.verdict(3).rejections[0].reason.endswith("pCPU 0 is exclusively pinned by another VM")
    placement = decision.placement
    assert placement.emulator_cpus == placement.io_thread_cpus == {0}
    assert 0 not in set().union(*placement.vcpu_pins.values())
    assert 0 in placement.shared_cpus


# -- Resize and Pin NUMA on migration -----------------------------------------------------------------------------


def test_a_running_resize_and_pin_vm_keeps_its_size_and_vnuma_nodes():
    # Factory hosts number pCPUs core by core: on 2 x 4 x 2, node 0 holds cores 0-3 (pCPUs 0-7), node 1 cores
    # 4-7 (pCPUs 8-15). Resize and Pin gives 2 x 3 x 2 there, 2 x 7 x 2 on 2 x 8 x 2.
    source = make_host(1, sockets=2, cores=4, threads=2)
    same = make_host(2, sockets=2, cores=4, threads=2)
    bigger = make_host(3, sockets=2, cores=8, threads=2)
    vm = make_vm(
        cpu_pinning_policy="resize_and_pin_numa",
        optimized_for="high_performance",
        memory_mib=4096,
        running_on=1,
        running_topology=(2, 3, 2),
    )
    decision = schedule([source, same, bigger], vm, FORCED)

    assert eligible(decision) == {2}
    (refusal,) = decision.verdict(3).rejections
    assert refusal.filter == "CpuTopology"
    assert "2 sockets x 7 cores x 2 threads (28 vCPUs)" in refusal.reason
    assert "2 sockets x 3 cores x 2 threads (12 vCPUs)" in refusal.reason
    placement = decision.placement
    assert placement.topology == (2, 3, 2) and placement.vcpus == 12
    assert placement.numa == {0: 0, 1: 1}
    assert {v: set(c) for v, c in placement.vcpu_pins.items()} == {v: {v + 2} for v in range(6)} | {
        v: {v + 4} for v in range(6, 12)
    }
    assert placement.memory_mib == {0: 2048, 1: 2048}

    # Starting is another matter: a stopped VM takes the size of the host it starts on.
    started = schedule([bigger], make_vm(cpu_pinning_policy="resize_and_pin_numa", memory_mib=4096), START)
    assert started.placement.topology == (2, 7, 2)


def test_resize_and_pin_memory_is_split_in_whole_hugepages():
    host = make_host(sockets=2, cores=4, threads=2, hugepages={1048576: 4})
    vm = make_vm(cpu_pinning_policy="resize_and_pin_numa", memory_mib=3072, hugepage_kib=1048576)
    placement = schedule([host], vm, START).placement

    assert placement.hugepages == {0: {1048576: 2}, 1: {1048576: 1}}


# -- vNUMA nodes pinned on other hosts ----------------------------------------------------------------------------


def test_a_vnuma_node_pinned_only_on_another_host_need_not_fit_one_node_here():
    # Host 1 has two 4 GiB nodes; vNUMA node 1 (5 GiB) is pinned on host 2 only, so on host 1 its memory is the
    # kernel's to place, over both nodes.
    host = make_host(1, sockets=2, cores=2, memory_mib=[4096, 4096])
    vm = make_vm(
        cores=2,
        memory_mib=6144,
        numa_nodes=[vnode(0, [0], 1024), vnode(1, [1], 5120, by_host={2: [0]})],
        placement_hosts={1, 2},
    )
    decision = schedule([host], vm, START)

    assert eligible(decision) == {1}
    assert sum(decision.placement.memory_mib.values()) == 6144
