"""The VM's needs worked out once per decision (:class:`Plan`) and the full placement on one host (:func:`place`).

Rules the placement follows:

* Dynamic policies (dedicated, isolate_threads) choose the vNUMA -> host node mapping: every vNUMA node
  lands on one host node, distinct host nodes when possible, shared ones otherwise. A VM without vNUMA
  nodes is kept on one host node when its vCPUs and memory fit one (the emptiest such node), else it is
  spread, each virtual socket inside one physical socket, memory taken first from the nodes holding most
  of its vCPUs.
* Manual NUMA pinning (strict / interleave) is honoured as written, node by node, via backtracking;
  ``preferred`` pinning is never enforced: such a vNUMA node is charged to its node when that has room.
  Manual CPU pinning is kept as written.
* Memory that no vNUMA node pins is charged to the nodes holding the VM's pCPUs first, then to those with
  most free memory, so per-node accounting stays complete; the domain binds it there once any of the VM's
  memory is bound (``operations.specs``), else the kernel decides where it lands.
* vCPUs of dynamic policies go in order onto the chosen pCPUs: cores the VM fills alone keep its virtual
  cores on sibling threads; single-thread VMs fill partly used cores first, leaving whole cores free.
* Emulator and IO threads share pCPUs with other VMs (Nova's ``emulator_threads_policy=share``) where oVirt
  puts them: a High Performance VM's go to the first two pCPUs of the host node it uses most (most of its
  vCPUs' pCPUs, then most of its memory) that no VM holds exclusively and none of its vCPUs runs on, so
  under isolate_threads they stay off its cores altogether. They are recorded as shared pinning: no later
  exclusive placement takes them, and the HP VMs of a node use the same two. Only on a host whose every
  pCPU is held exclusively or runs the VM's vCPUs do they join the VM's own pCPUs. The admin's "Emulator
  and I/O thread pinning" replaces the choice, for any VM, and the vCPUs the scheduler pins keep off it.
  Other VMs, and HP VMs whose vCPUs float and whose vNUMA nodes are not pinned, leave them floating.
* Resize and Pin NUMA: one strict vNUMA node per host node (:func:`resize_vnuma`), on all threads of the
  node except its first core (left to the host and the emulator threads), topology resized to the host's.
  A running VM keeps its size: it migrates only to hosts that give it the same topology.
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
    take_cpus,
    uniform,
)
from .model import Allocation, ClusterConfig, Placement, ScheduleRequest, VMRequest, VNumaNode
from .relaxation import SETTINGS
from .state import KIB_PER_MIB, HostState, build_host_state

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
    emulator_mask: int
    cell_vnodes: tuple[VNumaNode, ...]
    resize: bool

    static_cells: tuple[CellNeed, ...] | None
    uniform: Uniform | None
    spread: bool  # NUMA pinning suspended: pCPUs anywhere on the host, virtual sockets not kept together
    float_emulator: bool  # IO and emulator thread pinning suspended

    @property
    def hugepages(self) -> bool:
        return self.page_kib != SMALL_PAGE_KIB

    def cells(self, host: HostState) -> tuple[CellNeed, ...]:
        """The vNUMA nodes that must each fit one node of this host (pinning resolved for this host)."""
        if self.static_cells is not None:
            return self.static_cells
        if self.resize:
            return _resize_cells(self, host)
        return _vnode_cells(self.cell_vnodes, self.page_kib, host.id, hard_only=self.mode == "none")


def _vnode_cells(
    vnodes: tuple[VNumaNode, ...], page_kib: int, host_id: int, *, hard_only: bool
) -> tuple[CellNeed, ...]:
    """The vNUMA nodes as cells on the host; ``hard_only``: just those pinned there (vCPUs that float leave the
    others' memory to the kernel)."""
    cells = []
    for vnode in vnodes:
        pins = vnode.pins_on(host_id)
        hard = vnode.enforced and bool(pins)
        if hard_only and not hard:
            continue
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
    spread = "numa_pinning" in vm.suspended
    if spread:
        cell_vnodes: tuple[VNumaNode, ...] = ()
    elif mode != "none":
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
    static = None if per_host else _vnode_cells(cell_vnodes, page_kib, -1, hard_only=mode == "none")
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
        emulator_mask=mask_of(vm.emulator_cpus),
        cell_vnodes=cell_vnodes,
        resize=resize,
        static_cells=static,
        uniform=uniform(static, mode) if static else None,
        spread=spread,
        float_emulator="io_emulator_pinning" in vm.suspended,
    )


def place(plan: Plan, host: HostState) -> Placement | NoFit:
    """The complete placement of the VM on ``host`` (which already passed the filters)."""
    host = reserve_emulator(plan, host)
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
            if vnode.index not in numa and soft and _charge_if_room(host, small, huge, soft[0], vnode, plan.page_kib):
                numa[vnode.index] = soft[0]
                placed_mib += vnode.memory_mib

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
    emulator = _emulator_cpus(plan, host, mask_of(pins.values()) | shared, taken, small, huge)
    return Placement(
        host_id=host.id,
        numa=numa,
        vcpu_pins=vcpu_pins,
        emulator_cpus=frozenset(cpus_of(emulator)),
        io_thread_cpus=frozenset(cpus_of(emulator)) if vm.io_threads else frozenset(),
        exclusive_cpus=frozenset(cpus_of(taken)),
        shared_cpus=frozenset(cpus_of(shared | emulator & ~taken)),
        memory_mib=small,
        hugepages=huge,
        topology=(vm.sockets, vm.cores, vm.threads),
        suspended=_suspended(vm),
    )


def _suspended(vm: VMRequest) -> tuple[str, ...]:
    return tuple(s for s in SETTINGS if s in vm.suspended)


def reserve_emulator(plan: Plan, host: HostState) -> HostState:
    """``host`` as the vCPUs the scheduler pins see it: the pCPUs the admin gave the VM's emulator and IO threads
    are not free for them."""
    if plan.mode == "none" or not plan.emulator_mask & host.free:
        return host
    reserved = Allocation(vm_id=plan.vm.id, shared_cpus=frozenset(cpus_of(plan.emulator_mask)))
    return build_host_state(host.topology, [*host.allocations, reserved])


def _charge(small: dict[int, int], huge: dict[int, dict[int, int]], node: int, mib: int, page_kib: int) -> None:
    if page_kib == SMALL_PAGE_KIB:
        small[node] = small.get(node, 0) + mib
    else:
        pools = huge.setdefault(node, {})
        pools[page_kib] = pools.get(page_kib, 0) + mib * KIB_PER_MIB // page_kib


def _charge_if_room(
    host: HostState, small: dict[int, int], huge: dict[int, dict[int, int]], node: int, vnode: VNumaNode, page_kib: int
) -> bool:
    """Charge the whole vNUMA node to host ``node`` on top of ``small`` and ``huge`` if it has room left there."""
    state, kib = host.node_by_index[node], vnode.memory_mib * KIB_PER_MIB
    if page_kib == SMALL_PAGE_KIB:
        if kib > state.small_free_kib - small.get(node, 0) * KIB_PER_MIB:
            return False
    else:
        pages, part = divmod(kib, page_kib)
        if part or pages > state.hugepages_free.get(page_kib, 0) - huge.get(node, {}).get(page_kib, 0):
            return False
    _charge(small, huge, node, vnode.memory_mib, page_kib)
    return True


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
    if plan.spread:
        got = take_cpus(host.layout.cores, host.free, plan.vcpus, mode, vm.threads)
        if got is None:
            return NoFit(f"the VM's {plan.vcpus} vCPUs do not fit", "CpuPinning")
    else:
        got = pack_sockets(host.layout.cores, host.free, vm.sockets, plan.vsocket_size, mode, vm.threads)
        if got is None:
            message = f"the VM's {vm.sockets} virtual sockets of {plan.vsocket_size} vCPUs do not fit"
            return NoFit(message, "CpuPinning")
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
    plan: Plan,
    host: HostState,
    vm_cpus: int,
    own: int,
    small: Mapping[int, int],
    huge: Mapping[int, Mapping[int, int]],
) -> int:
    """The pCPUs of the VM's emulator and IO threads (0: they float); ``vm_cpus`` run its vCPUs, ``own`` it holds
    exclusively. See the module's docstring."""
    if plan.float_emulator:
        return 0
    if plan.emulator_mask:
        return plan.emulator_mask
    if plan.vm.optimized_for != "high_performance" or not (vm_cpus or plan.cell_vnodes):
        return 0
    used = {n.index: small.get(n.index, 0) * KIB_PER_MIB for n in host.nodes}
    for index, pools in huge.items():
        used[index] += sum(size * pages for size, pages in pools.items())
    nodes = sorted(host.nodes, key=lambda n: (-(n.cpus & vm_cpus).bit_count(), -used[n.index], n.index))
    avoid = host.exclusive | own | vm_cpus
    for node in nodes:
        if spare := node.cpus & ~avoid:
            return mask_of(cpus_of(spare)[:2])
    # Every pCPU is held exclusively or runs one of the VM's vCPUs: the threads join the VM's own pCPUs.
    return mask_of(cpus_of(nodes[0].cpus & vm_cpus)[:2])


def resize_topology(host: HostState) -> tuple[int, int, int]:
    """The (sockets, cores, threads) a Resize and Pin NUMA VM gets on this host."""
    topo = host.topology
    return topo.sockets, topo.cores_per_socket - 1, topo.threads_per_core


def resize_vnuma(topology: tuple[int, int, int], memory_mib: int, page_kib: int) -> tuple[VNumaNode, ...]:
    """The guest NUMA of a Resize and Pin NUMA VM of ``topology``: one strict vNUMA node per virtual socket (its
    host has one NUMA node per socket), holding that socket's vCPUs and an even share of the memory, in whole
    pages when the memory allows."""
    sockets, cores, threads = topology
    size = cores * threads
    page_mib = page_kib // KIB_PER_MIB
    unit = page_mib if page_mib > 1 and memory_mib % page_mib == 0 and memory_mib // page_mib >= sockets else 1
    share, extra = divmod(memory_mib // unit, sockets)
    return tuple(
        VNumaNode(i, frozenset(range(i * size, (i + 1) * size)), (share + (1 if i < extra else 0)) * unit)
        for i in range(sockets)
    )


def _resize_cells(plan: Plan, host: HostState) -> tuple[CellNeed, ...]:
    if not host.numa_supported:
        return ()
    _, cores, threads = resize_topology(host)
    # One vNUMA node per host node (a host whose sockets and NUMA nodes differ is CpuTopology's to refuse).
    vnodes = resize_vnuma((len(host.nodes), cores, threads), plan.vm.memory_mib, plan.page_kib)
    return tuple(
        CellNeed(v.index, tuple(sorted(v.vcpus)), v.memory_mib, (plan.page_kib,), allowed=frozenset((node.index,)))
        for v, node in zip(vnodes, host.nodes, strict=True)
    )


def _place_resize(plan: Plan, host: HostState) -> Placement | NoFit:
    if not host.numa_supported:
        return NoFit("does not support NUMA")
    cells = _resize_cells(plan, host)
    mapping = map_cells(host, cells, "none", may_share=False)
    if isinstance(mapping, NoFit):
        return mapping
    pins: dict[int, frozenset[int]] = {}
    small: dict[int, int] = {}
    huge: dict[int, dict[int, int]] = {}
    for cell in cells:
        fit = mapping[cell.index]
        cpus = [cpu for core in host.layout.node_cores.get(fit.node, ())[1:] for cpu in cpus_of(core.mask)]
        if len(cpus) != len(cell.vcpus):
            return NoFit("Resize and Pin NUMA needs every CPU of the host online", "CpuTopology")
        pins.update((vcpu, frozenset((cpu,))) for vcpu, cpu in zip(cell.vcpus, cpus, strict=True))
        _charge(small, huge, fit.node, cell.memory_mib, fit.page_kib)
    shared = mask_of(cpu for cpus in pins.values() for cpu in cpus)
    emulator = _emulator_cpus(plan, host, shared, 0, small, huge)
    return Placement(
        host_id=host.id,
        numa={cell.index: mapping[cell.index].node for cell in cells},
        vcpu_pins=pins,
        emulator_cpus=frozenset(cpus_of(emulator)),
        io_thread_cpus=frozenset(cpus_of(emulator)) if plan.vm.io_threads else frozenset(),
        exclusive_cpus=frozenset(),
        shared_cpus=frozenset(cpus_of(shared | emulator)),
        memory_mib=small,
        hugepages=huge,
        topology=resize_topology(host),
        suspended=_suspended(plan.vm),
    )
