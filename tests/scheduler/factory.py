"""Tiny builders for host states and VMs, so scheduler tests read like the scenarios they encode."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from scheduler.core import (
    Allocation,
    HostCpu,
    HostNumaNode,
    HostState,
    HostTopology,
    VMRequest,
    VNumaNode,
    build_host_state,
)

GIB_KIB = 1024 * 1024


def host_cpus(sockets: int, cores: int, threads: int, nodes: int, *, linux: bool = False) -> list[HostCpu]:
    """CPUs numbered core by core (socket s, core c, thread t -> ((s * cores) + c) * threads + t), or with
    ``linux`` as Linux numbers them: first threads of all cores, then their siblings (t * all cores + core).

    ``nodes`` NUMA nodes split the cores into equal contiguous blocks (0: no NUMA).
    """
    total_cores = sockets * cores
    cpus = []
    for core in range(total_cores):
        node = core * nodes // total_cores if nodes else None
        for thread in range(threads):
            cpu = thread * total_cores + core if linux else core * threads + thread
            cpus.append(HostCpu(cpu, socket=core // cores, core=core, node=node))
    return cpus


def make_topology(
    host_id: int = 1,
    *,
    sockets: int = 1,
    cores: int = 2,
    threads: int = 1,
    nodes: int | None = None,
    memory_mib: int | Sequence[int] = 65536,
    hugepages: Mapping[int, int] | Sequence[Mapping[int, int]] | None = None,
    status: str = "up",
    flags: Iterable[str] = ("sse4_2",),
    online: Iterable[int] | None = None,
    name: str | None = None,
    linux_numbering: bool = False,
) -> HostTopology:
    """A host's topology; ``nodes`` defaults to one NUMA node per socket, 0 means no NUMA (memory on the host)."""
    nodes = sockets if nodes is None else nodes
    cpus = host_cpus(sockets, cores, threads, nodes, linux=linux_numbering)
    per_node_memory = [memory_mib] * max(nodes, 1) if isinstance(memory_mib, int) else list(memory_mib)
    if hugepages is None or isinstance(hugepages, Mapping):
        per_node_pages = [dict(hugepages or {})] * max(nodes, 1)
    else:
        per_node_pages = [dict(p) for p in hugepages]
    numa_nodes = tuple(
        HostNumaNode(i, frozenset(c.id for c in cpus if c.node == i), per_node_memory[i], per_node_pages[i])
        for i in range(nodes)
    )
    return HostTopology(
        id=host_id,
        name=name or f"h{host_id}",
        status=status,
        cpu_flags=frozenset(flags),
        sockets=sockets,
        cores_per_socket=cores,
        threads_per_core=threads,
        cpus=tuple(cpus),
        online_cpus=frozenset(online) if online is not None else None,
        numa_nodes=numa_nodes,
        memory_mib=0 if nodes else per_node_memory[0],
        hugepages={} if nodes else per_node_pages[0],
    )


def make_host(host_id: int = 1, *, allocations: Iterable[Allocation] = (), **topology) -> HostState:
    """A host holding ``allocations``; the other arguments are :func:`make_topology`'s."""
    return build_host_state(make_topology(host_id, **topology), allocations)


def vnode(
    index: int,
    vcpus: Iterable[int],
    memory_mib: int = 1024,
    pinned_to: Iterable[int] = (),
    tune_mode: str = "strict",
    by_host: Mapping[int, Iterable[int]] | None = None,
) -> VNumaNode:
    return VNumaNode(
        index=index,
        vcpus=frozenset(vcpus),
        memory_mib=memory_mib,
        tune_mode=tune_mode,
        pinned_to=frozenset(pinned_to),
        pinned_to_by_host={h: frozenset(n) for h, n in (by_host or {}).items()},
    )


def make_vm(vm_id: int = 100, **fields) -> VMRequest:
    """A VM; ``numa_nodes`` may be given as (index, vcpus, memory_mib, pinned_to) tuples."""
    nodes = fields.pop("numa_nodes", ())
    fields["numa_nodes"] = tuple(n if isinstance(n, VNumaNode) else vnode(*n) for n in nodes)
    fields.setdefault("name", f"vm{vm_id}")
    for key in ("placement_hosts", "cpu_flags_at_start"):
        if key in fields:
            fields[key] = frozenset(fields[key])
    return VMRequest(id=vm_id, **fields)


def held(vm_id: int, exclusive: Iterable[int] = (), **fields) -> Allocation:
    """An allocation of another VM (exclusive pCPUs, memory per node, hugepages per node)."""
    exclusive = frozenset(exclusive)
    fields.setdefault("vcpus", len(exclusive))
    return Allocation(vm_id=vm_id, exclusive_cpus=exclusive, **fields)
