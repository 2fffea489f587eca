"""A host's free capacity worked out from the inputs of ``build_host_state`` alone: its topology and the
allocations it holds. The reference search and the validity checks read this, never the scheduler's HostState,
so an accounting mistake there cannot hide behind the same mistake here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from scheduler.core import Allocation, HostTopology

SMALL = 4  # KiB: the small page


@dataclass(frozen=True)
class RawHost:
    """What other VMs leave of a host; a host without NUMA is one node 0 holding everything."""

    id: int
    topology: HostTopology
    numa: bool
    cpus: frozenset[int]
    online: frozenset[int]
    socket_of: dict[int, int]
    core_of: dict[int, int]
    cores: dict[int, frozenset[int]]  # core id -> its online threads
    node_cpus: dict[int, frozenset[int]]  # node -> its online CPUs
    exclusive: frozenset[int]
    shared: frozenset[int]
    free: frozenset[int]
    small_free_kib: dict[int, int]
    pages_free: dict[int, dict[int, int]]  # node -> page size (KiB) -> free pages
    largest_shared: int  # vCPUs of the largest VM holding no pCPU exclusively

    @classmethod
    def of(cls, topology: HostTopology, allocations: Iterable[Allocation], vm_id: int) -> RawHost:
        """The host as VM ``vm_id`` finds it: whatever that VM itself holds there counts as free."""
        others = [a for a in allocations if a.vm_id != vm_id]
        cpus = frozenset(c.id for c in topology.cpus)
        online = cpus if topology.online_cpus is None else cpus & topology.online_cpus
        socket_of = {c.id: c.socket for c in topology.cpus if c.id in online}
        core_of = {c.id: c.core for c in topology.cpus if c.id in online}
        cores: dict[int, set[int]] = defaultdict(set)
        for cpu, core in core_of.items():
            cores[core].add(cpu)

        if topology.numa_nodes:
            node_cpus = {n.index: frozenset(n.cpus & online) for n in topology.numa_nodes}
            sizes = {n.index: (n.memory_mib, dict(n.hugepages)) for n in topology.numa_nodes}
        else:
            node_cpus = {0: online}
            sizes = {0: (topology.memory_mib, dict(topology.hugepages))}
        small_used: dict[int, int] = defaultdict(int)
        pages_used: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for alloc in others:
            for node, mib in alloc.memory_mib.items():
                small_used[node if topology.numa_nodes else 0] += mib
            for node, pools in alloc.hugepages.items():
                for size, pages in pools.items():
                    pages_used[node if topology.numa_nodes else 0][size] += pages
        small_free = {}
        pages_free = {}
        for node, (memory_mib, pools) in sizes.items():
            in_pools = sum(size * pages for size, pages in pools.items())
            small_free[node] = memory_mib * 1024 - in_pools - small_used[node] * 1024
            pages_free[node] = {size: pages - pages_used[node][size] for size, pages in pools.items()}

        exclusive = frozenset().union(*(a.exclusive_cpus for a in others))
        shared = frozenset().union(*(a.shared_cpus for a in others))
        return cls(
            id=topology.id,
            topology=topology,
            numa=bool(topology.numa_nodes),
            cpus=cpus,
            online=online,
            socket_of=socket_of,
            core_of=core_of,
            cores={core: frozenset(threads) for core, threads in cores.items()},
            node_cpus=node_cpus,
            exclusive=exclusive,
            shared=shared,
            free=online - exclusive - shared,
            small_free_kib=small_free,
            pages_free=pages_free,
            largest_shared=max((a.vcpus for a in others if not a.exclusive_cpus), default=0),
        )

    @property
    def threads_per_core(self) -> int:
        return max(self.topology.threads_per_core, 1)

    def free_threads(self, cpus: Iterable[int]) -> int:
        """Free pCPUs among ``cpus`` (what dedicated vCPUs may take)."""
        return len(self.free & set(cpus))

    def whole_free_cores(self, cpus: Iterable[int]) -> int:
        """Cores all of whose online threads are free and among ``cpus`` (what isolate_threads vCPUs take)."""
        within = self.free & set(cpus)
        return sum(1 for threads in self.cores.values() if threads <= within)

    def memory_room(self, node: int, page_kib: int) -> int:
        """KiB the node still has in pages of ``page_kib`` (the small-page pool for 4)."""
        if page_kib == SMALL:
            return self.small_free_kib[node]
        return self.pages_free[node].get(page_kib, 0) * page_kib
