"""A VM and its allocation on one host -> the DomainSpec a driver runs (pinning, NUMA cells, hugepages, devices).

The guest's vNUMA nodes are the ones the scheduler placed (``VmConfig.vnuma_cells``), and once any of them is
bound to a host node, each is bound where the allocation charged its memory, so that what the host gives the
guest is what the scheduler counted. What the allocation suspends is left out: the placement pins and binds
nothing it suspends, and suspended hugepages leave the memory on small pages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from hpadmin.hypervisor.base import DomainSpec, GuestNumaCell
from hpadmin.vms.models import VirtualMachine, VmStatus, Watchdog
from hpadmin.vms.numa import VNumaNode
from scheduler.core.state import KIB_PER_MIB
from scheduler.models import Allocation


def domain_spec(vm: VirtualMachine, allocation: Allocation) -> DomainSpec:
    pins = {int(v): tuple(sorted(cpus)) for v, cpus in allocation.cpu_pinning.items()}
    sockets, cores, threads = allocation.topology or (vm.sockets, vm.cores, vm.threads)
    vnodes = vm.vnuma_cells((sockets, cores, threads))
    bound = _bound_nodes(vnodes, allocation)
    mapping = {int(v) for v in allocation.numa_mapping}
    cells = tuple(
        GuestNumaCell(
            index=n.index,
            vcpus=n.vcpus,
            memory_mib=n.memory_mib,
            host_nodes=bound.get(n.index, ()),
            # A node the scheduler did not place is bound where its memory was charged, strictly.
            mode=n.tune_mode if n.index in mapping else "strict",
        )
        for n in vnodes
    )
    return DomainSpec(
        uuid=str(vm.uuid),
        name=vm.name,
        sockets=sockets,
        cores=cores,
        threads=threads,
        memory_mib=vm.memory_mib,
        cpu_passthrough=vm.cpu_passthrough,
        vcpu_pins=pins,
        emulator_cpus=tuple(sorted(allocation.emulator_cpus)),
        iothreads=vm.io_threads,
        iothread_cpus=tuple(sorted(allocation.iothread_cpus)),
        numa_cells=cells,
        hugepage_kib=None if _suspends(allocation, "hugepages") else vm.hugepage_kib,
        headless=vm.headless,
        memballoon=vm.memory_balloon,
        usb=vm.usb_enabled,
        soundcard=vm.soundcard_enabled,
        rng=vm.virtio_rng,
        watchdog=None if vm.watchdog == Watchdog.NONE else vm.watchdog,
        tsc_khz=_guest_tsc_khz(vm, allocation),
    )


def _suspends(allocation: Allocation, setting: str) -> bool:
    return any(item["setting"] == setting for item in allocation.suspended_settings)


def _bound_nodes(vnodes: Sequence[VNumaNode], allocation: Allocation) -> dict[int, tuple[int, ...]]:
    """vNUMA node -> the host nodes its memory is bound to; empty when the scheduler placed none of them (the
    kernel then places the guest's memory).

    A placed node is bound to its node in ``numa_mapping``. The others share what the allocation charges beyond
    the placed ones: each takes the host node with the least such memory that holds it whole, else as many
    nodes as it needs, those with the most such memory first."""
    mapping = {int(v): int(h) for v, h in allocation.numa_mapping.items()}
    if not mapping:
        return {}
    left: dict[int, int] = defaultdict(int)  # KiB charged per host node and not yet given to a vNUMA node
    for node, mib in allocation.memory_mib.items():
        left[int(node)] += mib * KIB_PER_MIB
    for node, pools in allocation.hugepages.items():
        left[int(node)] += sum(int(size) * pages for size, pages in pools.items())
    charged = tuple(sorted(n for n, kib in left.items() if kib > 0))
    bound: dict[int, tuple[int, ...]] = {}
    for vnode in vnodes:
        if vnode.index in mapping:
            bound[vnode.index] = (mapping[vnode.index],)
            left[mapping[vnode.index]] -= vnode.memory_mib * KIB_PER_MIB
    for vnode in vnodes:
        if vnode.index in bound:
            continue
        need = vnode.memory_mib * KIB_PER_MIB
        whole = [n for n in sorted(left) if left[n] >= need]
        if whole:
            node = min(whole, key=left.__getitem__)
            left[node] -= need
            bound[vnode.index] = (node,)
            continue
        nodes = []
        for node in sorted(left, key=lambda n: (-left[n], n)):
            if need <= 0 or left[node] <= 0:
                break
            take = min(need, left[node])
            left[node] -= take
            need -= take
            nodes.append(node)
        bound[vnode.index] = tuple(sorted(nodes)) or charged
    return bound


def _guest_tsc_khz(vm: VirtualMachine, allocation: Allocation) -> int | None:
    """The TSC frequency a VM that uses it is given: its host's when it starts, the one it started with when it
    migrates (the guest's clock must not change under it)."""
    if not vm.use_tsc_frequency:
        return None
    return allocation.host.tsc_khz if vm.status == VmStatus.STARTING else vm.tsc_khz_at_start
