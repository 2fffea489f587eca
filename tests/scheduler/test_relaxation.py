"""Degraded placement: when no host fits a VM's whole configuration, the fewest settings are suspended.

The generated cases are checked against an exhaustive reference: every set of settings is tried on the raw
host with the exhaustive search of ``test_properties``, the VM as that set leaves it being written here from
the settings' meaning, not taken from the scheduler.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import given, note
from hypothesis import strategies as st

from scheduler.core import Allocation, ClusterConfig, ScheduleRequest, VMRequest, schedule
from scheduler.core.relaxation import reasons, suspension_sets

from .factory import held, make_host, make_vm, vnode
from .test_properties import FAST, HostCase, host_cases, reference_problem, vms
from .validity import raw_placement_problems

START = ScheduleRequest(action="start", allow_degraded=True)
MIGRATE = ScheduleRequest(action="migrate", force=True, allow_degraded=True)
PAGE_2M = 2048  # KiB
SETTINGS = ("io_emulator_pinning", "numa_pinning", "hugepages", "cpu_pinning")


def hp_vm(**fields) -> VMRequest:
    """A High Performance VM: 2 vCPUs dedicated, 2 vNUMA nodes pinned to host nodes 0 and 1, 2 MiB pages."""
    defaults = dict(
        optimized_for="high_performance",
        cores=2,
        memory_mib=2048,
        cpu_pinning_policy="dedicated",
        hugepage_kib=PAGE_2M,
        numa_nodes=(vnode(0, [0], 1024, [0]), vnode(1, [1], 1024, [1])),
    )
    return make_vm(**(defaults | fields))


def numa_host(host_id: int, **fields):
    """Two NUMA nodes of 4 cores and 8 GiB with 2048 pages of 2 MiB each: fits :func:`hp_vm` whole."""
    fields.setdefault("hugepages", {PAGE_2M: 2048})
    return make_host(host_id, sockets=2, cores=4, memory_mib=8192, **fields)


def test_a_host_that_fits_the_whole_configuration_always_wins():
    flat = make_host(1, cores=16, memory_mib=65536, nodes=0, hugepages={PAGE_2M: 4096})
    busy = numa_host(2, allocations=[held(7, exclusive=[0, 1, 2, 4, 5, 6], memory_mib={0: 4096, 1: 4096})])
    decision = schedule([flat, busy], hp_vm(), START)
    assert decision.chosen == 2 and decision.placement.suspended == ()
    flat_verdict = decision.verdict(1)
    assert flat_verdict.eligible and flat_verdict.rank == 2 and flat_verdict.suspended == ("numa_pinning",)
    assert [r.filter for r in flat_verdict.rejections] == ["NUMA"]  # what the whole configuration fails there


def test_numa_pinning_is_suspended_on_a_host_without_numa_and_says_why():
    flat = make_host(1, cores=16, memory_mib=65536, nodes=0, hugepages={PAGE_2M: 4096})
    decision = schedule([flat], hp_vm(), START)
    assert decision.chosen == 1 and decision.placement.suspended == ("numa_pinning",)
    assert decision.placement.numa == {}  # no vNUMA node bound
    assert len(decision.placement.vcpu_pins) == 2  # still pinned, hugepage-backed, emulator pinned
    assert decision.placement.hugepages == {0: {PAGE_2M: 1024}} and decision.placement.emulator_cpus
    verdict = decision.verdict(1)
    assert reasons(verdict.suspended, verdict.rejections) == {"numa_pinning": "does not support NUMA"}


def test_without_allow_degraded_nothing_is_suspended():
    flat = make_host(1, cores=16, memory_mib=65536, nodes=0, hugepages={PAGE_2M: 4096})
    decision = schedule([flat], hp_vm(), ScheduleRequest(action="start"))
    assert decision.chosen is None and "does not support NUMA" in decision.error.message


def test_every_setting_of_a_minimal_set_is_needed():
    # No NUMA and no hugepage pool: both settings go, and neither alone is enough.
    bare = make_host(1, cores=16, memory_mib=65536, nodes=0)
    decision = schedule([bare], hp_vm(), START)
    assert decision.placement.suspended == ("numa_pinning", "hugepages")
    assert decision.placement.hugepages == {} and decision.placement.memory_mib == {0: 2048}
    # Without one of the two settings, the other alone is suspended: each was needed.
    alone = [schedule([bare], hp_vm(hugepage_kib=None), START), schedule([bare], hp_vm(numa_nodes=()), START)]
    assert [d.placement.suspended for d in alone] == [("numa_pinning",), ("hugepages",)]


def test_fewer_suspended_settings_rank_first_then_the_weights():
    # Host 1 lacks only hugepages; host 2 lacks NUMA and hugepages; host 3 lacks hugepages and is busier.
    one = numa_host(1, hugepages={})
    two = make_host(2, cores=16, memory_mib=65536, nodes=0)
    three = numa_host(3, hugepages={}, allocations=[held(7, exclusive=[0, 4], memory_mib={0: 2048, 1: 2048})])
    decision = schedule([two, three, one], hp_vm(), START)
    assert decision.ranked == (1, 3, 2)
    assert [decision.verdict(h).suspended for h in decision.ranked] == [
        ("hugepages",),
        ("hugepages",),
        ("numa_pinning", "hugepages"),
    ]


def test_cpu_pinning_suspends_io_and_emulator_pinning_with_it():
    # Every pCPU is held, exclusively or pinned by others: the vCPUs can only share, so their pinning and the
    # emulator's go.
    others = [held(7, exclusive=range(6)), Allocation(8, shared_cpus=frozenset({6, 7}), vcpus=2)]
    host = numa_host(1, allocations=others)
    decision = schedule([host], hp_vm(hugepage_kib=None, numa_nodes=()), START)
    placement = decision.placement
    assert placement.suspended == ("io_emulator_pinning", "cpu_pinning")
    assert placement.vcpu_pins == {} and placement.exclusive_cpus == frozenset() and not placement.emulator_cpus


def test_the_admins_emulator_pinning_alone_is_suspended_when_its_pcpus_are_taken():
    host = numa_host(1, allocations=[held(7, exclusive=[6, 7])])
    vm = hp_vm(emulator_cpus=frozenset({6, 7}))
    decision = schedule([host], vm, START)
    assert decision.placement.suspended == ("io_emulator_pinning",)
    assert decision.placement.emulator_cpus == frozenset() and len(decision.placement.vcpu_pins) == 2


def test_the_guest_visible_shape_is_never_suspended():
    # A host with too little memory, too few CPUs for the VM's size, or without the VM's CPU flags stays refused.
    small = make_host(1, cores=16, memory_mib=1024, nodes=0)
    few = make_host(2, cores=1, memory_mib=65536, nodes=0)
    old_cpu = make_host(3, cores=16, memory_mib=65536, nodes=0, flags=())
    vm = hp_vm(hugepage_kib=None, cpu_passthrough=True, cpu_flags_at_start=frozenset({"sse4_2"}), running_on=9)
    decision = schedule([small, few, old_cpu], vm, MIGRATE)
    assert decision.chosen is None
    assert all(not v.eligible and not v.suspended for v in decision.verdicts)
    # Where a host takes it degraded, the guest keeps its topology and vNUMA node count.
    flat = make_host(4, cores=16, memory_mib=65536, nodes=0)
    placement = schedule([flat], vm, MIGRATE).placement
    assert placement.topology == (1, 2, 1) and placement.suspended == ("numa_pinning",)


def test_resize_and_pin_numa_keeps_its_pinning():
    vm = make_vm(cpu_pinning_policy="resize_and_pin_numa", optimized_for="high_performance", memory_mib=2048)
    assert all("cpu_pinning" not in g and "numa_pinning" not in g for g in suspension_sets(vm))
    flat = make_host(1, cores=16, memory_mib=65536, nodes=0)
    assert schedule([flat], vm, START).chosen is None


# -- generated cases against the exhaustive reference ----------------------------------------------------------


def has(vm: VMRequest) -> set[str]:
    """The settings the VM has that a host may fail to honour, from their meaning."""
    pinned_numa = any(v.tune_mode != "preferred" and (v.pinned_to or v.pinned_to_by_host) for v in vm.numa_nodes)
    policy = vm.cpu_pinning_policy
    out = set()
    if vm.emulator_cpus or (vm.optimized_for == "high_performance" and (policy != "none" or pinned_numa)):
        out.add("io_emulator_pinning")
    if policy != "resize_and_pin_numa" and (
        pinned_numa or (policy in ("dedicated", "isolate_threads") and vm.numa_nodes)
    ):
        out.add("numa_pinning")
    if vm.hugepage_kib:
        out.add("hugepages")
    if policy in ("manual", "dedicated", "isolate_threads"):
        out.add("cpu_pinning")
    return out


def without(vm: VMRequest, suspended: set[str]) -> VMRequest:
    """The VM with ``suspended`` left out, as the settings' meaning says (NUMA pinning: see ``spread``)."""
    fields: dict = {}
    if "cpu_pinning" in suspended:
        fields.update(cpu_pinning_policy="none", cpu_pinning={}, emulator_cpus=frozenset())
    if "io_emulator_pinning" in suspended:
        fields["emulator_cpus"] = frozenset()
    if "numa_pinning" in suspended:
        fields["numa_nodes"] = tuple(replace(v, pinned_to=frozenset(), pinned_to_by_host={}) for v in vm.numa_nodes)
    if "hugepages" in suspended:
        fields["hugepage_kib"] = None
    return replace(vm, **fields)


def feasible(case: HostCase, vm: VMRequest, suspended: set[str], cluster: ClusterConfig) -> bool:
    dynamic = vm.cpu_pinning_policy in ("dedicated", "isolate_threads") and "cpu_pinning" not in suspended
    spread = "numa_pinning" in suspended and dynamic
    return reference_problem(case.raw(vm), without(vm, suspended), cluster, spread=spread) is None


def fewest(case: HostCase, vm: VMRequest, cluster: ClusterConfig) -> int | None:
    """How many settings at the fewest must be suspended for the VM to fit (None: no set will do)."""
    owned = [s for s in SETTINGS if s in has(vm)]
    for size in range(len(owned) + 1):
        for chosen in itertools.combinations(owned, size):
            # Emulator pinning the placement chose goes with the CPU pinning, or the NUMA pinning of floating vCPUs.
            floating = vm.cpu_pinning_policy == "none" and not vm.emulator_cpus
            goes = "cpu_pinning" in chosen or ("numa_pinning" in chosen and floating)
            group = set(chosen) | ({"io_emulator_pinning"} & set(owned) if goes else set())
            if len(group) == size and feasible(case, vm, group, cluster):
                return size
    return None


@FAST
@given(st.data(), vms(host_ids=(1, 2, 3)), st.booleans())
def test_degraded_verdicts_match_the_reference(data, vm, threads_as_cores):
    """A host the whole configuration fits is never degraded; any other host is eligible exactly when some set
    of settings lets the VM in, with a set that the reference confirms and that is as small as the reference's
    smallest; hosts rank by the number of settings suspended; every placement keeps to what it suspends."""
    cases = [data.draw(host_cases(host_id)) for host_id in range(1, data.draw(st.integers(1, 3)) + 1)]
    cluster = ClusterConfig(threads_as_cores=threads_as_cores)
    decision = schedule([case.state() for case in cases], vm, START, cluster)
    note(f"{cases}\n{vm}\n{decision}")
    counts = {}
    for case, verdict in zip(cases, decision.verdicts, strict=True):
        least = fewest(case, vm, cluster)
        assert verdict.eligible == (least is not None), (least, verdict)
        if least is None:
            continue
        suspended = set(verdict.suspended)
        assert len(suspended) == least and suspended <= has(vm)
        assert feasible(case, vm, suspended, cluster)
        counts[case.topology.id] = least
    assert [counts[h] for h in decision.ranked] == sorted(counts.values())
    if (placement := decision.placement) is not None:
        case = next(c for c in cases if c.topology.id == decision.chosen)
        suspended = set(placement.suspended)
        dynamic = vm.cpu_pinning_policy in ("dedicated", "isolate_threads") and "cpu_pinning" not in suspended
        relaxed = without(vm, suspended)
        spread = "numa_pinning" in suspended and dynamic
        assert raw_placement_problems(case.raw(vm), relaxed, placement, spread=spread) == []
        if "hugepages" in suspended:
            assert placement.hugepages == {}
        if "io_emulator_pinning" in suspended:
            assert placement.emulator_cpus == frozenset()
