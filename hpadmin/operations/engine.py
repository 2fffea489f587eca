"""The migration engine: one job from scheduling to its outcome, and the settling of jobs that cannot end
on their own.

Invariant: whatever happens, the VM holds exactly one active allocation where it runs, and at most one
pending claim (the destination of its running migration). Success turns the claim into the active
allocation and frees the source; failure drops the claim and leaves the VM where it was.

Every state change is a compare-and-set (``MigrationJob.move``, ``VirtualMachine.move``) taken with the VM's
row locked first, then the job's; a step that loses the race (the job was cancelled or settled meanwhile)
changes nothing. Any unexpected error ends the job through :func:`settle`, which records the VM where the
hypervisors run it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from hpadmin.hypervisor.base import DomainState, HypervisorError, MigrationProgress
from hpadmin.hypervisor.registry import get_driver
from hpadmin.inventory.models import Host
from hpadmin.utilities.processes import process_id
from hpadmin.vms.models import VirtualMachine, VmStatus
from scheduler import services as scheduling
from scheduler.models import Allocation
from scheduler.services import NoHostError

from . import degradation, events, signals
from .models import ACTIVE_JOB_STATES, JobState, MigrationJob, MigrationMode, Severity
from .policies import migration_options
from .specs import domain_spec

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # hosts tried for one job with automatic choice
PROGRESS_INTERVAL_S = 0.5  # at most this often a progress write to the job row


def _reason_suffix(job: MigrationJob) -> str:
    return f" Reason: {job.reason_text}" if job.reason_text else ""


def _lock(vm: VirtualMachine, job: MigrationJob) -> None:
    """Take the VM's row lock, then the job's: the one lock order of every VM action."""
    VirtualMachine.objects.select_for_update().filter(pk=vm.pk).first()
    MigrationJob.objects.select_for_update().filter(pk=job.pk).first()


def run_job(job_id: int) -> str:
    """Schedule, claim, migrate; retry elsewhere on failure when the scheduler chooses. Returns the end state.

    Whatever goes wrong, the job ends: an unexpected error settles it from what the hypervisors report. Then
    ``signals.job_ended`` tells what follows a job (an evacuation's next step)."""
    job = None
    try:
        job = MigrationJob.objects.select_related("vm__cluster", "source", "requested_by").filter(pk=job_id).first()
        return _run(job) if job is not None else "missing"  # deleted with its VM meanwhile
    except Exception as exc:
        logger.exception("migration job %s", job_id)
        return settle(job_id, f"The migration stopped on an unexpected error: {exc}")
    finally:
        if job is not None:
            signals.job_ended.send(sender=MigrationJob, job=job)


def _run(job: MigrationJob) -> str:
    if job.state == JobState.MIGRATING:
        # A redelivered task whose worker died: settle it from what the hypervisors say.
        return settle(job.pk, f"The worker running the migration of VM {job.vm.name} stopped.")
    now = timezone.now()
    # Taken by one worker only: a task delivered twice, or again after its worker died, finds it taken.
    taken = MigrationJob.objects.filter(pk=job.pk, state=JobState.SCHEDULING, worker="").update(
        worker=process_id(), started_at=now, heartbeat_at=now
    )
    if not taken:
        return MigrationJob.objects.get(pk=job.pk).state
    vm, user = job.vm, job.requested_by
    options = migration_options(vm)
    for warning in options.warnings:
        events.record("vm_migration_policy_fallback", warning, severity=Severity.WARNING, user=user, vm=vm, job=job)
    attempts = MAX_ATTEMPTS if job.mode == MigrationMode.AUTOMATIC else 1
    while job.attempt < attempts and job.state == JobState.SCHEDULING:
        job.attempt += 1
        if job.cancel_requested:
            if job.move(JobState.SCHEDULING, JobState.CANCELLED):
                events.record(
                    "vm_migration_cancelled", f"Migration of VM {vm.name} cancelled.", user=user, vm=vm, job=job
                )
            break
        # A planned destination (automatic mode) is tried first; after it failed the scheduler chooses again.
        target = job.requested_destination if job.mode == MigrationMode.MANUAL or job.attempt == 1 else None
        try:
            claim = scheduling.claim(
                vm,
                action="migrate",
                destination=target,
                force=True,  # the request was validated (mode and force) when the job was made
                exclude=job.tried_hosts,
                job=job,
                max_incoming=settings.HPADMIN_MAX_MIGRATIONS_PER_HOST,
                allow_degraded=job.allow_degraded,
                ignore_vm_affinity=job.ignore_vm_affinity,
                moving_together=job.moving_with,
            )
        except NoHostError as exc:
            if target is not None and job.mode == MigrationMode.AUTOMATIC:
                continue  # the planned host was taken meanwhile: the scheduler chooses
            message = (
                f"No available host was found to migrate VM {vm.name} to: {exc.message}"
                if target is None
                else f"Cannot migrate VM {vm.name} to {target.name}: {exc.message}"
            )
            if job.move(JobState.SCHEDULING, JobState.FAILED, error=message):
                events.record("vm_migration_no_host", message, severity=Severity.ERROR, user=user, vm=vm, job=job)
            break
        _migrate(job, vm, claim, options)
    if job.state == JobState.SCHEDULING:
        job.move(JobState.SCHEDULING, JobState.FAILED, error=job.error or "No attempt succeeded.")
    return job.state


def _migrate(job: MigrationJob, vm: VirtualMachine, claim: Allocation, options) -> None:
    """One attempt towards ``claim.host``. The job ends, or goes back to scheduling for the next host."""
    source, destination, user = job.source, claim.host, job.requested_by
    with transaction.atomic():  # the VM's update comes first: it takes the VM's row lock
        if not vm.move(VmStatus.UP, VmStatus.MIGRATING):
            claim.delete()
            current = VirtualMachine.objects.get(pk=vm.pk).get_status_display().lower()
            message = f"Cannot migrate VM {vm.name}: it is {current}."
            if job.move(JobState.SCHEDULING, JobState.FAILED, error=message):
                events.record("vm_migration_failed", message, severity=Severity.ERROR, user=user, vm=vm, job=job)
            return
        started = job.move(
            JobState.SCHEDULING,
            JobState.MIGRATING,
            destination=destination,
            phase="setup",
            progress=0.0,
            attempt=job.attempt,
            heartbeat_at=timezone.now(),
            suspended_settings=claim.suspended_settings,
        )
        if not started:  # settled meanwhile: give everything back
            claim.delete()
            vm.move(VmStatus.MIGRATING, VmStatus.UP)
            job.refresh_from_db(fields=["state"])
            return
        who = f"User: {user.get_username()}" if user else f"Initiated by system: {job.get_reason_display()}"
        suspending = claim.suspended_settings
        events.record(
            "vm_migration_start",
            f"Migration started (VM: {vm.name}, Source: {source.name}, Destination: {destination.name}, {who})."
            + (f" Suspended on the destination: {degradation.describe(suspending)}." if suspending else "")
            + _reason_suffix(job),
            user=user,
            vm=vm,
            host=destination,
            job=job,
        )
    driver = get_driver(source.uri)
    last_write, aborting = [time.monotonic()], [False]  # the start wrote the first heartbeat

    def progress(p: MigrationProgress) -> None:
        now = time.monotonic()
        if now - last_write[0] < PROGRESS_INTERVAL_S:
            return  # progress is written at most twice a second, however often the hypervisor reports
        last_write[0] = now
        written = MigrationJob.objects.filter(pk=job.pk, state=JobState.MIGRATING, cancel_requested=False).update(
            phase=p.phase,
            progress=round(p.percent, 1),
            data_total_mib=p.data_total_mib,
            data_remaining_mib=p.data_remaining_mib,
            dirty_rate_mibps=p.dirty_rate_mibps,
            heartbeat_at=timezone.now(),
        )
        # Cancelled, or settled by the watchdog, before the hypervisor had the copy under way: abort it now.
        if not written and not aborting[0]:
            aborting[0] = True
            try:
                driver.abort_migration(source.uri, vm.name)
            except HypervisorError as exc:
                logger.info("abort of %s: %s", job, exc.message)

    try:
        result = driver.migrate(source.uri, destination.uri, domain_spec(vm, claim), options.driver, progress)
    except HypervisorError as exc:
        _after_failure(job, vm, claim, exc)
        return
    with transaction.atomic():
        vm.move(VmStatus.MIGRATING, VmStatus.UP, host=destination)  # first: the VM's row lock
        done = job.move(
            JobState.MIGRATING,
            JobState.SUCCEEDED,
            phase="done",
            progress=100.0,
            downtime_ms=result.downtime_ms,
            transferred_mib=result.transferred_mib,
            data_remaining_mib=0.0,
        )
        if not done:
            raise RuntimeError(f"the job of VM {vm.name} was settled while its migration completed")
        scheduling.activate(claim)
        degradation.record(vm, claim, user=user, job=job)
        events.record(
            "vm_migration_done",
            f"Migration completed (VM: {vm.name}, Source: {source.name}, Destination: {destination.name}, "
            f"Duration: {result.duration_s:.1f} s, Actual downtime: {result.downtime_ms or 0:.0f} ms).",
            user=user,
            vm=vm,
            host=destination,
            job=job,
        )


def _after_failure(job: MigrationJob, vm: VirtualMachine, claim: Allocation, exc: HypervisorError) -> None:
    source, destination, user = job.source, claim.host, job.requested_by
    with transaction.atomic():
        vm.move(VmStatus.MIGRATING, VmStatus.UP)  # first: the VM's row lock
        claim.delete()
        job.refresh_from_db(fields=["cancel_requested"])
        left = {
            "tried_hosts": [*job.tried_hosts, destination.pk],
            "destination": None,
            "phase": "",
            "error": exc.message,
            "suspended_settings": [],
        }
        if exc.kind == "aborted" or job.cancel_requested:
            if job.move(JobState.MIGRATING, JobState.CANCELLED, **left):
                events.record(
                    "vm_migration_cancelled",
                    f"Migration of VM {vm.name} to {destination.name} cancelled; it runs on {source.name}.",
                    user=user,
                    vm=vm,
                    job=job,
                )
            return
        if job.mode == MigrationMode.AUTOMATIC and job.attempt < MAX_ATTEMPTS:
            if job.move(JobState.MIGRATING, JobState.SCHEDULING, **left):
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
            return
        if job.move(JobState.MIGRATING, JobState.FAILED, **left):
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


# -- settling -------------------------------------------------------------------------------------------------


def domain_hosts(name: str, hosts: list[Host]) -> tuple[list[Host], list[Host], bool]:
    """Of ``hosts``, those whose hypervisor runs the domain, those where it is being migrated, and whether
    every host answered."""
    running, migrating, answered = [], [], True
    for host in dict.fromkeys(hosts):
        try:
            state = get_driver(host.uri).domain_state(host.uri, name)
        except HypervisorError:
            answered = False
            continue
        if state in (DomainState.RUNNING, DomainState.PAUSED):
            running.append(host)
        elif state == DomainState.MIGRATING:
            migrating.append(host)
    return running, migrating, answered


def where_it_runs(name: str, hosts: list[Host], source: Host | None = None) -> tuple[Host | None, bool]:
    """The host among ``hosts`` whose hypervisor runs the domain, and whether every host answered. A domain
    still being copied away counts as running on ``source``."""
    running, migrating, answered = domain_hosts(name, hosts)
    if running:
        return running[0], True
    return (source if source in migrating else None), answered


def record_where_it_runs(vm: VirtualMachine, claim: Allocation | None, where: Host | None, answered: bool) -> str:
    """Make the VM's status and allocations say where the hypervisors run it, inside the caller's transaction
    with the VM locked: "claimed" (it runs where ``claim`` was made, which becomes its allocation),
    "elsewhere" (it runs on ``where``; the claim is dropped), "down" (no host runs it; everything is
    released) or "unknown" (its hosts did not answer; nothing is changed)."""
    if where is None and not answered:
        return "unknown"
    if where is not None and claim is not None and where.pk == claim.host_id:
        scheduling.activate(claim)
        degradation.record(vm, claim)
        started = vm.status == VmStatus.STARTING  # a start that completed without its request
        vm.move(vm.status, VmStatus.UP, **(VirtualMachine.started_on(where) if started else {"host": where}))
        return "claimed"
    if claim is not None:
        claim.delete()
    if where is not None:
        vm.move(vm.status, VmStatus.UP)
        return "elsewhere"
    scheduling.release(vm)
    vm.move(vm.status, VmStatus.DOWN, host=None)
    return "down"


def record_down(vm: VirtualMachine, code: str, message: str, *, host: Host, expected: Iterable[str]) -> bool:
    """A VM recorded on ``host`` that no hypervisor runs any more is down and gives back what it held, with an
    error event; unless, under its row lock, it turns out to have moved on (another host, a job, a status other
    than ``expected``)."""
    with transaction.atomic():
        locked = VirtualMachine.objects.select_for_update().get(pk=vm.pk)
        if (
            locked.host_id != host.pk
            or MigrationJob.objects.filter(vm=locked).active().exists()
            or not locked.move(expected, VmStatus.DOWN, host=None, drift="")
        ):
            return False
        scheduling.release(locked)
        events.record(code, message, severity=Severity.ERROR, vm=locked, host=host)
        return True


def settle(job_id: int, why: str) -> str:
    """End a job that cannot end on its own (its worker died or stalled, an unexpected error) from where the
    hypervisors run the VM: on the claimed destination the migration is recorded as done; elsewhere the
    claim is dropped and the job fails with ``why``. Returns the job's end state."""
    job = MigrationJob.objects.select_related("vm", "source", "destination").filter(pk=job_id).first()
    if job is None:
        return "missing"
    if not job.is_active:
        return job.state
    vm = job.vm
    claim = Allocation.objects.filter(vm=vm).pending().select_related("host").first()
    candidates = [h for h in (job.source, claim.host if claim else None, job.destination) if h is not None]
    where, answered = where_it_runs(vm.name, candidates, source=job.source)  # before any lock: it may be slow
    with transaction.atomic():
        _lock(vm, job)
        job.refresh_from_db(fields=["state"])
        if job.state not in ACTIVE_JOB_STATES:
            return job.state  # it ended meanwhile
        vm.refresh_from_db(fields=["status", "host"])
        outcome = record_where_it_runs(vm, claim, where, answered)
        if outcome == "claimed":
            job.move(job.state, JobState.SUCCEEDED, phase="done", progress=100.0, error=why)
            message = f"{why} VM {vm.name} runs on {where.name}, so its migration is recorded as completed."
            events.record("vm_migration_recovered", message, severity=Severity.WARNING, vm=vm, host=where, job=job)
            return job.state
        if outcome == "elsewhere":
            message = f"{why} VM {vm.name} still runs on {where.name}."
        elif outcome == "down":
            message = f"{why} No host runs VM {vm.name} any more; it is recorded as down."
        else:
            if claim is not None:
                claim.delete()
            vm.move(VmStatus.MIGRATING, VmStatus.UP)
            message = f"{why} Its hosts did not answer; VM {vm.name} is kept on {job.source.name}."
        job.move(job.state, JobState.FAILED, destination=None, phase="", error=message)
        events.record("vm_migration_failed", message, severity=Severity.ERROR, vm=vm, host=where, job=job)
    return job.state
