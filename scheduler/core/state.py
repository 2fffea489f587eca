"""A host's free capacity, precomputed once per snapshot so that judging a host costs a few int operations.

CPU sets are int bitmasks (bit n = pCPU n). A host without NUMA is modelled as one pseudo node 0 holding
all its CPUs, memory and hugepage pools; ``numa_supported`` tells the two apart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from .cpuset import mask_of
from .model import Allocation, HostCpu, HostTopology

KIB_PER_MIB = 1024


@dataclass(frozen=True, slots=True)
class Core:
    """A physical core: its online sibling threads as a mask, and where it sits."""

    id: int
    socket: int
    node: int
    mask: int
    first: int


@dataclass(frozen=True, slots=True)
class Layout:
    """Derived from the topology alone, shared by every state of the same host."""

    cores: tuple[Core, ...]
    node_cores: Mapping[int, tuple[Core, ...]]
    socket_cores: Mapping[int, tuple[Core, ...]]
    all_cpus: int
    online: int


@dataclass(frozen=True, slots=True)
class NodeState:
    """Free capacity of one host node; ``free`` are online pCPUs held by nobody (exclusively or pinned)."""

    index: int
    cpus: int
    free: int
    free_threads: int
    free_cores: int
    small_total_kib: int
    small_free_kib: int
    hugepages_total: Mapping[int, int]
    hugepages_free: Mapping[int, int]


@dataclass(frozen=True, slots=True)
class HostState:
    """A host's topology plus what its allocations leave free. Build with :func:`build_host_state`.

    ``socket_free_*_desc`` are the per-socket figures sorted from the emptiest socket down (never empty).
    ``exclusive_core_count`` counts cores every online thread of which is held exclusively (taken, as oVirt
    counts them); ``unpinned_*`` count online threads not held exclusively, and cores not taken;
    ``shared_count`` counts online pCPUs pinned without exclusivity only. ``cpu_load_percent`` is the topology's
    measured load; ``pending_vcpus`` are the vCPUs of pending claims, VMs on their way in that a load measured
    now does not show yet.
    """

    id: int
    name: str
    status: str
    cpu_flags: frozenset[str]
    topology: HostTopology
    layout: Layout
    allocations: tuple[Allocation, ...]
    vm_ids: frozenset[int]
    numa_supported: bool
    nodes: tuple[NodeState, ...]
    node_by_index: Mapping[int, NodeState]
    exclusive: int
    shared: int
    free: int
    threads_per_core: int
    online_count: int
    core_count: int
    exclusive_count: int
    exclusive_core_count: int
    unpinned_threads: int
    unpinned_cores: int
    shared_count: int
    offline_count: int
    free_threads: int
    free_cores: int
    socket_free_threads: Mapping[int, int]
    socket_free_cores: Mapping[int, int]
    socket_free_threads_desc: tuple[int, ...]
    socket_free_cores_desc: tuple[int, ...]
    allocated_vcpus: int
    pending_vcpus: int
    cpu_load_percent: float | None
    max_shared_vcpus: int
    small_free_kib: int
    hugepages_free: Mapping[int, int]
    memory_total_kib: int
    memory_used_kib: int

    def without(self, vm_id: int) -> HostState:
        """This host as if ``vm_id`` held nothing on it (the VM does not compete with itself)."""
        if vm_id not in self.vm_ids:
            return self
        return _build(self.topology, self.layout, [a for a in self.allocations if a.vm_id != vm_id])


def build_host_state(topology: HostTopology, allocations: Iterable[Allocation] = ()) -> HostState:
    """Precompute a host's free capacity from its topology and every allocation it holds (pending included)."""
    numa_cpus = tuple((node.index, node.cpus) for node in topology.numa_nodes)
    return _build(topology, _layout(topology.cpus, topology.online_cpus, numa_cpus), list(allocations))


@lru_cache(maxsize=1024)
def _layout(
    host_cpus: tuple[HostCpu, ...],
    online_cpus: frozenset[int] | None,
    numa_cpus: tuple[tuple[int, frozenset[int]], ...],
) -> Layout:
    """The layout of a CPU topology; hosts of one model share it, which keeps a large snapshot compact."""
    node_of = {cpu: index for index, cpus in numa_cpus for cpu in cpus}
    known = {cpu.id for cpu in host_cpus}
    # CPUs only named by a NUMA node still count, as single-thread cores of socket 0.
    cpus = list(host_cpus) + [HostCpu(cpu, 0, -1 - cpu) for cpu in sorted(set(node_of) - known)]
    all_cpus = mask_of(cpu.id for cpu in cpus)
    online = all_cpus if online_cpus is None else all_cpus & mask_of(online_cpus)
    # A NUMA-less host's CPUs all sit in pseudo node 0; on a NUMA host a CPU no node lists sits in none (-1).
    orphan = -1 if numa_cpus else 0
    grouped: dict[int, list[int]] = defaultdict(list)
    where: dict[int, tuple[int, int]] = {}
    for cpu in cpus:
        if online >> cpu.id & 1:
            grouped[cpu.core].append(cpu.id)
            where.setdefault(cpu.core, (cpu.socket, node_of.get(cpu.id, orphan)))
    cores = sorted(
        (Core(core, *where[core], mask_of(ids), min(ids)) for core, ids in grouped.items()), key=lambda c: c.first
    )
    node_cores: dict[int, list[Core]] = defaultdict(list)
    socket_cores: dict[int, list[Core]] = defaultdict(list)
    for core in cores:
        node_cores[core.node].append(core)
        socket_cores[core.socket].append(core)
    return Layout(
        cores=tuple(cores),
        node_cores={k: tuple(v) for k, v in node_cores.items()},
        socket_cores={k: tuple(v) for k, v in sorted(socket_cores.items())},
        all_cpus=all_cpus,
        online=online,
    )


def _build(topology: HostTopology, layout: Layout, allocations: list[Allocation]) -> HostState:
    exclusive = shared = 0
    allocated_vcpus = pending_vcpus = max_shared_vcpus = 0
    small_used: dict[int, int] = defaultdict(int)
    pages_used: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for alloc in allocations:
        exclusive |= mask_of(alloc.exclusive_cpus)
        shared |= mask_of(alloc.shared_cpus)
        allocated_vcpus += alloc.vcpus
        if alloc.pending:
            pending_vcpus += alloc.vcpus
        if not alloc.exclusive_cpus:
            max_shared_vcpus = max(max_shared_vcpus, alloc.vcpus)
        for node, mib in alloc.memory_mib.items():
            small_used[node] += mib * KIB_PER_MIB
        for node, sizes in alloc.hugepages.items():
            for size, pages in sizes.items():
                pages_used[node][size] += pages

    numa_supported = bool(topology.numa_nodes)
    if numa_supported:
        nodes_in_order = sorted(topology.numa_nodes, key=lambda n: n.index)
        pools = [(n.index, mask_of(n.cpus) & layout.online, n.memory_mib, n.hugepages) for n in nodes_in_order]
    else:
        # Everything a NUMA-less host holds is charged to its single pseudo node, whatever key it used.
        pools = [(0, layout.online, topology.memory_mib, topology.hugepages)]
        small_used = defaultdict(int, {0: sum(small_used.values())})
        merged: dict[int, int] = defaultdict(int)
        for sizes in pages_used.values():
            for size, pages in sizes.items():
                merged[size] += pages
        pages_used = defaultdict(lambda: defaultdict(int), {0: merged})

    free = layout.online & ~exclusive & ~shared
    nodes: list[NodeState] = []
    for index, cpus, memory_mib, hugepages in pools:
        node_free = cpus & free
        small_total = memory_mib * KIB_PER_MIB - sum(size * pages for size, pages in hugepages.items())
        used_pages = pages_used.get(index, {})
        nodes.append(
            NodeState(
                index=index,
                cpus=cpus,
                free=node_free,
                free_threads=node_free.bit_count(),
                free_cores=sum(1 for c in layout.node_cores.get(index, ()) if c.mask & node_free == c.mask),
                small_total_kib=small_total,
                small_free_kib=small_total - small_used.get(index, 0),
                hugepages_total=dict(hugepages),
                hugepages_free={size: total - used_pages.get(size, 0) for size, total in hugepages.items()},
            )
        )

    socket_free_threads = {s: sum((c.mask & free).bit_count() for c in cs) for s, cs in layout.socket_cores.items()}
    socket_free_cores = {s: sum(1 for c in cs if c.mask & free == c.mask) for s, cs in layout.socket_cores.items()}
    hugepages_free: dict[int, int] = defaultdict(int)
    for node in nodes:
        for size, pages in node.hugepages_free.items():
            hugepages_free[size] += pages
    # Usage charged to nodes the host does not have still counts against the host as a whole.
    unknown_small = sum(kib for node, kib in small_used.items() if node not in {n.index for n in nodes})
    exclusive_count = (exclusive & layout.online).bit_count()
    exclusive_cores = sum(1 for c in layout.cores if c.mask & exclusive == c.mask)
    memory_total = sum(n[2] for n in pools) * KIB_PER_MIB
    memory_used = sum(small_used.values()) + sum(
        size * pages for sizes in pages_used.values() for size, pages in sizes.items()
    )
    return HostState(
        id=topology.id,
        name=topology.name,
        status=topology.status,
        cpu_flags=topology.cpu_flags,
        topology=topology,
        layout=layout,
        allocations=tuple(allocations),
        vm_ids=frozenset(a.vm_id for a in allocations),
        numa_supported=numa_supported,
        nodes=tuple(nodes),
        node_by_index={n.index: n for n in nodes},
        exclusive=exclusive,
        shared=shared,
        free=free,
        threads_per_core=max(topology.threads_per_core, 1),
        online_count=layout.online.bit_count(),
        core_count=len(layout.cores),
        exclusive_count=exclusive_count,
        exclusive_core_count=exclusive_cores,
        unpinned_threads=layout.online.bit_count() - exclusive_count,
        unpinned_cores=len(layout.cores) - exclusive_cores,
        shared_count=(shared & layout.online & ~exclusive).bit_count(),
        offline_count=(layout.all_cpus & ~layout.online).bit_count(),
        free_threads=free.bit_count(),
        free_cores=sum(n.free_cores for n in nodes),
        socket_free_threads=socket_free_threads,
        socket_free_cores=socket_free_cores,
        socket_free_threads_desc=tuple(sorted(socket_free_threads.values(), reverse=True)) or (0,),
        socket_free_cores_desc=tuple(sorted(socket_free_cores.values(), reverse=True)) or (0,),
        allocated_vcpus=allocated_vcpus,
        pending_vcpus=pending_vcpus,
        cpu_load_percent=topology.cpu_load_percent,
        max_shared_vcpus=max_shared_vcpus,
        small_free_kib=sum(n.small_free_kib for n in nodes) - unknown_small,
        hugepages_free=dict(hugepages_free),
        memory_total_kib=memory_total,
        memory_used_kib=memory_used,
    )
