"""The migration engine: one job from scheduling to its outcome, and recovery of jobs whose worker died.

Invariant: whatever happens, the VM holds exactly one active allocation where it runs, and at most one
pending claim (the destination of its running migration). Success turns the claim into the active
allocation and frees the source; failure drops the claim and leaves the VM where it was.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from hpadmin.hypervisor.base import DomainState, HypervisorError, MigrationProgress
from hpadmin.hypervisor.registry import get_driver
from hpadmin.inventory.models import Host
from hpadmin.utilities.processes import is_alive, process_id
from hpadmin.vms.models import VirtualMachine, VmStatus
from scheduler import services as scheduling
from scheduler.models import Allocation
from scheduler.services import NoHostError

from . import events
from .dispatch import saturated_destinations
from .models import JobState, MigrationJob, MigrationMode, Severity
from .policies import migration_options
from .specs import domain_spec

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # hosts tried for one job with automatic choice
PROGRESS_INTERVAL_S = 0.5  # at most this often a progress write to the job row
HEARTBEAT_TIMEOUT = timedelta(seconds=120)  # a running job silent this long has lost its worker


def _finish(job: MigrationJob, state: str, error: str = "") -> None:
    job.state = state
    job.error = error
    job.finished_at = timezone.now()
    job.save(update_fields=["state", "error", "finished_at"])


def _reason_suffix(job: MigrationJob) -> str:
    return f" Reason: {job.reason_text}" if job.reason_text else ""


def run_job(job_id: int) -> str:
    """Schedule, claim, migrate; retry elsewhere on failure when the scheduler chooses. Returns the end state."""
    job = MigrationJob.objects.select_related("vm__cluster", "source", "requested_by").filter(pk=job_id).first()
    if job is None:
        return "missing"  # deleted with its VM meanwhile
    if job.state == JobState.MIGRATING:
        # A redelivered task whose worker died: settle it from what the hypervisors say.
        reconcile(job)
        return job.state
    if job.state != JobState.SCHEDULING:
        return job.state
    job.worker = process_id()
    job.started_at = job.started_at or timezone.now()
    job.heartbeat_at = timezone.now()
    job.save(update_fields=["worker", "started_at", "heartbeat_at"])
    vm, user = job.vm, job.requested_by
    options = migration_options(vm)
    for warning in options.warnings:
        events.record("vm_migration_policy_fallback", warning, severity=Severity.WARNING, user=user, vm=vm, job=job)
    attempts = MAX_ATTEMPTS if job.mode == MigrationMode.AUTOMATIC else 1
    while job.attempt < attempts:
        job.attempt += 1
        if job.cancel_requested:
            _finish(job, JobState.CANCELLED)
            events.record("vm_migration_cancelled", f"Migration of VM {vm.name} cancelled.", user=user, vm=vm, job=job)
            break
        try:
            claim = scheduling.claim(
                vm,
                action="migrate",
                destination=job.requested_destination,
                force=True,  # the request was validated (mode and force) when the job was made
                exclude={*job.tried_hosts, *saturated_destinations()},
                job=job,
            )
        except NoHostError as exc:
            message = (
                f"No available host was found to migrate VM {vm.name} to: {exc.message}"
                if job.requested_destination is None
                else f"Cannot migrate VM {vm.name} to {job.requested_destination.name}: {exc.message}"
            )
            _finish(job, JobState.FAILED, message)
            events.record("vm_migration_no_host", message, severity=Severity.ERROR, user=user, vm=vm, job=job)
            break
        outcome = _migrate(job, vm, claim, options)
        if outcome is None:
            continue  # failed on this host; try the next
        break
    else:
        if job.is_active:
            _finish(job, JobState.FAILED, job.error or "No attempt succeeded.")
    return job.state


def _migrate(job: MigrationJob, vm: VirtualMachine, claim: Allocation, options) -> str | None:
    """One attempt towards ``claim.host``. Returns the end state, or None when the next host may be tried."""
    source, destination, user = job.source, claim.host, job.requested_by
    job.destination = destination
    job.state = JobState.MIGRATING
    job.phase = "setup"
    job.progress = 0.0
    job.save(update_fields=["destination", "state", "phase", "progress", "attempt"])
    VirtualMachine.objects.filter(pk=vm.pk).update(status=VmStatus.MIGRATING)
    who = f"User: {user.get_username()}" if user else f"Initiated by system: {job.get_reason_display()}"
    events.record(
        "vm_migration_start",
        f"Migration started (VM: {vm.name}, Source: {source.name}, Destination: {destination.name}, {who})."
        + _reason_suffix(job),
        user=user,
        vm=vm,
        host=destination,
        job=job,
    )
    driver = get_driver(source.uri)
    last_write, aborting = [0.0], [False]

    def progress(p: MigrationProgress) -> None:
        now = time.monotonic()
        if now - last_write[0] < PROGRESS_INTERVAL_S and p.phase != "completing":
            return
        last_write[0] = now
        MigrationJob.objects.filter(pk=job.pk).update(
            phase=p.phase,
            progress=round(p.percent, 1),
            data_total_mib=p.data_total_mib,
            data_remaining_mib=p.data_remaining_mib,
            dirty_rate_mibps=p.dirty_rate_mibps,
            heartbeat_at=timezone.now(),
        )
        # A cancel that came before the hypervisor had the migration under way could not abort it; do it now.
        if not aborting[0] and MigrationJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
            aborting[0] = True
            try:
                driver.abort_migration(source.uri, vm.name)
            except HypervisorError as exc:
                logger.info("abort of %s: %s", job, exc.message)

    try:
        result = driver.migrate(source.uri, destination.uri, domain_spec(vm, claim), options.driver, progress)
    except HypervisorError as exc:
        return _after_failure(job, vm, claim, exc)
    with transaction.atomic():
        scheduling.activate(claim)
        VirtualMachine.objects.filter(pk=vm.pk).update(host=destination, status=VmStatus.UP)
        job.refresh_from_db(fields=["cancel_requested"])
        job.phase, job.progress = "done", 100.0
        job.downtime_ms, job.transferred_mib, job.data_remaining_mib = result.downtime_ms, result.transferred_mib, 0.0
        job.save(update_fields=["phase", "progress", "downtime_ms", "transferred_mib", "data_remaining_mib"])
        _finish(job, JobState.SUCCEEDED)
        events.record(
            "vm_migration_done",
            f"Migration completed (VM: {vm.name}, Source: {source.name}, Destination: {destination.name}, "
            f"Duration: {result.duration_s:.1f} s, Actual downtime: {result.downtime_ms or 0:.0f} ms).",
            user=user,
            vm=vm,
            host=destination,
            job=job,
        )
    return job.state


def _after_failure(job: MigrationJob, vm: VirtualMachine, claim: Allocation, exc: HypervisorError) -> str | None:
    source, destination, user = job.source, claim.host, job.requested_by
    with transaction.atomic():
        claim.delete()
        VirtualMachine.objects.filter(pk=vm.pk).update(status=VmStatus.UP)
        job.refresh_from_db(fields=["cancel_requested"])
        job.tried_hosts = [*job.tried_hosts, destination.pk]
        job.destination = None
        job.phase = ""
        job.error = exc.message
        job.save(update_fields=["tried_hosts", "destination", "phase", "error"])
        if exc.kind == "aborted" or job.cancel_requested:
            _finish(job, JobState.CANCELLED, exc.message)
            events.record(
                "vm_migration_cancelled",
                f"Migration of VM {vm.name} to {destination.name} cancelled; it runs on {source.name}.",
                user=user,
                vm=vm,
                job=job,
            )
            return job.state
        retry = job.mode == MigrationMode.AUTOMATIC and job.attempt < MAX_ATTEMPTS
        if retry:
            job.state = JobState.SCHEDULING
            job.save(update_fields=["state"])
            events.record(
                "vm_migration_trying_rerun",
                f"Failed to migrate VM {vm.name} to Host {destination.name} due to: {exc.message} "
                "Trying to migrate to another Host.",
                severity=Severity.WARNING,
                user=user,
                vm=vm,
                host=destination,
                job=job,
            )
            return None
        _finish(job, JobState.FAILED, exc.message)
        events.record(
            "vm_migration_failed",
            f"Migration failed due to: {exc.message} (VM: {vm.name}, Source: {source.name}, "
            f"Destination: {destination.name}). The VM keeps running on {source.name}.",
            severity=Severity.ERROR,
            user=user,
            vm=vm,
            host=destination,
            job=job,
        )
    return job.state


# -- recovery -------------------------------------------------------------------------------------------------


def _worker_gone(job: MigrationJob) -> bool:
    """A worker on this machine is gone when its process is; elsewhere when its heartbeat stopped."""
    alive = is_alive(job.worker)
    if alive is not None:
        return not alive
    return job.heartbeat_at is None or timezone.now() - job.heartbeat_at > HEARTBEAT_TIMEOUT


def reconcile_orphans() -> list[int]:
    """Settle running jobs whose worker is gone (dead PID on this machine, or silent too long)."""
    settled = []
    for job in MigrationJob.objects.running().exclude(worker=""):
        if _worker_gone(job):
            reconcile(job)
            settled.append(job.pk)
    return settled


def reconcile(job: MigrationJob) -> None:
    """Decide a job's outcome from where the hypervisors say the VM runs; drop or move allocations to match."""
    job = MigrationJob.objects.select_related("vm", "source", "destination").get(pk=job.pk)
    vm = job.vm
    claim = Allocation.objects.filter(vm=vm).pending().select_related("host").first()
    destination: Host | None = job.destination or (claim.host if claim else None)
    on_destination = False
    if destination is not None:
        try:
            on_destination = get_driver(destination.uri).domain_state(destination.uri, vm.name) in (
                DomainState.RUNNING,
                DomainState.PAUSED,
            )
        except HypervisorError:
            on_destination = False
    with transaction.atomic():
        if on_destination and claim is not None:
            scheduling.activate(claim)
            VirtualMachine.objects.filter(pk=vm.pk).update(host=destination, status=VmStatus.UP)
            _finish(job, JobState.SUCCEEDED)
            message = (
                f"Migration of VM {vm.name} to {destination.name} was interrupted with its worker; "
                f"the VM runs on {destination.name}, so it is recorded as completed."
            )
            events.record("vm_migration_recovered", message, severity=Severity.WARNING, vm=vm, job=job)
            return
        if claim is not None:
            claim.delete()
        VirtualMachine.objects.filter(pk=vm.pk).update(status=VmStatus.UP)
        message = f"The worker running the migration of VM {vm.name} stopped; the VM still runs on {job.source.name}."
        _finish(job, JobState.FAILED, message)
        events.record("vm_migration_failed", message, severity=Severity.ERROR, vm=vm, job=job)
