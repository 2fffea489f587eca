"""The watchdog: what nobody will finish is settled from what the hypervisors report.

Beat runs it every 30 s and every worker at its start. It settles migration jobs whose worker died, jobs that
made no progress for ``HPADMIN_JOB_STALL_TIMEOUT`` seconds although their worker lives (their migration is
aborted first), jobs that no worker took up in that time, claims that belong to no running job, and VMs left
starting or stopping for ``HPADMIN_VM_ACTION_TIMEOUT`` seconds (a process died between the claim and the start).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from hpadmin.hypervisor.base import HypervisorError
from hpadmin.hypervisor.registry import get_driver
from hpadmin.utilities.processes import is_alive
from hpadmin.vms.models import VirtualMachine, VmStatus
from scheduler import services as scheduling
from scheduler.models import Allocation

from . import events
from .engine import settle, where_it_runs
from .models import RUNNING_JOB_STATES, JobState, MigrationJob, Severity

logger = logging.getLogger(__name__)


def run() -> list[int]:
    """One round: the ids of the jobs it settled."""
    settled = settle_jobs()
    drop_orphan_claims()
    settle_vms()
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
        if where is not None and claim is not None and where.pk == claim.host_id:
            scheduling.activate(claim)
            locked.move(locked.status, VmStatus.UP, host=where)
            message = f"VM {vm.name} runs on {where.name} although its start did not complete; it is recorded as up."
        elif where is not None:
            if claim is not None:
                claim.delete()
            locked.move(locked.status, VmStatus.UP)
            message = f"VM {vm.name} still runs on {where.name}; its {action} did not complete."
        elif answered:
            scheduling.release(locked)
            locked.move(locked.status, VmStatus.DOWN, host=None)
            message = f"No host runs VM {vm.name}; its {action} did not complete and it is recorded as down."
        else:
            return  # its hosts do not answer: nothing can be told yet
        events.record("vm_state_recovered", message, severity=Severity.WARNING, vm=locked, host=where)
