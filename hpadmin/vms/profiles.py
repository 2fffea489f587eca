"""'Optimized for' profiles: the one source of the defaults that forms, the API and templates apply.

Choosing a type sets its defaults (oVirt's VmModelBehaviorBase.vmTypeChanged). The migration mode follows
one rule everywhere: High Performance VMs, and Server or Desktop VMs with a pinning setting (CPU pinning,
pass-through host CPU, a pinned vNUMA node), default to "manual only", since automatic moves (load balancing)
would cost them their placement; every other VM defaults to "manual and automatic".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .models import CpuPinningPolicy, MigrationMode, OptimizedFor, VmConfig, Watchdog


@dataclass(frozen=True)
class Change:
    field: str
    value: object
    why: str


_DEVICES_OFF_FOR_HP = "a High Performance VM runs without emulated devices it does not need"

PROFILES: dict[str, tuple[Change, ...]] = {
    OptimizedFor.HIGH_PERFORMANCE: (
        Change("cpu_passthrough", True, "the guest sees the host's CPU model and flags"),
        Change("headless", True, "no graphical console: serial console only"),
        Change("usb_enabled", False, _DEVICES_OFF_FOR_HP),
        Change("soundcard_enabled", False, _DEVICES_OFF_FOR_HP),
        Change("memory_balloon", False, "memory is not reclaimed from a High Performance VM"),
        Change("io_threads", 1, "one dedicated I/O thread, pinned with the emulator thread"),
        Change("virtio_rng", True, "a fast entropy source for the guest"),
        Change("watchdog", Watchdog.NONE, "a watchdog's timer interrupts add latency"),
    ),
    OptimizedFor.SERVER: (
        Change("cpu_passthrough", False, "servers use the cluster CPU type"),
        Change("headless", False, "a graphical console is available"),
        Change("usb_enabled", False, "servers need no USB"),
        Change("soundcard_enabled", False, "servers need no sound card"),
        Change("memory_balloon", True, "memory can be reclaimed under pressure"),
        Change("io_threads", 1, "one I/O thread for disk I/O"),
        Change("virtio_rng", True, "an entropy source for the guest"),
    ),
    OptimizedFor.DESKTOP: (
        Change("cpu_passthrough", False, "desktops use the cluster CPU type"),
        Change("headless", False, "desktops have a graphical console"),
        Change("usb_enabled", True, "USB devices can be redirected"),
        Change("soundcard_enabled", True, "desktops play sound"),
        Change("memory_balloon", True, "memory can be reclaimed under pressure"),
        Change("io_threads", 0, "desktops do little disk I/O"),
        Change("virtio_rng", True, "an entropy source for the guest"),
    ),
}


def suggested_migration_mode(config: VmConfig) -> str:
    if config.is_high_performance or config.has_pinning_settings():
        return MigrationMode.USER_MIGRATABLE
    return MigrationMode.MIGRATABLE


def apply_profile(config: VmConfig, keep: Iterable[str] = ()) -> list[Change]:
    """Set the defaults of ``config.optimized_for`` and the migration mode, except the fields in ``keep``
    (those the user set explicitly). Returns what changed, each with its reason."""
    keep = set(keep)
    changes = []
    for change in PROFILES[config.optimized_for]:
        if change.field not in keep and getattr(config, change.field) != change.value:
            setattr(config, change.field, change.value)
            changes.append(change)
    if "migration_mode" not in keep:
        mode = suggested_migration_mode(config)
        if config.migration_mode != mode:
            config.migration_mode = mode
            if mode == MigrationMode.MIGRATABLE:
                why = "with no pinning settings to keep, load balancing may move it too"
            elif config.is_high_performance:
                why = "High Performance VMs are moved only when an admin asks, so their pinning is never lost silently"
            else:
                why = "VMs with pinning settings are moved only when an admin asks"
            changes.append(Change("migration_mode", mode, why))
    return changes


def inherit(config: VmConfig, source: VmConfig) -> None:
    """Copy every configuration value of a template or pool (type, migration mode and all) onto ``config``."""
    for name, value in source.config_values().items():
        setattr(config, name, value)


def prepare_new(config: VmConfig, given: dict, source: VmConfig | None = None) -> list[Change]:
    """Defaults for a new VM, template or pool: a template's or pool's configuration when there is one,
    else the profile of the chosen type; then the values the user gave. Returns the profile's changes."""
    changes: list[Change] = []
    if source is not None:
        inherit(config, source)
    for name, value in given.items():
        setattr(config, name, value)
    if source is None:
        changes = apply_profile(config, keep=set(given) - {"optimized_for"})
    return changes


def hp_recommendations(config: VmConfig) -> list[tuple[str, str]]:
    """oVirt's "High Performance Virtual Machine Settings": what an HP VM still lacks, with how to set it."""
    if not config.is_high_performance:
        return []
    out = []
    if config.cpu_pinning_policy == CpuPinningPolicy.NONE:
        out.append(
            (
                "CPU pinning",
                "Resource allocation → CPU pinning policy: Dedicated or Isolate Threads (the scheduler picks "
                "the pCPUs on every host), or Manual with a pinning topology.",
            )
        )
    numa_chosen_by_policy = config.cpu_pinning_policy in {
        CpuPinningPolicy.DEDICATED,
        CpuPinningPolicy.RESIZE_AND_PIN_NUMA,
    }
    if not numa_chosen_by_policy and not any(node.is_pinned for node in config.vnuma()):
        out.append(
            (
                "vNUMA and NUMA pinning",
                "NUMA → node count, then pin each vNUMA node to a host NUMA node in the NUMA pinning editor "
                "(needs Host → Start running on: Specific host(s)).",
            )
        )
    if not config.hugepage_kib:
        out.append(("Hugepages", "System → Hugepages: back the memory with 2 MiB or 1 GiB pages."))
    return out
