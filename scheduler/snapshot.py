"""ORM -> scheduler core: a cluster's hosts with what they hold, and a VM as a request, in constant queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from django.db.models import Case, Exists, F, OuterRef, Prefetch, When

from hpadmin.affinity.models import AffinityGroup
from hpadmin.inventory.models import Cluster, Host, HostCpu, HostNumaNode, HugePagePool
from hpadmin.vms.models import CpuPinningPolicy, VirtualMachine
from scheduler.core import model as core
from scheduler.core.cpuset import parse_cpuset
from scheduler.core.state import HostState, build_host_state

from .models import Allocation, AllocationState

_RESOURCE_FIELDS = ("vm_id", "exclusive_cpus", "shared_cpus", "vcpus", "memory_mib", "hugepages")


def allocation_to_core(state, vm_id, exclusive_cpus, shared_cpus, vcpus, memory_mib, hugepages) -> core.Allocation:
    """An allocation row (its state and ``_RESOURCE_FIELDS``) as the core sees it."""
    return core.Allocation(
        vm_id=vm_id,
        pending=state == AllocationState.PENDING,
        exclusive_cpus=frozenset(exclusive_cpus),
        shared_cpus=frozenset(shared_cpus),
        vcpus=vcpus,
        memory_mib={int(k): int(v) for k, v in memory_mib.items()},
        hugepages={int(n): {int(s): int(p) for s, p in pages.items()} for n, pages in hugepages.items()},
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


# A host's state changes only with its topology or its allocations, so states are kept too and rebuilt for the
# hosts whose rows changed. An allocation's resources are written once (a claim becomes active by changing its
# state), so they are kept too, and one query reads the keys of all rows with the resources of the rows newer
# than any seen. A row is known by its id and creation time: SQLite hands out a rolled-back row's id again.
_states: dict[int, tuple[tuple, HostState]] = {}
_resources: dict[tuple[int, datetime], tuple] = {}  # (pk, created_at) -> the row's _RESOURCE_FIELDS
_newest: datetime | None = None  # the latest created_at in _resources


def host_states(hosts: Iterable[Host]) -> tuple[list[HostState], dict[int, int]]:
    """The scheduler's view of ``hosts`` (topology and what their allocations leave free), and how many
    incoming migrations each host has claims for. One query when no topology changed; a row committed after a
    newer one was read costs one more."""
    global _newest
    hosts = list(hosts)
    stale = [h for h in hosts if _topologies.get(h.pk, ((),))[0] != _topology_key(h)]
    if stale:
        _load_topologies(stale)
    newest = _newest
    resources = [F(f) if newest is None else Case(When(created_at__gt=newest, then=F(f))) for f in _RESOURCE_FIELDS]
    held: dict[int, list[tuple]] = defaultdict(list)
    incoming: dict[int, int] = defaultdict(int)
    missing = []
    for pk, created, host_id, state, job_id, *fields in Allocation.objects.filter(
        host_id__in=[h.pk for h in hosts]
    ).values_list("pk", "created_at", "host_id", "state", "job_id", *resources):
        held[host_id].append((pk, created, state))
        if job_id is not None:
            incoming[host_id] += 1
        if newest is None or created > newest:
            _resources[pk, created] = tuple(fields)
            _newest = created if _newest is None else max(_newest, created)
        elif (pk, created) not in _resources:
            missing.append(pk)
    if missing:
        for pk, created, *fields in Allocation.objects.filter(pk__in=missing).values_list(
            "pk", "created_at", *_RESOURCE_FIELDS
        ):
            _resources[pk, created] = tuple(fields)
    keys = {h.pk: (_topologies[h.pk][0], tuple(sorted(held[h.pk])), h.cpu_load_percent) for h in hosts}
    for host in hosts:
        cached = _states.get(host.pk)
        if cached is not None and cached[0] == keys[host.pk]:
            continue
        rows = keys[host.pk][1]
        if cached is not None:  # forget the rows the host no longer holds (a changed state is the same row)
            for row in {r[:2] for r in cached[0][1]} - {r[:2] for r in rows}:
                _resources.pop(row, None)
        allocations = [allocation_to_core(state, *_resources[pk, created]) for pk, created, state in rows]
        _states[host.pk] = (keys[host.pk], build_host_state(_measured(host), allocations))
    return [_states[h.pk][1] for h in hosts], incoming


def _measured(host: Host) -> core.HostTopology:
    """The host's cached topology with the CPU load last read on it (a load changes without a refresh)."""
    key, topology = _topologies[host.pk]
    if topology.cpu_load_percent != host.cpu_load_percent:
        topology = replace(topology, cpu_load_percent=host.cpu_load_percent)
        _topologies[host.pk] = (key, topology)
    return topology


def cluster_hosts(vm: VirtualMachine) -> tuple[list[Host], list[int]]:
    """The hosts of the VM's cluster and the ids of those it may run on ("Specific host(s)"), in one query."""
    pinned = VirtualMachine.placement_hosts.through.objects.filter(virtualmachine_id=vm.pk, host_id=OuterRef("pk"))
    hosts = list(Host.objects.filter(cluster_id=vm.cluster_id).annotate(pins_vm=Exists(pinned)))
    return hosts, [h.pk for h in hosts if h.pins_vm]


def placement_hosts(vms: Iterable[VirtualMachine]) -> dict[int, list[int]]:
    """VM id -> the ids of its placement hosts, for many VMs in one query."""
    out: dict[int, list[int]] = {vm.pk: [] for vm in vms}
    through = VirtualMachine.placement_hosts.through.objects.filter(virtualmachine_id__in=list(out))
    for vm_id, host_id in through.values_list("virtualmachine_id", "host_id"):
        out[vm_id].append(host_id)
    return out


def cluster_config(cluster: Cluster) -> core.ClusterConfig:
    return core.ClusterConfig(
        threads_as_cores=cluster.threads_as_cores,
        weight_factors=cluster.effective_weight_factors(),
        cpu_flags=frozenset(cluster.cpu_level_flags),
        affinity_groups=affinity_groups(cluster),
    )


# A cluster's affinity groups change only with a stamp on the cluster (``hpadmin.affinity.signals``), so each
# process keeps them until it changes: a decision reads them after a change only, and never for a cluster that
# has had no group.
_affinity: dict[int, tuple[datetime, tuple[core.AffinityGroup, ...]]] = {}


def affinity_groups(cluster: Cluster) -> tuple[core.AffinityGroup, ...]:
    """The cluster's affinity groups for the core, labels expanded to their VMs and hosts in the cluster."""
    stamp = cluster.affinity_changed_at
    if stamp is None:
        return ()
    if (cached := _affinity.get(cluster.pk)) is not None and cached[0] == stamp:
        return cached[1]
    in_cluster = {"cluster_id": cluster.pk}
    vms = VirtualMachine.objects.filter(**in_cluster).only("pk", "name")
    hosts = Host.objects.filter(**in_cluster).only("pk")
    rows = AffinityGroup.objects.filter(**in_cluster).prefetch_related(
        Prefetch("vms", queryset=vms),
        Prefetch("hosts", queryset=hosts),
        Prefetch("vm_labels__vms", queryset=vms),
        Prefetch("host_labels__hosts", queryset=hosts),
    )
    groups = []
    for row in rows:
        members = [*row.vms.all(), *(vm for label in row.vm_labels.all() for vm in label.vms.all())]
        placed = [*row.hosts.all(), *(host for label in row.host_labels.all() for host in label.hosts.all())]
        groups.append(
            core.AffinityGroup(
                name=row.name,
                vms={vm.pk: vm.name for vm in members},
                hosts=frozenset(host.pk for host in placed),
                vm_rule=row.vm_rule,
                vm_enforcing=row.vm_enforcing,
                host_rule=row.host_rule,
                host_enforcing=row.host_enforcing,
                priority=row.priority,
                managed=row.managed,
            )
        )
    _affinity[cluster.pk] = (stamp, tuple(groups))
    return _affinity[cluster.pk][1]


def member_hosts(groups: Iterable[core.AffinityGroup]) -> dict[int, frozenset[int]]:
    """Where the groups' VMs run: the hosts they hold resources on, a claim of a VM on its way in included (one
    query)."""
    found: dict[int, set[int]] = defaultdict(set)
    members = {vm_id for group in groups for vm_id in group.vms}
    for vm_id, host_id in Allocation.objects.filter(vm_id__in=members).values_list("vm_id", "host_id"):
        found[vm_id].add(host_id)
    return {vm_id: frozenset(hosts) for vm_id, hosts in found.items()}


def _vnuma_nodes(vm: VirtualMachine) -> tuple[core.VNumaNode, ...]:
    """The VM's vNUMA nodes as its guest gets them (``VmConfig.vnuma_cells``), for the core."""
    return tuple(
        core.VNumaNode(
            index=n.index,
            vcpus=frozenset(n.vcpus),
            memory_mib=n.memory_mib,
            tune_mode=n.tune_mode,
            pinned_to=frozenset(n.pinned_to),
            pinned_to_by_host={h: frozenset(p) for h, p in n.pinned_to_by_host.items()},
        )
        for n in vm.vnuma_cells()
    )


def _running_topology(vm: VirtualMachine) -> tuple[int, int, int] | None:
    """The size a running Resize and Pin NUMA VM was given where it runs (one query, for such VMs only)."""
    if vm.cpu_pinning_policy != CpuPinningPolicy.RESIZE_AND_PIN_NUMA or vm.host_id is None:
        return None
    topology = Allocation.objects.active().filter(vm_id=vm.pk).values_list("topology", flat=True).first()
    return (topology[0], topology[1], topology[2]) if topology else None


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
        use_tsc_frequency=vm.use_tsc_frequency,
        tsc_khz_at_start=vm.tsc_khz_at_start,
        cpu_pinning_policy=vm.cpu_pinning_policy,
        cpu_pinning=vm.manual_pinning(),
        numa_nodes=_vnuma_nodes(vm),
        hugepage_kib=vm.hugepage_kib,
        running_on=vm.host_id,
        running_topology=_running_topology(vm),
        io_threads=vm.io_threads,
        emulator_cpus=parse_cpuset(vm.emulator_pinning) if vm.emulator_pinning.strip() else frozenset(),
        high_availability=vm.high_availability,
    )
