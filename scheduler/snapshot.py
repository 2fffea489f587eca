"""ORM -> scheduler core: a cluster's hosts with what they hold, and a VM as a request, in constant queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from hpadmin.inventory.models import Cluster, Host, HostCpu, HostNumaNode, HugePagePool
from hpadmin.vms.models import VirtualMachine
from scheduler.core import model as core
from scheduler.core.cpuset import parse_pinning

from .models import Allocation, AllocationState


def allocation_to_core(row: Allocation) -> core.Allocation:
    return core.Allocation(
        vm_id=row.vm_id,
        pending=row.state == AllocationState.PENDING,
        exclusive_cpus=frozenset(row.exclusive_cpus),
        shared_cpus=frozenset(row.shared_cpus),
        vcpus=row.vcpus,
        memory_mib={int(k): int(v) for k, v in row.memory_mib.items()},
        hugepages={int(n): {int(s): int(p) for s, p in pages.items()} for n, pages in row.hugepages.items()},
    )


# Host topologies change only when capabilities are imported (which stamps ``refreshed_at``), so each process
# keeps them between decisions and reads only what changed: a dialog that judges every host of a large
# cluster then costs one query for the allocations.
_topologies: dict[int, tuple[tuple, core.HostTopology]] = {}


def _topology_key(host: Host) -> tuple:
    return (host.refreshed_at, host.status, host.sockets, host.cores_per_socket, host.threads_per_core)


def _load_topologies(hosts: list[Host]) -> None:
    """Read the CPUs, NUMA nodes and hugepage pools of ``hosts`` (three queries) into the cache."""
    ids = [h.pk for h in hosts]
    cpus: dict[int, list] = defaultdict(list)
    for host_id, cpu_id, socket, core_id, node, online in HostCpu.objects.filter(host_id__in=ids).values_list(
        "host_id", "cpu_id", "socket", "core", "numa_node", "online"
    ):
        cpus[host_id].append((cpu_id, socket, core_id, node, online))
    nodes: dict[int, list] = defaultdict(list)
    for host_id, index, memory in HostNumaNode.objects.filter(host_id__in=ids).values_list(
        "host_id", "index", "memory_mib"
    ):
        nodes[host_id].append((index, memory))
    pools: dict[int, dict] = defaultdict(lambda: defaultdict(dict))
    for host_id, node, size, total in HugePagePool.objects.filter(host_id__in=ids).values_list(
        "host_id", "node_index", "size_kib", "total"
    ):
        pools[host_id][node][size] = total
    for host in hosts:
        host_cpus = sorted(cpus[host.pk])
        node_cpus: dict[int, set[int]] = defaultdict(set)
        for cpu_id, _, _, node, _ in host_cpus:
            if node is not None:
                node_cpus[node].add(cpu_id)
        topology = core.HostTopology(
            id=host.pk,
            name=host.name,
            status=host.status,
            cpu_flags=frozenset(host.cpu_flags),
            sockets=host.sockets,
            cores_per_socket=host.cores_per_socket,
            threads_per_core=host.threads_per_core,
            cpus=tuple(core.HostCpu(c[0], c[1], c[2], c[3]) for c in host_cpus),
            online_cpus=frozenset(c[0] for c in host_cpus if c[4]),
            numa_nodes=tuple(
                core.HostNumaNode(index, frozenset(node_cpus[index]), memory, dict(pools[host.pk].get(index, {})))
                for index, memory in sorted(nodes[host.pk])
            ),
            memory_mib=host.memory_mib,
            hugepages=dict(pools[host.pk].get(None, {})),
            tsc_khz=host.tsc_khz,
        )
        _topologies[host.pk] = (_topology_key(host), topology)


def load_hosts(
    hosts: Iterable[Host] | None = None, *, cluster: Cluster | None = None
) -> tuple[list[core.HostTopology], dict[int, list[core.Allocation]]]:
    """Topologies and allocations of the given hosts (or every host of ``cluster``), in at most five queries."""
    hosts = list(Host.objects.filter(cluster=cluster) if hosts is None else hosts)
    stale = [h for h in hosts if _topologies.get(h.pk, ((),))[0] != _topology_key(h)]
    if stale:
        _load_topologies(stale)
    allocations: dict[int, list[core.Allocation]] = defaultdict(list)
    for row in Allocation.objects.filter(host_id__in=[h.pk for h in hosts]):
        allocations[row.host_id].append(allocation_to_core(row))
    return [_topologies[h.pk][1] for h in hosts], dict(allocations)


def cluster_config(cluster: Cluster) -> core.ClusterConfig:
    return core.ClusterConfig(
        threads_as_cores=cluster.threads_as_cores,
        weight_factors=cluster.effective_weight_factors(),
        cpu_flags=frozenset(cluster.cpu_level_flags),
    )


def _vnuma_nodes(vm: VirtualMachine) -> tuple[core.VNumaNode, ...]:
    """The VM's vNUMA nodes for the core, which wants every vCPU in exactly one node: vCPUs the
    configuration leaves out are dealt round-robin over the nodes, and memory not given to any node
    goes to the last one (the configuration itself is not changed)."""
    nodes = vm.vnuma()
    if not nodes:
        return ()
    vcpus = [set(n.vcpus) for n in nodes]
    assigned = set().union(*vcpus)
    for i, vcpu in enumerate(v for v in range(vm.vcpus) if v not in assigned):
        vcpus[i % len(nodes)].add(vcpu)
    memory = [n.memory_mib for n in nodes]
    memory[-1] += vm.memory_mib - sum(memory)
    return tuple(
        core.VNumaNode(
            index=n.index,
            vcpus=frozenset(vcpus[i]),
            memory_mib=memory[i],
            tune_mode=n.tune_mode,
            pinned_to=frozenset(n.pinned_to),
            pinned_to_by_host={h: frozenset(p) for h, p in n.pinned_to_by_host.items()},
        )
        for i, n in enumerate(nodes)
    )


def vm_request(vm: VirtualMachine, placement_hosts: Iterable[int] | None = None) -> core.VMRequest:
    """The VM as the core sees it. Pass ``placement_hosts`` ids when already loaded, to save a query."""
    if placement_hosts is None:
        placement_hosts = vm.placement_hosts.values_list("pk", flat=True)
    return core.VMRequest(
        id=vm.pk,
        name=vm.name,
        sockets=vm.sockets,
        cores=vm.cores,
        threads=vm.threads,
        memory_mib=vm.memory_mib,
        optimized_for=vm.optimized_for,
        migration_mode=vm.migration_mode,
        placement_hosts=frozenset(placement_hosts),
        cpu_passthrough=vm.cpu_passthrough,
        cpu_flags_at_start=frozenset(vm.cpu_flags_at_start),
        cpu_pinning_policy=vm.cpu_pinning_policy,
        cpu_pinning=parse_pinning(vm.cpu_pinning) if vm.cpu_pinning_policy == "manual" else {},
        numa_nodes=_vnuma_nodes(vm),
        hugepage_kib=vm.hugepage_kib,
        running_on=vm.host_id,
        io_threads=vm.io_threads,
        high_availability=vm.high_availability,
    )
