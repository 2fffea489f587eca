"""The hypervisor driver interface: plain dataclasses in, plain dataclasses out.

Nothing here knows about Django models. The migration engine turns a VM and its Allocation into a
:class:`DomainSpec`; a driver turns that into whatever the hypervisor needs and reports back with
:class:`HostCapabilities`, :class:`MigrationProgress` and :class:`MigrationResult`.

Units: memory in MiB, hugepage sizes in KiB (as libvirt and the kernel count them), CPU ids are
host logical CPU numbers, vCPU ids count from 0.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypedDict

NumaMode = Literal["strict", "interleave", "preferred"]
ErrorKind = Literal["unreachable", "refused", "failed", "aborted", "not_found", "timeout"]
MigrationPhase = Literal["setup", "precopy", "postcopy", "completing"]


# -- host ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuInfo:
    """One host logical CPU (a hardware thread)."""

    id: int
    socket: int
    core: int
    node: int | None  # None on hosts without NUMA
    online: bool = True


@dataclass(frozen=True)
class NumaNodeInfo:
    """One host NUMA node."""

    index: int
    memory_mib: int
    cpus: tuple[int, ...]
    distances: dict[int, int] = field(default_factory=dict)  # node index -> distance
    hugepages: dict[int, int] = field(default_factory=dict)  # page size KiB -> total pages


@dataclass(frozen=True)
class HostCapabilities:
    """What a host offers, as its hypervisor reports it."""

    cpu_model: str
    cpu_flags: frozenset[str]
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    cpus: tuple[CpuInfo, ...]
    numa_nodes: tuple[NumaNodeInfo, ...] = ()  # empty: the host has no NUMA
    memory_mib: int = 0
    hugepages: dict[int, int] = field(default_factory=dict)  # host-wide pools, for hosts without NUMA
    tsc_khz: int | None = None
    hostname: str = ""

    @property
    def online_cpus(self) -> tuple[int, ...]:
        return tuple(cpu.id for cpu in self.cpus if cpu.online)


class PowerState(enum.StrEnum):
    """A host's power as far as hpadmin can tell: a host that does not answer may be off or hung (unknown)."""

    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


# -- guest --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuestNumaCell:
    """A guest (virtual) NUMA node and the host nodes its memory is bound to."""

    index: int
    vcpus: tuple[int, ...]
    memory_mib: int
    host_nodes: tuple[int, ...] = ()  # empty: not bound to host nodes
    mode: NumaMode = "strict"
    hugepage_kib: int | None = None  # None: the domain-wide hugepage_kib applies


@dataclass(frozen=True)
class DomainSpec:
    """A VM as it must run on one particular host, pinning included."""

    uuid: str
    name: str
    sockets: int
    cores: int
    threads: int
    memory_mib: int
    cpu_passthrough: bool = False
    vcpu_pins: dict[int, tuple[int, ...]] = field(default_factory=dict)  # vCPU -> host CPUs
    emulator_cpus: tuple[int, ...] = ()
    iothreads: int = 0
    iothread_cpus: tuple[int, ...] = ()  # every IO thread is pinned to this set
    numa_cells: tuple[GuestNumaCell, ...] = ()
    hugepage_kib: int | None = None
    headless: bool = True
    memballoon: bool = False
    usb: bool = False  # a USB controller
    soundcard: bool = False
    rng: bool = False  # a virtio RNG fed from the host's /dev/urandom
    watchdog: str | None = None  # the watchdog's libvirt model; None: no watchdog
    tsc_khz: int | None = None  # the guest's fixed TSC frequency; None: whatever the host's TSC runs at

    @property
    def vcpus(self) -> int:
        return self.sockets * self.cores * self.threads


class DomainState(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    SHUTOFF = "shutoff"
    MIGRATING = "migrating"
    MISSING = "missing"


@dataclass(frozen=True)
class Console:
    """Where a running domain's graphical display listens on its host: hpadmin's domains listen on the host's
    loopback only, so a user reaches them through an SSH tunnel to the host."""

    protocol: str  # "vnc" or "spice"
    address: str
    port: int


class AppliedPinning(TypedDict):
    """The pinning a running domain has, as the hypervisor reports it."""

    vcpus: dict[int, tuple[int, ...]]  # vCPU -> host CPUs
    emulator: tuple[int, ...]
    iothreads: dict[int, tuple[int, ...]]  # IO thread id -> host CPUs


# -- migration ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MigrationOptions:
    """How to migrate; None leaves the hypervisor's default."""

    max_downtime_ms: int | None = None
    bandwidth_mibps: int | None = None
    auto_converge: bool = False
    compression: bool = False
    post_copy: bool = False
    timeout_s: float | None = None  # abort the migration when it runs longer


@dataclass(frozen=True)
class MigrationProgress:
    """A snapshot of a running migration; ``percent`` never goes back between reports."""

    phase: MigrationPhase
    percent: float
    data_total_mib: float
    data_remaining_mib: float
    dirty_rate_mibps: float
    iteration: int  # pre-copy pass
    downtime_ms: float | None = None  # expected while it runs (if estimated), actual once complete


@dataclass(frozen=True)
class MigrationResult:
    duration_s: float
    downtime_ms: float | None
    transferred_mib: float


class HypervisorError(Exception):
    """A hypervisor operation failed; ``message`` is meant for an admin, ``kind`` for code."""

    def __init__(self, message: str, kind: ErrorKind = "failed") -> None:
        super().__init__(message)
        self.message = message
        self.kind: ErrorKind = kind


# -- the driver ---------------------------------------------------------------------------------


class Driver(Protocol):
    """A hypervisor backend. Every method raises :class:`HypervisorError` on failure."""

    def check_uri(self, uri: str) -> None:
        """Raise ValueError, saying why, unless hpadmin may register a host at ``uri``."""
        ...

    def capabilities(self, uri: str) -> HostCapabilities: ...

    def ping(self, uri: str) -> None:
        """Return when the host answers a cheap call (the heartbeat); ``unreachable`` when it does not."""
        ...

    def power_off(self, uri: str, fence_command: str) -> None:
        """Fence the host: power it off through its power management, ``fence_command`` (empty: it has none,
        ``refused``). Returns once the power-off is known to have succeeded; a fenced host runs nothing."""
        ...

    def power_status(self, uri: str) -> PowerState:
        """Whether the host is on, as far as can be told without its power management."""
        ...

    def cpu_load(self, uri: str) -> float:
        """How busy the host's CPUs are now: the percent (0-100) of their time, all online CPUs together, spent
        on anything but idling and waiting for I/O. Load balancing reads it."""
        ...

    def list_domains(self, uri: str) -> list[str]:
        """Names of the domains the host runs or knows."""
        ...

    def domain_state(self, uri: str, name: str) -> DomainState: ...

    def start(self, uri: str, spec: DomainSpec) -> None:
        """Define the domain from ``spec`` and start it."""
        ...

    def stop(self, uri: str, name: str) -> None:
        """Power the domain off and undefine it; ``not_found`` when the host has no such domain."""
        ...

    def migrate(
        self,
        src_uri: str,
        dst_uri: str,
        spec: DomainSpec,
        options: MigrationOptions,
        progress: Callable[[MigrationProgress], None],
    ) -> MigrationResult:
        """Live-migrate ``spec.name`` so that it runs on the destination as ``spec`` says.

        Blocks until the migration ends, calling ``progress`` while it runs. On failure the domain
        keeps running on the source.
        """
        ...

    def abort_migration(self, src_uri: str, name: str) -> None:
        """Cancel the domain's running migration; works from any process."""
        ...

    def applied_pinning(self, uri: str, name: str) -> AppliedPinning:
        """The running domain's pinning as the hypervisor applied it."""
        ...

    def reboot(self, uri: str, name: str) -> None:
        """Restart the running domain's guest in place: same host, same pinning; ``not_found`` when the host does
        not run it."""
        ...

    def console(self, uri: str, name: str) -> Console | None:
        """Where the running domain's graphical display listens; None when it has none to connect to."""
        ...
