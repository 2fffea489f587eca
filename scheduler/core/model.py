"""Plain data the scheduler core works on: host topology, allocations, the VM, the request and the decision.

Everything here is an immutable value. Mapping-typed fields are never mutated by the core; callers should
not mutate them either. Units: memory in MiB, hugepage sizes in KiB, hugepage counts in pages; CPU ids are
the host's global ids, vCPU ids run 0..N-1 across the VM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

HostStatus = Literal["up", "maintenance", "preparing_for_maintenance", "non_operational", "down"]
OptimizedFor = Literal["desktop", "server", "high_performance"]
MigrationMode = Literal["migratable", "user_migratable", "pinned"]
PinningPolicy = Literal["none", "manual", "dedicated", "isolate_threads", "resize_and_pin_numa"]
TuneMode = Literal["strict", "interleave", "preferred"]
Action = Literal["start", "migrate"]
AffinityRule = Literal["positive", "negative", "disabled"]

#: Policies whose pCPUs are chosen by the scheduler and held exclusively.
EXCLUSIVE_POLICIES = frozenset({"dedicated", "isolate_threads"})

#: Per-cluster weight factors; lower accumulated ``factor * weight`` wins, each weight lies in [0, 1].
#: The ratios follow oVirt's default cluster policy (EvenDistribution CPU 2 / memory 1, HighPerformanceCpu 4,
#: CpuAndNumaPinning 5, PreferredHosts 99 so that it dominates at start-up, VmAffinity 1, VmToHostAffinity 20).
DEFAULT_WEIGHT_FACTORS: Mapping[str, float] = {
    "cpu_load": 2.0,
    "memory_load": 1.0,
    "least_pinned": 2.0,
    "hp_topology": 4.0,
    "cpu_numa_pinning": 5.0,
    "numa_single_node": 1.0,
    "preferred_hosts": 99.0,
    "vm_affinity": 1.0,
    "vm_to_host_affinity": 20.0,
}


@dataclass(frozen=True, slots=True)
class HostCpu:
    """One logical CPU (thread) of a host; ``core`` is a host-global core id shared by sibling threads."""

    id: int
    socket: int
    core: int
    node: int | None = None


@dataclass(frozen=True, slots=True)
class HostNumaNode:
    """A host NUMA node; ``memory_mib`` is the whole node, hugepage pools included."""

    index: int
    cpus: frozenset[int]
    memory_mib: int
    hugepages: Mapping[int, int] = field(default_factory=dict)  # size_kib -> total pages


@dataclass(frozen=True, slots=True)
class HostTopology:
    """What a host is, independent of what runs on it.

    A host without NUMA support has no ``numa_nodes``; its memory and hugepage pools are then given on the
    host itself (``memory_mib``, ``hugepages``) and the core treats it as a single pseudo node 0.
    ``online_cpus`` of None means every CPU in ``cpus`` is online. ``cpu_load_percent`` is the host's measured
    CPU load (0-100, None: not measured): it changes without the host changing, and load balancing and the
    cpu_load weight read it.
    """

    id: int
    name: str
    status: HostStatus = "up"
    cpu_flags: frozenset[str] = frozenset()
    sockets: int = 1
    cores_per_socket: int = 1
    threads_per_core: int = 1
    cpus: tuple[HostCpu, ...] = ()
    online_cpus: frozenset[int] | None = None
    numa_nodes: tuple[HostNumaNode, ...] = ()
    memory_mib: int = 0
    hugepages: Mapping[int, int] = field(default_factory=dict)
    tsc_khz: int | None = None
    cpu_load_percent: float | None = None

    def __post_init__(self) -> None:
        node_of = {cpu: node.index for node in self.numa_nodes for cpu in node.cpus}
        for cpu in self.cpus:
            if self.numa_nodes and cpu.node is not None and node_of.get(cpu.id) != cpu.node:
                raise ValueError(f"host {self.name}: CPU {cpu.id} says NUMA node {cpu.node}, the node list disagrees")


@dataclass(frozen=True, slots=True)
class Allocation:
    """What one VM holds (or has claimed, ``pending``) on a host.

    ``exclusive_cpus`` are pCPUs no other VM may use (dedicated / isolate_threads, whole cores for the
    latter); ``shared_cpus`` are pCPUs a manual or Resize-and-Pin VM is pinned to without exclusivity.
    ``memory_mib`` is memory from the small-page pool per host node, ``hugepages`` is {node: {size_kib: pages}}.
    On a host without NUMA use node 0.
    """

    vm_id: int
    pending: bool = False
    exclusive_cpus: frozenset[int] = frozenset()
    shared_cpus: frozenset[int] = frozenset()
    vcpus: int = 0
    memory_mib: Mapping[int, int] = field(default_factory=dict)
    hugepages: Mapping[int, Mapping[int, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VNumaNode:
    """A virtual NUMA node; ``pinned_to`` are allowed host node indexes, ``pinned_to_by_host`` overrides per host."""

    index: int
    vcpus: frozenset[int]
    memory_mib: int
    tune_mode: TuneMode = "strict"
    pinned_to: frozenset[int] = frozenset()
    pinned_to_by_host: Mapping[int, frozenset[int]] = field(default_factory=dict)

    def pins_on(self, host_id: int) -> frozenset[int]:
        """Host node indexes this vNUMA node is pinned to on the given host (empty: not pinned)."""
        return self.pinned_to_by_host.get(host_id, self.pinned_to)

    @property
    def enforced(self) -> bool:
        """Strict and interleave pinning are hard constraints; preferred is a hint."""
        return self.tune_mode != "preferred"


@dataclass(frozen=True, slots=True)
class VMRequest:
    """The VM to place, as configured (or as it runs with ``suspended`` settings left out, see
    :mod:`.relaxation`); ``cpu_pinning`` is the parsed manual pinning (policy ``manual``).

    ``emulator_cpus`` is the admin's emulator and I/O thread pinning (empty: the placement chooses).
    ``running_topology`` is the (sockets, cores, threads) a running Resize and Pin NUMA VM has, which a live
    migration keeps.
    """

    id: int
    name: str
    sockets: int = 1
    cores: int = 1
    threads: int = 1
    memory_mib: int = 1024
    optimized_for: OptimizedFor = "server"
    migration_mode: MigrationMode = "migratable"
    placement_hosts: frozenset[int] = frozenset()
    cpu_passthrough: bool = False
    cpu_flags_at_start: frozenset[str] = frozenset()
    use_tsc_frequency: bool = False
    tsc_khz_at_start: int | None = None  # TSC frequency of the host the running VM started on
    cpu_pinning_policy: PinningPolicy = "none"
    cpu_pinning: Mapping[int, frozenset[int]] = field(default_factory=dict)
    numa_nodes: tuple[VNumaNode, ...] = ()
    hugepage_kib: int | None = None
    running_on: int | None = None
    running_topology: tuple[int, int, int] | None = None
    io_threads: int = 0
    emulator_cpus: frozenset[int] = frozenset()
    high_availability: bool = False
    suspended: frozenset[str] = frozenset()  # settings left out (``relaxation.relax``)

    def __post_init__(self) -> None:
        if min(self.sockets, self.cores, self.threads) < 1:
            raise ValueError(f"VM {self.name}: sockets, cores and threads must be at least 1")
        if self.numa_nodes:
            seen: set[int] = set()
            for vnode in self.numa_nodes:
                if vnode.vcpus & seen:
                    raise ValueError(f"VM {self.name}: vCPUs {sorted(vnode.vcpus & seen)} are in two vNUMA nodes")
                seen |= vnode.vcpus
            if seen != set(range(self.vcpus)):
                raise ValueError(f"VM {self.name}: the vNUMA nodes must hold each of the {self.vcpus} vCPUs once")

    @property
    def vcpus(self) -> int:
        return self.sockets * self.cores * self.threads

    @property
    def exclusive(self) -> bool:
        return self.cpu_pinning_policy in EXCLUSIVE_POLICIES


@dataclass(frozen=True, slots=True)
class AffinityGroup:
    """An affinity group of a cluster (:mod:`.affinity`): its VMs (id -> name, labels expanded), its hosts and its
    two rules."""

    name: str
    vms: Mapping[int, str] = field(default_factory=dict)
    hosts: frozenset[int] = frozenset()
    vm_rule: AffinityRule = "disabled"
    vm_enforcing: bool = True
    host_rule: AffinityRule = "disabled"
    host_enforcing: bool = True
    priority: float = 1.0
    managed: bool = False


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Cluster-wide scheduling settings; ``weight_factors`` override :data:`DEFAULT_WEIGHT_FACTORS` by name.

    ``cpu_flags`` are the flags of the cluster CPU type that every host must offer to VMs without
    pass-through (empty: not checked). ``affinity_groups``: see :mod:`.affinity`.
    """

    threads_as_cores: bool = False
    weight_factors: Mapping[str, float] = field(default_factory=dict)
    cpu_flags: frozenset[str] = frozenset()
    affinity_groups: tuple[AffinityGroup, ...] = ()

    def __post_init__(self) -> None:
        if unknown := set(self.weight_factors) - set(DEFAULT_WEIGHT_FACTORS):
            raise ValueError(f"unknown weights {sorted(unknown)}; known: {sorted(DEFAULT_WEIGHT_FACTORS)}")
        if negative := sorted(name for name, factor in self.weight_factors.items() if factor < 0):
            raise ValueError(f"weight factors must be 0 or more: {negative}")

    def factor(self, weight: str) -> float:
        return self.weight_factors.get(weight, DEFAULT_WEIGHT_FACTORS[weight])


@dataclass(frozen=True, slots=True)
class ScheduleRequest:
    """What to do: start or migrate, to a given host or the best one; ``force`` as the admin's dialog sends it.

    ``allow_degraded``: hosts that fit the VM once some settings are suspended are eligible too, after every
    host that fits the whole configuration. ``ignore_vm_affinity``: enforcing VM-to-VM affinity rules do not
    filter (a user's maintenance that cannot empty the host otherwise). ``moving_together``: the other VMs of an
    affinity closure that move with this one, to the same host. ``member_hosts``: where the VM's affinity peers
    run (VM id -> host ids); None: where the hosts given to :func:`schedule` say, all of them, before
    ``destination`` narrows the judged ones down."""

    action: Action = "start"
    destination: int | None = None
    force: bool = False
    allow_degraded: bool = False
    ignore_vm_affinity: bool = False
    moving_together: frozenset[int] = frozenset()
    member_hosts: Mapping[int, frozenset[int]] | None = None
    excluded_hosts: frozenset[int] = frozenset()
    saturated_hosts: frozenset[int] = frozenset()  # already receiving as many migrations as allowed


class Rejection(NamedTuple):
    filter: str
    reason: str


class HostVerdict(NamedTuple):
    """One host's outcome; ``score`` (lower is better) and ``rank`` (1 = best) only for eligible hosts.

    ``suspended``: the settings an eligible host takes the VM without (empty: it fits the whole configuration);
    its ``rejections`` are then those of the whole configuration. A named tuple rather than a dataclass: a
    decision over a large cluster creates one per host.
    """

    host_id: int
    eligible: bool
    score: float | None = None
    rank: int | None = None
    rejections: tuple[Rejection, ...] = ()
    suspended: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Placement:
    """Where exactly the VM goes on the chosen host.

    ``numa`` maps vNUMA node -> host node; ``vcpu_pins`` maps vCPU -> pCPUs (one pCPU each under the
    dynamic policies, the written cpuset under ``manual``; empty when vCPUs float). ``memory_mib`` and
    ``hugepages`` say what the VM takes from each host node (node 0 on a host without NUMA).
    ``topology`` is (sockets, cores, threads) the VM gets; it differs from the configured one only under
    Resize and Pin NUMA. ``emulator_cpus`` (and ``io_thread_cpus`` when the VM has IO threads) are where
    QEMU's own threads run; those the VM does not hold exclusively are part of ``shared_cpus``. ``suspended``
    are the settings the placement leaves out.
    """

    host_id: int
    numa: Mapping[int, int]
    vcpu_pins: Mapping[int, frozenset[int]]
    emulator_cpus: frozenset[int]
    io_thread_cpus: frozenset[int]
    exclusive_cpus: frozenset[int]
    shared_cpus: frozenset[int]
    memory_mib: Mapping[int, int]
    hugepages: Mapping[int, Mapping[int, int]]
    topology: tuple[int, int, int]
    suspended: tuple[str, ...] = ()

    @property
    def vcpus(self) -> int:
        sockets, cores, threads = self.topology
        return sockets * cores * threads

    def to_allocation(self, vm_id: int, *, pending: bool = True) -> Allocation:
        """The allocation to record (as a pending claim until the VM runs there)."""
        return Allocation(
            vm_id=vm_id,
            pending=pending,
            exclusive_cpus=self.exclusive_cpus,
            shared_cpus=self.shared_cpus,
            vcpus=self.vcpus,
            memory_mib=dict(self.memory_mib),
            hugepages={node: dict(pages) for node, pages in self.hugepages.items()},
        )


@dataclass(frozen=True, slots=True)
class SchedulingError:
    """Why nothing was chosen: ``migration_mode``, ``no_host`` or ``unknown_host``."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The full answer: a verdict per judged host (in input order), ranked candidates, the choice."""

    verdicts: tuple[HostVerdict, ...]
    ranked: tuple[int, ...]
    chosen: int | None
    placement: Placement | None
    error: SchedulingError | None

    def verdict(self, host_id: int) -> HostVerdict | None:
        return next((v for v in self.verdicts if v.host_id == host_id), None)
