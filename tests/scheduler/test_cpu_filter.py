"""The CPU filter counts a core as taken only when every one of its threads is pinned exclusively (as oVirt)."""

from __future__ import annotations

import pytest

from scheduler.core import Allocation, ClusterConfig, ScheduleRequest, schedule

from .factory import held, make_host, make_vm

START = ScheduleRequest(action="start")
CORES = ClusterConfig(threads_as_cores=False)


def rejections(decision) -> dict[str, str]:
    return {r.filter: r.reason for r in decision.verdicts[0].rejections}


@pytest.mark.parametrize("policy", ["dedicated", "isolate_threads"])
def test_free_threads_on_partly_pinned_cores_hold_an_exclusive_vm(policy):
    """4 cores x 2 threads, VMs 7, 8 and 9 each hold one thread of cores 0, 1 and 2: five threads are free."""
    host = make_host(cores=4, threads=2, allocations=[held(7, [0]), held(8, [2]), held(9, [4])])
    vm = make_vm(cores=4 if policy == "dedicated" else 1, cpu_pinning_policy=policy)
    decision = schedule([host], vm, START, CORES)
    assert decision.chosen == 1, rejections(decision)
    pinned = {cpu for cpus in decision.placement.vcpu_pins.values() for cpu in cpus}
    if policy == "dedicated":
        assert len(pinned) == 4 and pinned <= {1, 3, 5, 6, 7}
    else:
        assert decision.placement.exclusive_cpus == {6, 7}  # the one whole core


def test_a_host_with_one_thread_of_most_cores_pinned_takes_a_1x8_dedicated_vm():
    """2 nodes x 16 cores x 2 threads; 30 cores have one thread held exclusively, by 30 VMs: 34 threads are free."""
    host = make_host(sockets=2, cores=16, threads=2, allocations=[held(i, [2 * i]) for i in range(30)])
    decision = schedule([host], make_vm(cores=8, cpu_pinning_policy="dedicated"), START, CORES)
    assert decision.chosen == 1, rejections(decision)
    pinned = {cpu for cpus in decision.placement.vcpu_pins.values() for cpu in cpus}
    assert len(pinned) == 8 and all(cpu % 2 or cpu >= 60 for cpu in pinned)  # free threads only


def test_a_core_whose_threads_are_all_pinned_is_taken():
    """Cores 0 and 1 are fully held (by two VMs each), cores 2 and 3 half: 2 of 4 cores are left for others."""
    others = [held(7, [0]), held(8, [1, 2]), held(9, [3, 4]), held(10, [6])]
    host = make_host(cores=4, threads=2, allocations=[*others, Allocation(vm_id=11, vcpus=2)])
    decision = schedule([host], make_vm(cores=2, cpu_pinning_policy="none"), START, CORES)
    assert decision.chosen == 1
    decision = schedule([host], make_vm(cores=3, cpu_pinning_policy="none"), START, CORES)
    assert rejections(decision) == {
        "CPU": "it has an insufficient amount of CPU cores to run the VM: 2 of its 4 cores are not exclusively "
        "pinned, 3 needed"
    }


def test_an_exclusive_vm_leaves_the_largest_shared_vm_its_cores():
    """A 3-vCPU shared VM runs there: of 4 cores, a dedicated VM may take 1 core's worth of threads, not 2."""
    host = make_host(cores=4, threads=2, allocations=[held(7, [0]), Allocation(vm_id=8, vcpus=3)])
    assert schedule([host], make_vm(cores=2, cpu_pinning_policy="dedicated"), START, CORES).chosen == 1
    decision = schedule([host], make_vm(cores=3, cpu_pinning_policy="dedicated"), START, CORES)
    assert rejections(decision) == {
        "CPU": "it has an insufficient amount of CPU cores to run the VM: 4 of its 4 cores are not exclusively "
        "pinned, 5 needed (2 for the VM's 3 vCPUs, 3 for the largest VM sharing the others)"
    }
