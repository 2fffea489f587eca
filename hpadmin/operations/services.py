"""What admins and automation do to VMs: start, stop, migrate, cancel. One transaction per action.

Migrations run as Celery tasks (``hpadmin.operations.tasks``); the services validate, create the jobs and
hand them to the dispatcher, which starts them in order within the concurrency limits.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from hpadmin.hypervisor.base import HypervisorError
from hpadmin.hypervisor.registry import get_driver
from hpadmin.inventory.models import Host, HostStatus
from hpadmin.vms.models import VirtualMachine, VmStatus
from scheduler import services as scheduling
from scheduler.core import model as core
from scheduler.core.pipeline import check_migration_mode
from scheduler.services import HostVerdict, NoHostError
from scheduler.snapshot import vm_request

from . import events
from .models import JobState, MigrationJob, MigrationMode, Severity
from .specs import domain_spec
from .tasks import dispatch_pending

logger = logging.getLogger(__name__)

__all__ = [
    "HostVerdict",
    "OperationError",
    "cancel_migration",
    "migrate_vms",
    "migration_candidates",
    "start_vm",
    "stop_vm",
]


class OperationError(Exception):
    """A refused action. ``errors`` maps a field (or a VM name) to messages; ``status`` is 400 for bad input
    and 409 when the VM's or host's state does not allow it."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}
        self.status = status


def _user(user):
    return user if getattr(user, "is_authenticated", False) else None


# -- start and stop -------------------------------------------------------------------------------------------


def start_vm(vm: VirtualMachine, user=None, *, host: Host | None = None) -> VirtualMachine:
    """Place the VM with the scheduler (on ``host`` if given), claim its resources and start it there."""
    vm = VirtualMachine.objects.select_related("cluster").get(pk=vm.pk)
    if vm.status != VmStatus.DOWN:
        raise OperationError(f"Cannot run VM {vm.name}: it is {vm.get_status_display().lower()}.", status=409)
    try:
        allocation = scheduling.claim(vm, action="start", destination=host)
    except NoHostError as exc:
        raise OperationError(f"Cannot run VM {vm.name}: {exc.message}", _rejections(exc)) from None
    target = allocation.host
    try:
        get_driver(target.uri).start(target.uri, domain_spec(vm, allocation))
    except HypervisorError as exc:
        allocation.delete()
        events.record(
            "vm_start_failed",
            f"Failed to run VM {vm.name} on {target.name}: {exc.message}",
            severity=Severity.ERROR,
            user=user,
            vm=vm,
            host=target,
        )
        raise OperationError(f"Cannot run VM {vm.name} on {target.name}: {exc.message}", status=409) from None
    with transaction.atomic():
        scheduling.activate(allocation)
        VirtualMachine.objects.filter(pk=vm.pk).update(
            status=VmStatus.UP, host=target, cpu_flags_at_start=sorted(target.cpu_flags)
        )
        events.record("vm_started", f"VM {vm.name} started on Host {target.name}.", user=user, vm=vm, host=target)
    vm.refresh_from_db()
    return vm


def stop_vm(vm: VirtualMachine, user=None) -> VirtualMachine:
    """Power the VM off and release everything it held."""
    vm = VirtualMachine.objects.select_related("host").get(pk=vm.pk)
    if vm.status == VmStatus.DOWN:
        raise OperationError(f"Cannot stop VM {vm.name}: it is not running.", status=409)
    if MigrationJob.objects.filter(vm=vm).active().exists():
        raise OperationError(f"Cannot stop VM {vm.name}: a migration is in progress; cancel it first.", status=409)
    host = vm.host
    if host is not None:
        try:
            get_driver(host.uri).stop(host.uri, vm.name)
        except HypervisorError as exc:
            if exc.kind != "not_found":
                raise OperationError(f"Cannot stop VM {vm.name} on {host.name}: {exc.message}", status=409) from None
    with transaction.atomic():
        scheduling.release(vm)
        VirtualMachine.objects.filter(pk=vm.pk).update(status=VmStatus.DOWN, host=None)
        events.record("vm_stopped", f"VM {vm.name} powered off.", user=user, vm=vm, host=host)
    vm.refresh_from_db()
    return vm


# -- migration ------------------------------------------------------------------------------------------------


def _rejections(exc: NoHostError) -> dict[str, list[str]]:
    if exc.decision is None:
        return {}
    names = {h.pk: h.name for h in Host.objects.filter(pk__in=[v.host_id for v in exc.decision.verdicts])}
    return {
        names[v.host_id]: [f"{r.filter}: {r.reason}" for r in v.rejections]
        for v in exc.decision.verdicts
        if not v.eligible
    }


def migration_candidates(vm: VirtualMachine, destination: Host | None = None) -> list[HostVerdict]:
    """The scheduler's verdict on every host of the VM's cluster (or one ``destination``), as the Migrate
    dialog and the API show it: eligible with rank and score, or refused with every filter's reason."""
    hosts = [destination] if destination is not None else None
    decision, by_id = scheduling.decide(vm, action="migrate", destination=destination, force=True, hosts=hosts)
    return scheduling.verdicts(decision, by_id)


def _refusal(vm: VirtualMachine, destination: Host | None, force: bool, busy: set[int]) -> tuple[str, int] | None:
    """Why this VM may not be migrated as asked, with the HTTP-like status of the refusal (409: the state of
    things forbids it; 400: the request itself is wrong), or None. oVirt's VmValidator and MigrateVmToServer."""
    mode_error = check_migration_mode(vm_request(vm, placement_hosts=()), _core_request(destination, force))
    if vm.pk in busy:
        return f"Cannot migrate VM {vm.name}: a migration is already in progress.", 409
    if vm.status != VmStatus.UP or vm.host_id is None:
        return f"Cannot migrate VM {vm.name}: it is not running.", 409
    if mode_error is not None:
        return f"Cannot migrate VM {vm.name}: {mode_error.message}.", 409 if vm.migration_mode == "pinned" else 400
    if destination is None:
        return None
    where = f"Cannot migrate VM {vm.name} to {destination.name}"
    if destination.pk == vm.host_id:
        return f"{where}: source and destination are the same.", 400
    if destination.cluster_id != vm.cluster_id:
        return f"{where}: the host is in another cluster; VMs migrate within their cluster.", 400
    if destination.status != HostStatus.UP:
        return f"{where}: the host is {destination.get_status_display().lower()}, not up.", 409
    verdict = migration_candidates(vm, destination)[0]
    if not verdict.eligible:
        reasons = "; ".join(f"{f}: {r}" for f, r in verdict.rejections)
        return f"{where}: the host does not satisfy the scheduling constraints ({reasons}).", 400
    return None


def _core_request(destination: Host | None, force: bool) -> core.ScheduleRequest:
    return core.ScheduleRequest(action="migrate", destination=destination.pk if destination else None, force=force)


def migrate_vms(
    vms: list[VirtualMachine],
    destination: Host | None = None,
    *,
    force: bool = False,
    user=None,
    reason: str = "user",
    reason_text: str = "",
) -> list[MigrationJob]:
    """Ask for the live migration of ``vms`` to ``destination`` (None: the scheduler chooses per VM).

    Every VM is validated first and nothing happens unless all pass; an explicit destination must pass
    every scheduling filter now, and the refusal lists each filter's reason. Jobs start on commit.
    """
    if not vms:
        raise OperationError("Select at least one VM to migrate.", {"vms": ["Select at least one VM."]})
    vms = list(VirtualMachine.objects.select_related("cluster", "host").filter(pk__in=[vm.pk for vm in vms]))
    busy = set(MigrationJob.objects.filter(vm__in=vms).active().values_list("vm_id", flat=True))
    refusals = {vm.name: r for vm in vms if (r := _refusal(vm, destination, force, busy)) is not None}
    if refusals:
        raise OperationError(
            " ".join(message for message, _ in refusals.values()),
            {name: [message] for name, (message, _) in refusals.items()},
            status=max(status for _, status in refusals.values()),
        )
    with transaction.atomic():
        jobs = [
            MigrationJob.objects.create(
                vm=vm,
                source_id=vm.host_id,
                requested_destination=destination,
                requested_by=_user(user),
                reason=reason,
                reason_text=reason_text,
                mode=MigrationMode.MANUAL if destination else MigrationMode.AUTOMATIC,
                force=force,
            )
            for vm in vms
        ]
        transaction.on_commit(dispatch_pending)
    return jobs


def cancel_migration(job: MigrationJob, user=None) -> MigrationJob:
    """Cancel a waiting job at once; abort a running migration through the driver (the task records it)."""
    with transaction.atomic():
        job = MigrationJob.objects.select_for_update(of=("self",)).select_related("vm", "source").get(pk=job.pk)
        if not job.is_active:
            raise OperationError(
                f"The migration of {job.vm.name} has already ended ({job.get_state_display().lower()}).", status=409
            )
        if job.state == JobState.PENDING:
            job.state = JobState.CANCELLED
            job.finished_at = timezone.now()
            job.save(update_fields=["state", "finished_at"])
            events.record(
                "vm_migration_cancelled",
                f"Migration of VM {job.vm.name} cancelled before it started.",
                user=user,
                vm=job.vm,
                job=job,
            )
            return job
        job.cancel_requested = True
        job.save(update_fields=["cancel_requested"])
    if job.state == JobState.MIGRATING:
        try:
            get_driver(job.source.uri).abort_migration(job.source.uri, job.vm.name)
        except HypervisorError as exc:
            logger.info("abort of %s: %s", job, exc.message)
    return job
