"""The VM's needs worked out once per decision (:class:`Plan`) and the full placement on one host (:func:`place`).

Rules the placement follows:

* Dynamic policies (dedicated, isolate_threads) choose the vNUMA -> host node mapping: every vNUMA node
  lands on one host node, distinct host nodes when possible, shared ones otherwise. A VM without vNUMA
  nodes is kept on one host node when its vCPUs and memory fit one (the emptiest such node), else it is
  spread, each virtual socket inside one physical socket, memory taken first from the nodes holding most
  of its vCPUs.
* Manual NUMA pinning (strict / interleave) is honoured as written, node by node, via backtracking;
  ``preferred`` pinning is reported but never enforced. Manual CPU pinning is kept as written.
* Memory that no vNUMA node pins is charged to the nodes holding the VM's pCPUs first, then to those with
  most free memory, so per-node accounting stays complete although the kernel decides where it lands.
* vCPUs of dynamic policies go in order onto the chosen pCPUs: cores the VM fills alone keep its virtual
  cores on sibling threads; single-thread VMs fill partly used cores first, leaving whole cores free.
* High Performance VMs get emulator and IO threads pinned to the first two pCPUs the VM holds on the host
  node it uses most (for VMs whose vCPUs float but whose NUMA is pinned: the first two pCPUs of the most
  used node that no VM holds exclusively), as oVirt does. Other VMs leave them to the host's shared CPUs.
* Resize and Pin NUMA: one vNUMA node per host node, all threads of each node except its first core
  (left to the host and the emulator threads), topology resized to the host's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .cpuset import cpus_of, mask_of
from .fit import (
    SMALL_PAGE_KIB,
    CellNeed,
    CpuMode,
    NoFit,
    Uniform,
    map_cells,
    memory_shortfall,
    node_units,
    pack_sockets,
    page_for,
    pin_cells,
    spread_memory,
    uniform,
)
from .model import ClusterConfig, Placement, ScheduleRequest, VMRequest, VNumaNode
from .state import KIB_PER_MIB, HostState

_MODES: Mapping[str, CpuMode] = {"dedicated": "prefer", "isolate_threads": "isolate"}


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything about the VM that does not depend on the host, computed once per decision."""

    vm: VMRequest
    request: ScheduleRequest
    cluster: ClusterConfig
    vcpus: int
    mode: CpuMode
    page_kib: int
    memory_kib: int
    vsocket_size: int
    manual_pins: Mapping[int, int]
    manual_mask: int
    cell_vnodes: tuple[VNumaNode, ...]
    resize: bool

    static_cells: tuple[CellNeed, ...] | None
    uniform: Uniform | None

    @property
    def hugepages(self) -> bool:
        return self.page_kib != SMALL_PAGE_KIB

    def cells(self, host: HostState) -> tuple[CellNeed, ...]:
        """The vNUMA nodes that must each fit one node of this host (pinning resolved for this host)."""
        if self.static_cells is not None:
            return self.static_cells
        if self.resize:
            return _resize_cells(self, host)
        return _vnode_cells(self.cell_vnodes, self.page_kib, host.id)


def _vnode_cells(vnodes: tuple[VNumaNode, ...], page_kib: int, host_id: int) -> tuple[CellNeed, ...]:
    cells = []
    for vnode in vnodes:
        pins = vnode.pins_on(host_id)
        hard = vnode.enforced and bool(pins)
        cells.append(
            CellNeed(
                index=vnode.index,
                vcpus=tuple(sorted(vnode.vcpus)),
                memory_mib=vnode.memory_mib,
                page_sizes=(page_kib,),
                allowed=pins if hard else None,
                preferred=() if hard else tuple(sorted(pins)),
            )
        )
    return tuple(cells)


def make_plan(vm: VMRequest, request: ScheduleRequest, cluster: ClusterConfig) -> Plan:
    mode = _MODES.get(vm.cpu_pinning_policy, "none")
    if mode != "none":
        cell_vnodes = vm.numa_nodes
    else:
        # Without dynamic pinning only hard NUMA pinning places memory; the rest is left to the kernel.
        cell_vnodes = tuple(v for v in vm.numa_nodes if v.enforced and (v.pinned_to or v.pinned_to_by_host))
    manual = vm.cpu_pinning if vm.cpu_pinning_policy == "manual" else {}
    manual_pins = {vcpu: mask_of(cpus) for vcpu, cpus in manual.items()}
    manual_mask = 0
    for mask in manual_pins.values():
        manual_mask |= mask
    resize = vm.cpu_pinning_policy == "resize_and_pin_numa"
    page_kib = vm.hugepage_kib or SMALL_PAGE_KIB
    # Cells are the same on every host unless some vNUMA node is pinned differently per host.
    per_host = resize or any(v.pinned_to_by_host for v in cell_vnodes)
    static = None if per_host else _vnode_cells(cell_vnodes, page_kib, -1)
    return Plan(
        vm=vm,
        request=request,
        cluster=cluster,
        vcpus=vm.vcpus,
        mode=mode,
        page_kib=page_kib,
        memory_kib=vm.memory_mib * KIB_PER_MIB,
        vsocket_size=vm.cores * vm.threads,
        manual_pins=manual_pins,
        manual_mask=manual_mask,
        cell_vnodes=cell_vnodes,
        resize=resize,
        static_cells=static,
        uniform=uniform(static, mode) if static else None,
    )


def place(plan: Plan, host: HostState) -> Placement | NoFit:
    """The complete placement of the VM on ``host`` (which already passed the filters)."""
    if plan.resize:
        return _place_resize(plan, host)
    vm = plan.vm
    numa: dict[int, int] = {}
    pins: dict[int, int] = {}
    taken = 0
    small: dict[int, int] = {}
    huge: dict[int, dict[int, int]] = {}
    placed_mib = 0

    cells = plan.cells(host)
    if cells:
        mapping = map_cells(host, cells, plan.mode, may_share=True)
        if isinstance(mapping, NoFit):
            return mapping
        for cell in cells:
            fit = mapping[cell.index]
            _charge(small, huge, fit.node, cell.memory_mib, fit.page_kib)
            placed_mib += cell.memory_mib
            if host.numa_supported:
                numa[cell.index] = fit.node
        if plan.mode != "none":
            pinned = pin_cells(host, cells, mapping, plan.mode, vm.threads)
            if isinstance(pinned, NoFit):
                return NoFit(pinned.reason, "CpuPinning")
            pins, taken = pinned
    elif plan.mode != "none":
        whole = _place_whole(plan, host, small, huge)
        if isinstance(whole, NoFit):
            return whole
        pins, taken = whole
        placed_mib = vm.memory_mib

    if host.numa_supported:
        for vnode in vm.numa_nodes:
            soft = [n for n in sorted(vnode.pins_on(host.id)) if n in host.node_by_index]
            if vnode.index not in numa and soft:
                numa[vnode.index] = soft[0]

    rest = max(vm.memory_mib - placed_mib, 0)
    if rest:
        order = _memory_order(host, pins.values(), small)
        if not spread_memory(host, order, rest, plan.page_kib, small, huge):
            short = memory_shortfall(rest, (plan.page_kib,), host.small_free_kib, host.hugepages_free, "")
            return NoFit(short, "HugePages" if plan.hugepages else "Memory")

    vcpu_pins = {vcpu: frozenset((pcpu,)) for vcpu, pcpu in pins.items()}
    shared = 0
    if plan.manual_pins:
        vcpu_pins = {vcpu: frozenset(cpus_of(mask)) for vcpu, mask in plan.manual_pins.items()}
        shared = plan.manual_mask
    emulator = _emulator_cpus(plan, host, mask_of(pins.values()) | shared, small, huge)
    return Placement(
        host_id=host.id,
        numa=numa,
        vcpu_pins=vcpu_pins,
        emulator_cpus=emulator,
        io_thread_cpus=emulator if vm.io_threads else frozenset(),
        exclusive_cpus=frozenset(cpus_of(taken)),
        shared_cpus=frozenset(cpus_of(shared)),
        memory_mib=small,
        hugepages=huge,
        topology=(vm.sockets, vm.cores, vm.threads),
    )


def _charge(small: dict[int, int], huge: dict[int, dict[int, int]], node: int, mib: int, page_kib: int) -> None:
    if page_kib == SMALL_PAGE_KIB:
        small[node] = small.get(node, 0) + mib
    else:
        pools = huge.setdefault(node, {})
        pools[page_kib] = pools.get(page_kib, 0) + mib * KIB_PER_MIB // page_kib


def _place_whole(
    plan: Plan, host: HostState, small: dict[int, int], huge: dict[int, dict[int, int]]
) -> tuple[dict[int, int], int] | NoFit:
    """A dynamically pinned VM without vNUMA nodes: one host node if it fits, else spread over sockets."""
    vm, mode = plan.vm, plan.mode
    whole = CellNeed(0, (), vm.memory_mib, (plan.page_kib,))
    for node in sorted(host.nodes, key=lambda n: (-node_units(host, n, mode), n.index)):
        if node_units(host, node, mode) < plan.vcpus:
            break
        size = page_for(whole, node.small_free_kib, node.hugepages_free)
        if size is None:
            continue
        cores = host.layout.node_cores.get(node.index, ())
        got = pack_sockets(cores, host.free, vm.sockets, plan.vsocket_size, mode, vm.threads)
        if got is not None:
            _charge(small, huge, node.index, vm.memory_mib, size)
            return dict(enumerate(got[0])), got[1]
    got = pack_sockets(host.layout.cores, host.free, vm.sockets, plan.vsocket_size, mode, vm.threads)
    if got is None:
        return NoFit(f"the VM's {vm.sockets} virtual sockets of {plan.vsocket_size} vCPUs do not fit", "CpuPinning")
    pins = dict(enumerate(got[0]))
    if not spread_memory(host, _memory_order(host, pins.values(), small), vm.memory_mib, plan.page_kib, small, huge):
        short = memory_shortfall(vm.memory_mib, (plan.page_kib,), host.small_free_kib, host.hugepages_free, "")
        return NoFit(short, "HugePages" if plan.hugepages else "Memory")
    return pins, got[1]


def _memory_order(host: HostState, pcpus, small: Mapping[int, int]) -> list[int]:
    """Nodes holding most of the VM's pCPUs first, then the ones with most free memory."""
    pcpu_mask = mask_of(pcpus)
    return [
        n.index
        for n in sorted(
            host.nodes,
            key=lambda n: (-(n.cpus & pcpu_mask).bit_count(), -(n.small_free_kib - small.get(n.index, 0) * 1024)),
        )
    ]


def _emulator_cpus(
    plan: Plan, host: HostState, vm_cpus: int, small: Mapping[int, int], huge: Mapping[int, Mapping[int, int]]
) -> frozenset[int]:
    if plan.vm.optimized_for != "high_performance":
        return frozenset()
    if vm_cpus:
        node = max(host.nodes, key=lambda n: ((n.cpus & vm_cpus).bit_count(), -n.index))
        return frozenset(cpus_of(node.cpus & vm_cpus)[:2])
    if not plan.cell_vnodes or not host.numa_supported:
        return frozenset()
    used = {n.index: small.get(n.index, 0) * KIB_PER_MIB for n in host.nodes}
    for index, pools in huge.items():
        used[index] += sum(size * pages for size, pages in pools.items())
    node = host.node_by_index[max(used, key=lambda i: (used[i], -i))]
    return frozenset(cpus_of(node.cpus & ~host.exclusive)[:2])


def resize_topology(host: HostState) -> tuple[int, int, int]:
    """The (sockets, cores, threads) a Resize and Pin NUMA VM gets on this host."""
    topo = host.topology
    return topo.sockets, topo.cores_per_socket - 1, topo.threads_per_core


def _resize_split(plan: Plan, host: HostState) -> list[int]:
    count = len(host.nodes)
    share, extra = divmod(plan.vm.memory_mib, count)
    return [share + (1 if i < extra else 0) for i in range(count)]


def _resize_cells(plan: Plan, host: HostState) -> tuple[CellNeed, ...]:
    if not host.numa_supported:
        return ()
    return tuple(
        CellNeed(i, (), mib, (plan.page_kib,), allowed=frozenset((node.index,)))
        for i, (node, mib) in enumerate(zip(host.nodes, _resize_split(plan, host), strict=True))
    )


def _place_resize(plan: Plan, host: HostState) -> Placement | NoFit:
    if not host.numa_supported:
        return NoFit("does not support NUMA")
    cells = _resize_cells(plan, host)
    mapping = map_cells(host, cells, "none", may_share=False)
    if isinstance(mapping, NoFit):
        return mapping
    pins: dict[int, frozenset[int]] = {}
    for node in host.nodes:
        for core in host.layout.node_cores.get(node.index, ())[1:]:
            for cpu in cpus_of(core.mask):
                pins[len(pins)] = frozenset((cpu,))
    sockets, cores, threads = resize_topology(host)
    if len(pins) != sockets * cores * threads:
        return NoFit("Resize and Pin NUMA needs every CPU of the host online", "CpuTopology")
    small: dict[int, int] = {}
    huge: dict[int, dict[int, int]] = {}
    for cell in cells:
        _charge(small, huge, mapping[cell.index].node, cell.memory_mib, plan.page_kib)
    first = host.layout.node_cores.get(host.nodes[0].index, ())
    emulator = (
        frozenset(cpus_of(first[0].mask)) if first and plan.vm.optimized_for == "high_performance" else frozenset()
    )
    shared = frozenset().union(*pins.values())
    return Placement(
        host_id=host.id,
        numa={cell.index: mapping[cell.index].node for cell in cells},
        vcpu_pins=pins,
        emulator_cpus=emulator,
        io_thread_cpus=emulator if plan.vm.io_threads else frozenset(),
        exclusive_cpus=frozenset(),
        shared_cpus=shared,
        memory_mib=small,
        hugepages=huge,
        topology=(sockets, cores, threads),
    )
