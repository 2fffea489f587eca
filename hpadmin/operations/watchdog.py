"""The watchdog: what nobody will finish is settled from what the hypervisors report.

Beat runs it every 30 s and every worker at its start. It settles migration jobs whose worker died, jobs that
made no progress for ``HPADMIN_JOB_STALL_TIMEOUT`` seconds although their worker lives (their migration is
aborted first), jobs that no worker took up in that time, claims that belong to no running job, and VMs left
starting or stopping for ``HPADMIN_VM_ACTION_TIMEOUT`` seconds (a process died between the claim and the start).

Then it compares every host's domains with the database (:func:`compare_hosts`): a VM recorded as up that no
host runs is recorded as down; a guest that runs where the database does not say, or on two hosts, is
flagged on the VM (``drift``) with an error event, for an admin to decide. What a host that does not answer, or a
non-responsive one, runs is left as it is recorded: nobody can tell.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from hpadmin.hypervisor.base import HypervisorError
from hpadmin.hypervisor.registry import get_driver
from hpadmin.inventory.models import Host, HostStatus
from hpadmin.utilities.processes import is_alive
from hpadmin.vms.models import VirtualMachine, VmStatus
from scheduler.models import Allocation

from . import events
from .engine import domain_hosts, record_down, record_where_it_runs, settle, where_it_runs
from .models import RUNNING_JOB_STATES, JobState, MigrationJob, Severity

logger = logging.getLogger(__name__)


def run() -> list[int]:
    """One round: the ids of the jobs it settled."""
    settled = settle_jobs()
    drop_orphan_claims()
    settle_vms()
    compare_hosts()
    return settled


def _why_unfinished(job: MigrationJob, now) -> str | None:
    silent = now - (job.heartbeat_at or job.started_at or job.created_at)
    stalled = silent > timedelta(seconds=settings.HPADMIN_JOB_STALL_TIMEOUT)
    if not job.worker:
        return f"No worker took up the migration of VM {job.vm.name}." if stalled else None
    alive = is_alive(job.worker)
    if alive is False:
        return f"The worker running the migration of VM {job.vm.name} stopped."
    if stalled:
        return f"The migration of VM {job.vm.name} made no progress for {int(silent.total_seconds())} s."
    return None


def settle_jobs() -> list[int]:
    """Settle the running jobs that will not end on their own."""
    now = timezone.now()
    settled = []
    for job in MigrationJob.objects.running().select_related("vm", "source"):
        why = _why_unfinished(job, now)
        if why is None:
            continue
        if job.state == JobState.MIGRATING and job.worker and is_alive(job.worker) is not False:
            try:  # a live but stuck copier: stop the copy before recording where the VM is
                get_driver(job.source.uri).abort_migration(job.source.uri, job.vm.name)
            except HypervisorError as exc:
                logger.info("abort of %s: %s", job, exc.message)
        settle(job.pk, why)
        settled.append(job.pk)
    return settled


def drop_orphan_claims() -> int:
    """Claims of jobs that are no longer running are released; returns how many."""
    deleted, _ = (
        Allocation.objects.pending().filter(job__isnull=False).exclude(job__state__in=RUNNING_JOB_STATES).delete()
    )
    return deleted


def settle_vms() -> list[int]:
    """VMs left starting or stopping too long, or holding a start claim that long, recorded as the hypervisors
    run them; their ids."""
    cutoff = timezone.now() - timedelta(seconds=settings.HPADMIN_VM_ACTION_TIMEOUT)
    stuck = Q(status__in=[VmStatus.STARTING, VmStatus.STOPPING]) & (
        Q(status_changed_at__lt=cutoff) | Q(status_changed_at__isnull=True)
    )
    start_claims = Allocation.objects.pending().filter(job__isnull=True, created_at__lt=cutoff).values("vm")
    vms = list(VirtualMachine.objects.filter(stuck | Q(pk__in=start_claims)).select_related("host"))
    for vm in vms:
        settle_vm(vm, cutoff)
    return [vm.pk for vm in vms]


def settle_vm(vm: VirtualMachine, cutoff) -> None:
    claim = Allocation.objects.filter(vm=vm, job__isnull=True).pending().select_related("host").first()
    hosts = [h for h in (claim.host if claim else None, vm.host) if h is not None]
    where, answered = where_it_runs(vm.name, hosts)
    action = {VmStatus.STARTING: "start", VmStatus.STOPPING: "stop"}.get(vm.status, "start")
    with transaction.atomic():
        locked = VirtualMachine.objects.select_for_update().get(pk=vm.pk)
        if locked.status_changed_at and locked.status_changed_at >= cutoff:
            return  # it moved on meanwhile
        outcome = record_where_it_runs(locked, claim, where, answered)
        if outcome == "claimed":
            message = f"VM {vm.name} runs on {where.name} although its start did not complete; it is recorded as up."
        elif outcome == "elsewhere":
            message = f"VM {vm.name} still runs on {where.name}; its {action} did not complete."
        elif outcome == "down":
            message = f"No host runs VM {vm.name}; its {action} did not complete and it is recorded as down."
        else:
            return  # its hosts do not answer: nothing can be told yet
        events.record("vm_state_recovered", message, severity=Severity.WARNING, vm=locked, host=where)


def compare_hosts() -> dict[str, str]:
    """Every host's domains against the database; the disagreements found, by VM name."""
    running: dict[str, list[Host]] = defaultdict(list)
    silent: set[int] = set()
    hosts = list(Host.objects.order_by("name"))
    for host in hosts:
        if host.status == HostStatus.NON_RESPONSIVE:
            silent.add(host.pk)  # it may still run its VMs; until it is fenced (``ha``) they are left as they are
            continue
        try:
            names = get_driver(host.uri).list_domains(host.uri)
        except HypervisorError:
            silent.add(host.pk)  # what it runs cannot be told now
            continue
        for name in names:
            running[name].append(host)
    in_flight = MigrationJob.objects.active().values("vm")
    vms = VirtualMachine.objects.exclude(pk__in=in_flight).exclude(status__in=[VmStatus.STARTING, VmStatus.STOPPING])
    found = {}
    for vm in vms.filter(Q(name__in=list(running)) | ~Q(status=VmStatus.DOWN) | ~Q(drift="")).select_related("host"):
        where = running.get(vm.name, [])
        drift = _drift(vm, where, silent)
        if drift and drift != vm.drift:
            # The listing is a moment old and a VM may have started or stopped since: look again, closely.
            vm, where = _look_again(vm, where)
            drift = _drift(vm, where, silent) if vm.status in (VmStatus.UP, VmStatus.DOWN) else vm.drift
        if drift == "gone":
            record_down(
                vm,
                "vm_down_unexpectedly",
                f"VM {vm.name} is down: {vm.host.name} does not run it any more. Its resources there are released.",
                host=vm.host,
                expected=[vm.status],
            )
            continue
        if drift:
            found[vm.name] = drift
        if drift != vm.drift:
            VirtualMachine.objects.filter(pk=vm.pk).update(drift=drift)
            if drift:
                events.record("vm_drift", drift, severity=Severity.ERROR, vm=vm, host=where[0] if where else None)
    return found


def _look_again(vm: VirtualMachine, where: list[Host]) -> tuple[VirtualMachine, list[Host]]:
    """The VM's row and the hosts running it, read now, on the hosts involved."""
    vm = VirtualMachine.objects.select_related("host").get(pk=vm.pk)
    running, migrating, answered = domain_hosts(vm.name, [*where, vm.host] if vm.host else where)
    return vm, (running + migrating if answered else where)  # a host that does not answer now: keep the listing


def _drift(vm: VirtualMachine, where: list[Host], silent: set[int]) -> str:
    """What disagrees ("" for nothing), or "gone" for a VM recorded as up that no host runs."""
    names = ", ".join(h.name for h in where)
    if len(where) > 1:
        return f"VM {vm.name} runs on several hosts at once: {names}."
    if vm.status == VmStatus.DOWN:
        return f"VM {vm.name} runs on {names} although it is recorded as down." if where else ""
    if not where:
        return "gone" if vm.host_id not in silent else ""
    if where[0].pk != vm.host_id:
        return f"VM {vm.name} runs on {names}, not on {vm.host.name} where it is recorded."
    return ""
