"""Restoring degraded VMs: every minute (beat) each VM running with settings suspended is judged again with
its whole configuration. Where a host fits it (the one it came from first), a VM that automation may move
(``VirtualMachine.automatic_migration_refusal``) migrates there, as a job of reason "Restoring suspended
settings"; the others stay, and their owner and the admins are told once per degradation that "Restore
settings" would now work.
"""

from __future__ import annotations

import logging

from celery import shared_task

from hpadmin.vms.models import VirtualMachine, VmStatus

from . import degradation, events, notifications
from .errors import OperationError
from .models import Event, JobState, MigrationReason, Severity
from .services import migrate_vms

logger = logging.getLogger(__name__)


@shared_task
def restore_degraded() -> list[int]:
    """Beat: degraded VMs for which a host fits the whole configuration again are migrated there when automation
    may move them; otherwise the admins are told (once per degradation) that "Restore settings" would work.
    Returns the ids of the VMs migrated."""
    moved = []
    degraded = (
        VirtualMachine.objects.filter(status=VmStatus.UP, degraded_since__isnull=False)
        .exclude(migration_jobs__state__in=[JobState.PENDING, JobState.SCHEDULING, JobState.MIGRATING])
        .select_related("cluster", "host")
    )
    for vm in degraded:
        hosts, _ = degradation.fitting_hosts(vm)
        if not hosts:
            continue
        if refusal := vm.automatic_migration_refusal():
            told = Event.objects.filter(vm=vm, code="vm_restore_available", time__gte=vm.degraded_since)
            if not told.exists():
                message = (
                    f"Host {hosts[0].name} now fits the whole configuration of VM {vm.name}, which runs degraded on "
                    f"{vm.host.name}; {refusal}, so it is not moved automatically: use Restore settings."
                )
                events.record("vm_restore_available", message, severity=Severity.WARNING, vm=vm, host=hosts[0])
                notifications.notify(
                    "vm_restore_available",
                    vm,
                    f"VM {vm.name} can get its settings back",
                    message,
                    vm.suspended_settings,
                )
            continue
        try:
            migrate_vms(
                [vm],
                planned={vm.pk: hosts[0]},
                reason=MigrationReason.RESTORE,
                reason_text=f"a host fits the whole configuration again ({hosts[0].name})",
            )
        except OperationError as exc:  # a migration or a stop got there first: the next run looks again
            logger.info("restoring %s: %s", vm.name, exc.message)
            continue
        moved.append(vm.pk)
    return moved
