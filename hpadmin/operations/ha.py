"""High availability: hosts that stop answering are fenced, and their highly available VMs restart elsewhere.

Beat runs :func:`heartbeat` every ``HPADMIN_HEARTBEAT_INTERVAL`` seconds: every host not in maintenance is asked
whether it answers (the driver's ``ping``). One that answers is seen now (``last_seen_at``), and a non-responsive
or down one comes back up. One silent for ``HPADMIN_HOST_TIMEOUT`` seconds becomes non-responsive and is fenced
(:func:`fence_host`): powered off by its power management, its fence command.

Only a host known to be off may have its VMs restarted elsewhere, never one that might still run them: a host
without a fence command, or whose fencing failed, stays non-responsive with its VMs as they were until an admin
confirms that it has been rebooted (:func:`confirm_rebooted`), which then counts as fenced. A fenced host is
down: its migrations are settled, every VM it ran is recorded down and its allocations released, and its highly
available VMs start again on other hosts, highest priority first, each where the scheduler places it
(:func:`restart_vms`). A VM that may run on the failed host only ("Do not allow migration" with that one
placement host) stays down; one pinned to several hosts starts on another of them.

A host that answers but lacks a CPU flag of its cluster's CPU level is non-operational, and the VMs that
automation may move leave it (a system-initiated evacuation, ``maintenance.start_maintenance``); it stays so until
an admin activates it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from hpadmin.hypervisor.base import HypervisorError, PowerState
from hpadmin.hypervisor.registry import get_driver
from hpadmin.inventory.models import Host, HostStatus
from hpadmin.vms.models import MigrationMode, VirtualMachine, VmStatus
from scheduler.snapshot import placement_hosts

from . import events
from .engine import record_down, settle
from .errors import OperationError
from .maintenance import start_maintenance
from .models import JobState, MigrationJob, Severity
from .services import start_vm

logger = logging.getLogger(__name__)

# A silent host in one of these becomes non-responsive; one in maintenance is left to the admin working on it.
WATCHED = (HostStatus.UP, HostStatus.PREPARING_FOR_MAINTENANCE, HostStatus.NON_OPERATIONAL)
CONFIRM_REBOOTED = '"Confirm Host Has Been Rebooted"'


# -- heartbeat ------------------------------------------------------------------------------------------------


@shared_task
def heartbeat() -> None:
    """Beat's part: see :func:`check_hosts`."""
    check_hosts()


def check_hosts() -> None:
    """Ask every host not in maintenance whether it answers, and act on the answers (see the module's docs)."""
    now = timezone.now()
    answered, silent = [], []
    for host in Host.objects.exclude(status=HostStatus.MAINTENANCE).select_related("cluster"):
        try:
            get_driver(host.uri).ping(host.uri)
        except HypervisorError as exc:
            silent.append((host, exc))
        else:
            answered.append(host)
    Host.objects.filter(pk__in=[h.pk for h in answered]).update(last_seen_at=now)
    for host, exc in silent:
        _silent(host, exc, now)
    for host in answered:
        if host.status in (HostStatus.NON_RESPONSIVE, HostStatus.DOWN):
            _back(host)
        if host.status == HostStatus.UP:
            _check_requirements(host)


def _silent(host: Host, exc: HypervisorError, now: datetime) -> None:
    """A host that did not answer: non-responsive once it has been silent too long, and then fenced."""
    seen = host.last_seen_at or host.refreshed_at
    if host.status not in WATCHED or (
        seen is not None and now - seen < timedelta(seconds=settings.HPADMIN_HOST_TIMEOUT)
    ):
        return
    since = f"for {(now - seen).total_seconds():.0f} s" if seen is not None else "since it was added"
    reason = f"It has not answered {since}: {exc.message}"
    if host.move(host.status, HostStatus.NON_RESPONSIVE, status_reason=reason):
        events.record(
            "host_non_responsive", f"Host {host.name} is non responsive. {reason}", severity=Severity.ERROR, host=host
        )
        fence.delay_on_commit(host.pk)


def _back(host: Host) -> None:
    was = host.get_status_display().lower()
    if host.move(host.status, HostStatus.UP, status_reason=""):
        events.record("host_up", f"Host {host.name} answers again (it was {was}); its status was set to Up.", host=host)


def _check_requirements(host: Host) -> None:
    """An up host must offer every CPU flag of its cluster's CPU level (as its last capabilities refresh read
    them); one that does not is non-operational, and automation moves off it what it may."""
    missing = sorted(set(host.cluster.cpu_level_flags) - set(host.cpu_flags))
    if not missing:
        return
    reason = f"The host does not meet the cluster's minimum CPU level. Missing CPU features: {', '.join(missing)}"
    if not host.move(HostStatus.UP, HostStatus.NON_OPERATIONAL, status_reason=reason):
        return
    events.record(
        "host_non_operational",
        f"Host {host.name} moved to Non-Operational state as host does not meet the cluster's minimum CPU level. "
        f"Missing CPU features : {', '.join(missing)}",
        severity=Severity.ERROR,
        host=host,
    )
    try:
        start_maintenance(host, user=None, reason=reason)
    except OperationError as exc:
        events.record("host_evacuation_failed", exc.message, severity=Severity.ERROR, host=host)


# -- fencing --------------------------------------------------------------------------------------------------


@shared_task
def fence(host_id: int) -> None:
    """Fence a host that became non-responsive: see :func:`fence_host`."""
    fence_host(host_id)


def fence_host(host_id: int) -> bool:
    """Power a non-responsive host off through its fence command; once it is known to be off it is down and its
    highly available VMs restart elsewhere. Without a fence command, or when fencing fails, nothing changes but an
    error event that asks an admin to confirm the host has been rebooted. Whether the host was fenced."""
    host = Host.objects.filter(pk=host_id, status=HostStatus.NON_RESPONSIVE).first()
    if host is None:
        return False  # it answered again meanwhile
    if not host.fence_command:
        events.record(
            "host_fence_not_configured",
            f"Host {host.name} became non responsive. It has no power management configured. Please check the host "
            f"status, manually reboot it, and click {CONFIRM_REBOOTED}. Its VMs are not restarted elsewhere until "
            "then.",
            severity=Severity.ERROR,
            host=host,
        )
        return False
    driver = get_driver(host.uri)
    try:
        driver.power_off(host.uri, host.fence_command)
        if driver.power_status(host.uri) == PowerState.ON:
            raise HypervisorError("The host still answers after its fence command: is the command this host's?")
    except HypervisorError as exc:
        events.record(
            "host_fence_failed",
            f"Power Management stop of host {host.name} failed: {exc.message} Its VMs are not restarted elsewhere "
            f"while it might still run them: check the host, power it off or reboot it, and click {CONFIRM_REBOOTED}.",
            severity=Severity.ERROR,
            host=host,
        )
        return False
    # It is off now, whatever its row says meanwhile (a last answer may have brought it back up).
    others = [s for s in HostStatus.values if s not in (HostStatus.DOWN, HostStatus.MAINTENANCE)]
    return host_down(host, others, "It was fenced: its power management powered it off.")


def confirm_rebooted(host: Host, *, user=None) -> Host:
    """An admin's word that a non-responsive host has been rebooted or powered off and runs nothing (oVirt's
    "Confirm 'Host has been Rebooted'"): it counts as fenced. Raises OperationError (409) for any other host."""
    host = Host.objects.get(pk=host.pk)
    refusal = OperationError(
        f"Cannot confirm that host {host.name} has been rebooted: it is {host.get_status_display().lower()}, "
        "and only a non responsive host can be confirmed.",
        status=409,
    )
    if host.status != HostStatus.NON_RESPONSIVE:
        raise refusal
    who = user.get_username() if user is not None else "the system"
    reason = f"Manually fenced: {who} confirmed that it has been rebooted."
    if not host_down(host, [HostStatus.NON_RESPONSIVE], reason, user=user):
        raise refusal
    return host


def host_down(host: Host, expected: list[str], reason: str, *, user=None) -> bool:
    """Record a host known to be off as down (False when its status is no longer one of ``expected``): its
    migrations are settled, every VM it ran is down and holds nothing, and its highly available VMs restart
    elsewhere once this commits."""
    if not host.move(expected, HostStatus.DOWN, status_reason=reason):
        return False
    events.record("host_down", f"Host {host.name} is down. {reason}", severity=Severity.WARNING, user=user, host=host)
    ran = list(
        VirtualMachine.objects.filter(host=host, status__in=(VmStatus.UP, VmStatus.MIGRATING)).values_list(
            "pk", flat=True
        )
    )
    _settle_jobs(host)
    _record_vms_down(host)
    if ran:
        restart_highly_available.delay_on_commit(host.pk, ran)
    return True


def _settle_jobs(host: Host) -> None:
    """End the migrations from or to the host: those still waiting fail; the others are settled from where the
    hypervisors run the VM (a copy running from another host is aborted there first)."""
    why = f"Host {host.name} is down."
    jobs = MigrationJob.objects.active().filter(Q(source=host) | Q(destination=host)).select_related("vm", "source")
    for job in jobs:
        if job.state == JobState.PENDING:
            if job.move(JobState.PENDING, JobState.FAILED, error=why):
                message = f"Migration of VM {job.vm.name} did not start: {why}"
                events.record("vm_migration_failed", message, severity=Severity.ERROR, vm=job.vm, job=job)
            continue
        if job.state == JobState.MIGRATING and job.source_id != host.pk:
            try:
                get_driver(job.source.uri).abort_migration(job.source.uri, job.vm.name)
            except HypervisorError as exc:
                logger.info("abort of %s: %s", job, exc.message)
        settle(job.pk, why)


RAN = (VmStatus.UP, VmStatus.MIGRATING, VmStatus.STOPPING)  # a failed host's VMs in these are down now


def _record_vms_down(host: Host) -> None:
    """Every VM still recorded on the host goes down and releases what it held."""
    for vm in VirtualMachine.objects.filter(host=host).exclude(status__in=(VmStatus.DOWN, VmStatus.STARTING)):
        message = f"VM {vm.name} is down: its host {host.name} is down. Its resources there are released."
        record_down(vm, "vm_down_host_down", message, host=host, expected=RAN)


# -- restarting highly available VMs ------------------------------------------------------------------------------


@shared_task
def restart_highly_available(host_id: int, vm_ids: list[int]) -> None:
    """Restart the highly available VMs a failed host ran: see :func:`restart_vms`."""
    host = Host.objects.filter(pk=host_id).first()
    if host is not None:
        restart_vms(host, vm_ids)


def restart_vms(host: Host, vm_ids: list[int]) -> None:
    """Start the highly available ones of ``vm_ids`` (down since their ``host`` failed) on other hosts, highest
    ``ha_priority`` first, each where the scheduler places it (a VM pinned to several hosts on another of them);
    one that fits nowhere, or may run on the failed host only, stays down with an event that says why."""
    vms = list(
        VirtualMachine.objects.filter(pk__in=vm_ids, high_availability=True, status=VmStatus.DOWN)
        .select_related("cluster")
        .order_by("-ha_priority", "name")
    )
    pinned = placement_hosts(vms)
    for vm in vms:
        if vm.migration_mode == MigrationMode.PINNED and set(pinned[vm.pk]) == {host.pk}:
            events.record(
                "ha_vm_restart_failed",
                f"Highly available VM {vm.name} stays down: it is pinned to host {host.name} only, which is down. "
                "Pin it to several hosts to have it restarted on another one.",
                severity=Severity.ERROR,
                vm=vm,
                host=host,
            )
            continue
        try:
            vm = start_vm(vm)
        except OperationError as exc:
            events.record(
                "ha_vm_restart_failed",
                f"Restart of the highly available VM {vm.name} failed: {exc.message}",
                severity=Severity.ERROR,
                vm=vm,
            )
            continue
        events.record(
            "ha_vm_restarted", f"Highly available VM {vm.name} restarted on host {vm.host.name}.", vm=vm, host=vm.host
        )
