"""Weights: each scores every eligible host in [0, 1] (0 is best); the cluster's factors scale them and the lowest
sum wins, as in oVirt. A weight that does not apply to the VM is left out for every host alike.

Like the filters, a weight takes all hosts at once: the simple ones are single list comprehensions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .affinity import groups_of, soft_scorer
from .fit import NoFit, map_cells
from .placement import Plan
from .state import HostState

Scorer = Callable[[Sequence[HostState]], list[float]]


def cpu_load(plan: Plan) -> Scorer:
    """Fewer busy pCPUs per online pCPU after adding the VM, the VM busy on every vCPU. A host's busy pCPUs are its
    measured load plus the vCPUs of its pending claims (VMs on their way in) where the load is measured, else its
    allocated vCPUs."""
    vcpus = plan.vcpus

    def busy(h: HostState) -> float:
        load = h.cpu_load_percent
        return h.allocated_vcpus if load is None else load * h.online_count / 100 + h.pending_vcpus

    return lambda hosts: [x if (x := (busy(h) + vcpus) / (h.online_count or 1)) < 1.0 else 1.0 for h in hosts]


def memory_load(plan: Plan) -> Scorer:
    """Less memory committed after adding the VM."""
    need = plan.memory_kib
    return lambda hosts: [
        x if (x := (h.memory_used_kib + need) / (h.memory_total_kib or 1)) < 1.0 else 1.0 for h in hosts
    ]


def least_pinned(plan: Plan) -> Scorer:
    """Fewer exclusively pinned pCPUs after adding the VM: keeps room for the next dedicated VM."""
    own = plan.vcpus if plan.vm.exclusive else 0
    return lambda hosts: [x if (x := (h.exclusive_count + own) / (h.online_count or 1)) < 1.0 else 1.0 for h in hosts]


def hp_topology(plan: Plan) -> Scorer | None:
    """oVirt's HighPerformanceCpu weight.

    Exclusive policies: fewer physical sockets needed for the VM's pCPUs is better. Otherwise a host whose
    sockets, cores per socket and threads per core are each at least the VM's is preferred.
    """
    vm = plan.vm
    applies = (
        vm.optimized_for == "high_performance"
        or vm.cpu_passthrough
        or bool(plan.manual_pins)
        or vm.exclusive
        or any(v.enforced and (v.pinned_to or v.pinned_to_by_host) for v in vm.numa_nodes)
    )
    if not applies:
        return None
    if vm.exclusive:
        vcpus, isolate = plan.vcpus, plan.mode == "isolate"

        def spread(host: HostState) -> float:
            caps = host.socket_free_cores_desc if isolate else host.socket_free_threads_desc
            needed = room = 0
            for cap in caps:
                room += cap
                needed += 1
                if room >= vcpus:
                    break
            return min(1.0, (needed - 1) / max(len(caps) - 1, 1))

        if isolate:
            return lambda hosts: [0.0 if h.socket_free_cores_desc[0] >= vcpus else spread(h) for h in hosts]
        return lambda hosts: [0.0 if h.socket_free_threads_desc[0] >= vcpus else spread(h) for h in hosts]

    sockets, cores, threads = vm.sockets, vm.cores, vm.threads

    def fits(host: HostState) -> bool:
        topo = host.topology
        return sockets <= topo.sockets and cores <= topo.cores_per_socket and threads <= topo.threads_per_core

    return lambda hosts: [0.0 if fits(h) else 1.0 for h in hosts]


def cpu_numa_pinning(plan: Plan) -> Scorer | None:
    """oVirt's CpuAndNumaPinning weight: manual CPU pinning agrees with the hard vNUMA pinning."""
    if not plan.manual_pins or not plan.cell_vnodes:
        return None

    def score(host: HostState) -> float:
        if not host.numa_supported:
            return 1.0
        fit = map_cells(host, plan.cells(host), "none", may_share=True, pins=plan.manual_pins)
        return 1.0 if isinstance(fit, NoFit) else 0.0

    return lambda hosts: list(map(score, hosts))


def numa_single_node(plan: Plan) -> Scorer | None:
    """oVirt's NumaWeight, on free capacity: a VM without vNUMA is better off inside one host node.

    A host without NUMA counts as one node: its memory is equally close to every CPU.
    """
    if plan.vm.numa_nodes or plan.resize:
        return None
    vcpus, mode, need, size, hugepages = plan.vcpus, plan.mode, plan.memory_kib, plan.page_kib, plan.hugepages

    def score(host: HostState) -> float:
        for node in host.nodes:
            if mode == "prefer":
                cpus = node.free_threads
            else:
                cpus = node.free_cores if mode == "isolate" else node.cpus.bit_count()
            if cpus < vcpus:
                continue
            if hugepages:
                if node.hugepages_free.get(size, 0) * size >= need:
                    return 0.0
            elif node.small_free_kib >= need:
                return 0.0
        return 1.0

    return lambda hosts: list(map(score, hosts))


def preferred_hosts(plan: Plan) -> Scorer | None:
    """At start-up the VM's placement hosts come first (for "Do not allow migration" PinToHost filters instead)."""
    vm = plan.vm
    if plan.request.action != "start" or not vm.placement_hosts or vm.migration_mode == "pinned":
        return None
    preferred = vm.placement_hosts
    return lambda hosts: [0.0 if h.id in preferred else 1.0 for h in hosts]


def vm_affinity(plan: Plan) -> Scorer | None:
    """oVirt's VmAffinityGroups weight: the VM's non-enforcing VM-to-VM rules a host breaks, by priority."""
    groups = groups_of(plan.vm.id, plan.cluster.affinity_groups)
    request = plan.request
    return soft_scorer(plan.vm.id, groups, "vm", request.moving_together, request.member_hosts) if groups else None


def vm_to_host_affinity(plan: Plan) -> Scorer | None:
    """oVirt's VmToHostsAffinityGroups weight: the VM's non-enforcing VM-to-host rules a host breaks."""
    groups = groups_of(plan.vm.id, plan.cluster.affinity_groups)
    return soft_scorer(plan.vm.id, groups, "host") if groups else None


#: Weight name (the key of the cluster's factors) -> factory.
WEIGHTS: tuple[tuple[str, Callable[[Plan], Scorer | None]], ...] = (
    ("cpu_load", cpu_load),
    ("memory_load", memory_load),
    ("least_pinned", least_pinned),
    ("hp_topology", hp_topology),
    ("cpu_numa_pinning", cpu_numa_pinning),
    ("numa_single_node", numa_single_node),
    ("preferred_hosts", preferred_hosts),
    ("vm_affinity", vm_affinity),
    ("vm_to_host_affinity", vm_to_host_affinity),
)
