"""Degraded VMs: a VM running on a host that cannot honour some of its settings.

The placement decides what is suspended (``scheduler.core.relaxation``) and its claim records it; when the claim
becomes the VM's allocation, :func:`record` makes the VM say so (what, since when, why), with a warning event and
a notification to its owner and the admins. The configuration itself never changes, so a move to a host that fits
the whole of it (a migration, or the next start) restores the settings, told the same way.

Restoring is a migration to a host that fits the whole configuration (:func:`fitting_hosts`), asked for by an
admin (``services.restore_settings``) or by the beat task of ``restoring``.
"""

from __future__ import annotations

from django.utils import timezone

from hpadmin.inventory.models import Host
from hpadmin.vms.models import SuspendableSetting, VirtualMachine
from scheduler import services as scheduling
from scheduler.models import Allocation

from . import events, notifications
from .models import JobState, MigrationJob, Severity


def describe(settings: list[dict]) -> str:
    """ "NUMA pinning (the host does not support NUMA); Hugepages (...)" for recorded suspended settings."""
    labels = dict(SuspendableSetting.choices)
    return "; ".join(
        f"{labels[item['setting']]} ({item['reason']})" if item.get("reason") else labels[item["setting"]]
        for item in settings
    )


def record(vm: VirtualMachine, allocation: Allocation, *, user=None, job: MigrationJob | None = None) -> None:
    """The VM now runs where ``allocation`` is: record what that host leaves out of its configuration, in the
    caller's transaction. Landing degraded is told every time (a new host is news); so is getting everything
    back."""
    before = (vm.suspended_settings, vm.degraded_since)  # changes only here, with the allocation this caller moves
    suspended, host = allocation.suspended_settings, allocation.host
    if not suspended and not before[0]:
        return
    since = (before[1] or timezone.now()) if suspended else None
    VirtualMachine.objects.filter(pk=vm.pk).update(suspended_settings=suspended, degraded_since=since)
    vm.suspended_settings, vm.degraded_since = suspended, since
    if suspended:
        message = (
            f"VM {vm.name} runs on host {host.name} with settings suspended: {describe(suspended)}. "
            "They are restored when it moves to a host that fits its whole configuration."
        )
        events.record("vm_running_degraded", message, severity=Severity.WARNING, user=user, vm=vm, host=host, job=job)
        notifications.notify("vm_degraded", vm, f"VM {vm.name} is running degraded", message, suspended)
    else:
        restored = describe([{"setting": item["setting"], "reason": ""} for item in before[0]])
        message = f"VM {vm.name} runs with its whole configuration again on host {host.name}: {restored} restored."
        events.record("vm_settings_restored", message, user=user, vm=vm, host=host, job=job)
        notifications.notify("vm_restored", vm, f"VM {vm.name} has its settings back", message, before[0])


def origin(vm: VirtualMachine) -> Host | None:
    """The host the VM ran on with its whole configuration before a migration degraded it (None when a start
    did)."""
    job = (
        MigrationJob.objects.filter(vm=vm, state=JobState.SUCCEEDED, created_at__lte=vm.degraded_since)
        .select_related("source")
        .order_by("-created_at")
        .first()
    )
    return job.source if job is not None and job.suspended_settings else None


def fitting_hosts(vm: VirtualMachine) -> tuple[list[Host], str]:
    """The hosts that fit the VM's whole configuration now, best first, the one it came from first; or why none
    does."""
    decision, hosts = scheduling.decide(vm, action="migrate", force=True)
    if decision.chosen is None:
        return [], decision.error.message if decision.error else "no host fits"
    ranked = [hosts[pk] for pk in decision.ranked]
    came_from = origin(vm)
    return sorted(ranked, key=lambda h: h != came_from), ""
