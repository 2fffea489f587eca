"""A host as its pages draw it: free = capacity minus allocations, per NUMA node and per CPU thread."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from hpadmin.inventory.models import Host
from scheduler.models import Allocation


def attach_usage(hosts) -> None:
    """Give each host ``pinned_cpus`` and ``allocated_mib`` (memory and hugepages held by its allocations),
    from one query for the whole page."""
    by_host = defaultdict(list)
    for row in Allocation.objects.filter(host__in=hosts).only(
        "host_id", "exclusive_cpus", "shared_cpus", "memory_mib", "hugepages"
    ):
        by_host[row.host_id].append(row)
    for host in hosts:
        pinned: set[int] = set()
        allocated = 0.0
        for row in by_host[host.pk]:
            pinned.update(row.exclusive_cpus, row.shared_cpus)
            allocated += sum(row.memory_mib.values())
            allocated += sum(
                int(size) * pages / 1024 for sizes in row.hugepages.values() for size, pages in sizes.items()
            )
        host.pinned_cpus = len(pinned)
        host.allocated_mib = allocated
        host.memory_used_percent = round(100 * allocated / host.memory_mib) if host.memory_mib else 0


@dataclass
class CpuCell:
    id: int
    online: bool
    holders: list[tuple[Allocation, str]] = field(default_factory=list)  # (allocation, "exclusive"|"shared")


@dataclass
class NodeUsage:
    """One host NUMA node (index None: a host without NUMA) with free = capacity minus allocations."""

    index: int | None
    memory_mib: int
    hugepage_mib: float = 0
    allocated_mib: int = 0
    hugepages: list[dict] = field(default_factory=list)  # size_kib, total, used, free

    @property
    def free_mib(self) -> float:
        return self.memory_mib - self.hugepage_mib - self.allocated_mib

    @property
    def small_total_mib(self) -> float:
        return self.memory_mib - self.hugepage_mib


def node_usage(host: Host, allocations: list[Allocation]) -> dict[int | None, NodeUsage]:
    """Memory and hugepages per host node, as free = capacity minus allocations (active and pending)."""
    numa = list(host.numa_nodes.all())
    nodes = {n.index: NodeUsage(n.index, n.memory_mib) for n in numa} or {None: NodeUsage(None, host.memory_mib)}

    def key(raw: str) -> int | None:
        return int(raw) if numa else None

    pools = defaultdict(int)
    for pool in host.hugepage_pools.all():
        if pool.node_index in nodes or not numa:
            pools[(pool.node_index if numa else None, pool.size_kib)] += pool.total
    used = defaultdict(int)
    for row in allocations:
        for raw, mib in row.memory_mib.items():
            if key(raw) in nodes:
                nodes[key(raw)].allocated_mib += mib
        for raw, sizes in row.hugepages.items():
            for size, pages in sizes.items():
                used[(key(raw), int(size))] += pages
    for (index, size), total in sorted(pools.items(), key=lambda item: (item[0][0] or 0, item[0][1])):
        node = nodes[index]
        node.hugepage_mib += total * size / 1024
        taken = used[(index, size)]
        node.hugepages.append({"size_kib": size, "total": total, "used": taken, "free": total - taken})
    return nodes


def host_topology(
    host: Host, allocations: list[Allocation], usage: dict[int | None, NodeUsage]
) -> tuple[list[dict], list[dict]]:
    """Sockets -> NUMA nodes -> cores -> threads, each thread with the VMs holding it; and the colour legend."""
    vms = sorted({row.vm for row in allocations}, key=lambda vm: vm.name)
    colour = {vm.pk: i % 10 for i, vm in enumerate(vms)}
    cells = {cpu.cpu_id: CpuCell(cpu.cpu_id, cpu.online) for cpu in host.cpus.all()}
    for row in allocations:
        for cpu in row.exclusive_cpus:
            if cpu in cells:
                cells[cpu].holders.append((row, "exclusive"))
        for cpu in row.shared_cpus:
            if cpu in cells:
                cells[cpu].holders.append((row, "shared"))
    tree: dict[int, dict[int | None, dict[int, list[CpuCell]]]] = defaultdict(lambda: defaultdict(dict))
    for cpu in host.cpus.all():
        node = cpu.numa_node if None not in usage else None
        tree[cpu.socket][node].setdefault(cpu.core, []).append(cells[cpu.cpu_id])
    sockets = [
        {
            "index": socket,
            "nodes": [
                {
                    "usage": usage.get(node),
                    "index": node,
                    "cores": [sorted(t, key=lambda c: c.id) for t in cores.values()],
                }
                for node, cores in sorted(nodes.items(), key=lambda item: -1 if item[0] is None else item[0])
            ],
        }
        for socket, nodes in sorted(tree.items())
    ]
    for socket in sockets:
        for node in socket["nodes"]:
            node["cores"].sort(key=lambda threads: threads[0].id)
            for threads in node["cores"]:
                for cell in threads:
                    cell.colours = [(colour[row.vm_id], kind, row.state) for row, kind in cell.holders]
    legend = []
    for vm in vms:
        rows = [row for row in allocations if row.vm_id == vm.pk]
        legend.append(
            {
                "vm": vm,
                "colour": colour[vm.pk],
                "states": sorted({row.state for row in rows}),
                "exclusive": sorted({c for row in rows for c in row.exclusive_cpus}),
                "shared": sorted({c for row in rows for c in row.shared_cpus}),
                "memory_mib": sum(row.total_memory_mib for row in rows),
                "hugepages": sorted({int(size) for row in rows for sizes in row.hugepages.values() for size in sizes}),
                "hugepage_mib": sum(
                    int(size) * pages / 1024
                    for row in rows
                    for sizes in row.hugepages.values()
                    for size, pages in sizes.items()
                ),
            }
        )
    return sockets, legend
