"""Migration policies (oVirt's) mapped onto driver options, with the VM's overrides on top.

Post-copy and hugepages: QEMU cannot post-copy a guest backed by static hugepages (the destination would
fault whole 1 GiB pages in over the network). hpadmin does not refuse such a migration, since maintenance
must still be able to move the VM: it falls back to pre-copy with auto-converge and records a warning
event saying so (``Options.warnings``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hpadmin.hypervisor.base import MigrationOptions
from hpadmin.inventory.models import MigrationPolicy
from hpadmin.vms.models import InheritableBool, VirtualMachine

POLICY_OPTIONS: dict[str, MigrationOptions] = {
    # Converges in typical situations without noticeable downtime; throttles a busy guest, then gives up.
    MigrationPolicy.MINIMAL_DOWNTIME: MigrationOptions(max_downtime_ms=500, auto_converge=True, timeout_s=600),
    # Switches to post-copy when pre-copy stalls: bounded downtime for any guest.
    MigrationPolicy.POST_COPY: MigrationOptions(max_downtime_ms=500, post_copy=True, timeout_s=600),
    # Heavy workloads too, at the price of a longer pause at the end.
    MigrationPolicy.SUSPEND_WORKLOAD: MigrationOptions(
        max_downtime_ms=5000, auto_converge=True, compression=True, timeout_s=900
    ),
}


@dataclass(frozen=True)
class Options:
    policy: str
    driver: MigrationOptions
    warnings: list[str] = field(default_factory=list)


def _inherit(value: str, default: bool) -> bool:
    return default if value == InheritableBool.INHERIT else value == InheritableBool.ON


def migration_options(vm: VirtualMachine) -> Options:
    """The effective options: the VM's policy (else its cluster's), then the VM's own overrides."""
    policy = vm.migration_policy or vm.cluster.migration_policy
    base = POLICY_OPTIONS[policy]
    options = replace(
        base,
        max_downtime_ms=vm.max_downtime_ms or base.max_downtime_ms,
        auto_converge=_inherit(vm.auto_converge, base.auto_converge),
        compression=_inherit(vm.compression, base.compression),
    )
    warnings = []
    if options.post_copy and vm.hugepage_kib:
        options = replace(options, post_copy=False, auto_converge=True)
        warnings.append(
            f"Post-copy is not possible for {vm.name}: its memory is backed by hugepages. "
            "It migrates with pre-copy and auto-converge instead."
        )
    return Options(policy=policy, driver=options, warnings=warnings)
