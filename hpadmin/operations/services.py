"""What admins, users and automation do to VMs: start, stop, reboot, migrate, cancel. One transaction per decision.

Every action on a VM takes the VM's row lock first (a locking read, or the update of its status; then its
jobs', then the hosts'), checks the VM's status and changes it by compare-and-set, so two actions on one VM
never interleave: the second gets a 409. Slow hypervisor calls run between two short transactions, while the
VM's status (starting, stopping, migrating) keeps other actions out. Migrations run as Celery tasks
(``hpadmin.operations.tasks``); the services validate, create the jobs and hand them to the dispatcher, which
starts them in order within the concurrency limits.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from django.db import IntegrityError, transaction

from hpadmin.hypervisor.base import Console, HypervisorError
from hpadmin.hypervisor.registry import get_driver
from hpadmin.inventory.models import Host, HostStatus
from hpadmin.vms.models import VirtualMachine, VmStatus
from scheduler import services as scheduling
from scheduler import snapshot
from scheduler.core import model as core
from scheduler.core.affinity import positive_closure
from scheduler.core.pipeline import check_migration_mode
from scheduler.services import HostVerdict, NoHostError

from . import audit, degradation, events
from .errors import OperationError
from .models import Evacuation, JobState, MigrationJob, MigrationMode, MigrationReason, Severity
from .specs import domain_spec
from .tasks import dispatch_pending

logger = logging.getLogger(__name__)

__all__ = [
    "HostVerdict",
    "Migrations",
    "Skipped",
    "cancel_migration",
    "migrate_vms",
    "migration_candidates",
    "migration_plan",
    "reboot_vm",
    "restore_settings",
    "start_vm",
    "stop_vm",
    "vm_console",
]

STOP_WAIT_S = 30.0  # how long a stop waits for the migration it cancelled to end


def _user(user):
    return user if getattr(user, "is_authenticated", False) else None


def _locked(vm: VirtualMachine) -> VirtualMachine:
    return VirtualMachine.objects.select_for_update(of=("self",)).select_related("cluster", "host").get(pk=vm.pk)


def _busy(vm: VirtualMachine, action: str) -> OperationError:
    return OperationError(f"Cannot {action} VM {vm.name}: it is {vm.get_status_display().lower()}.", status=409)


# -- start and stop -------------------------------------------------------------------------------------------


def start_vm(vm: VirtualMachine, user=None, *, host: Host | None = None) -> VirtualMachine:
    """Place the VM with the scheduler (on ``host`` if given), claim its resources and start it there. Where no
    host fits its whole configuration, its policy says whether it starts with settings suspended."""
    with audit.refused_start(vm, user), transaction.atomic():
        vm = _locked(vm)
        if vm.status != VmStatus.DOWN:
            raise _busy(vm, "run")
        if vm.next_run:
            changed = ", ".join(vm._meta.get_field(name).verbose_name for name in sorted(vm.next_run))
            vm.apply_next_run()
            vm.save()
            events.record(
                "vm_next_run_applied", f"VM {vm.name} starts with the changes made while it ran: {changed}.", vm=vm
            )
        vm.move(VmStatus.DOWN, VmStatus.STARTING)
    try:
        allocation = scheduling.claim(vm, action="start", destination=host, allow_degraded=vm.allows_degraded())
    except NoHostError as exc:
        vm.move(VmStatus.STARTING, VmStatus.DOWN)
        refusal = OperationError(f"Cannot run VM {vm.name}: {exc.message}", _rejections(exc))
        audit.record_refused_start(vm, refusal, user)
        raise refusal from None
    except BaseException:
        vm.move(VmStatus.STARTING, VmStatus.DOWN)
        raise
    target = allocation.host
    try:
        get_driver(target.uri).start(target.uri, domain_spec(vm, allocation))
    except Exception as exc:  # whatever the driver raised, the claim and the status go back
        expected = isinstance(exc, HypervisorError)
        why = exc.message if expected else f"unexpected error: {exc}"
        with transaction.atomic():
            allocation.delete()
            vm.move(VmStatus.STARTING, VmStatus.DOWN)
            events.record(
                "vm_start_failed",
                f"Failed to run VM {vm.name} on {target.name}: {why}",
                severity=Severity.ERROR,
                user=user,
                vm=vm,
                host=target,
            )
        raise OperationError(
            f"Cannot run VM {vm.name} on {target.name}: {why}", status=409 if expected else 502
        ) from exc
    with transaction.atomic():
        vm.move(VmStatus.STARTING, VmStatus.UP, **VirtualMachine.started_on(target))
        scheduling.activate(allocation)
        events.record("vm_started", f"VM {vm.name} started on Host {target.name}.", user=user, vm=vm, host=target)
        degradation.record(vm, allocation, user=user)
    vm.refresh_from_db()
    return vm


def stop_vm(vm: VirtualMachine, user=None) -> VirtualMachine:
    """Power the VM off and release everything it held. A migration in progress is cancelled first, and the
    stop waits for it to end: the VM is never recorded as down while a hypervisor runs it."""
    job = MigrationJob.objects.filter(vm=vm).active().first()
    if job is not None:
        _cancel_and_wait(job, user)
    with transaction.atomic():
        vm = _locked(vm)
        if vm.status == VmStatus.DOWN:
            raise OperationError(f"Cannot stop VM {vm.name}: it is not running.", status=409)
        if MigrationJob.objects.filter(vm=vm).active().exists() or not vm.move(VmStatus.UP, VmStatus.STOPPING):
            raise _busy(vm, "stop")
    host = vm.host
    if host is not None:
        try:
            get_driver(host.uri).stop(host.uri, vm.name)
        except HypervisorError as exc:
            if exc.kind != "not_found":
                vm.move(VmStatus.STOPPING, VmStatus.UP)
                raise OperationError(f"Cannot stop VM {vm.name} on {host.name}: {exc.message}", status=409) from None
    with transaction.atomic():
        vm.move(VmStatus.STOPPING, VmStatus.DOWN, host=None)
        scheduling.release(vm)
        events.record("vm_stopped", f"VM {vm.name} powered off.", user=user, vm=vm, host=host)
    vm.refresh_from_db()
    return vm


def remove_vm(vm: VirtualMachine, user=None) -> None:
    """Remove a VM that is down; one that runs, or is being started, must be stopped first."""
    with transaction.atomic():
        vm = _locked(vm)
        if vm.status != VmStatus.DOWN:
            raise OperationError(f"Cannot remove VM {vm.name}: stop it first.", status=409)
        vm.delete()
        audit.record_removed(vm, user)


def _cancel_and_wait(job: MigrationJob, user) -> None:
    try:
        cancel_migration(job, user)
    except OperationError:
        return  # it ended meanwhile
    deadline = time.monotonic() + STOP_WAIT_S
    while MigrationJob.objects.filter(pk=job.pk).active().exists():
        if time.monotonic() > deadline:
            raise OperationError(
                f"Cannot stop VM {job.vm.name}: its migration is being cancelled and has not ended yet; "
                "try again in a moment.",
                status=409,
            )
        time.sleep(0.1)


def reboot_vm(vm: VirtualMachine, user=None) -> VirtualMachine:
    """Restart the running guest where it is (oVirt's RebootVm): it keeps its host and everything it holds
    there, so nothing is scheduled. The VM's row lock keeps a stop or a migration out meanwhile."""
    with transaction.atomic():
        vm = _locked(vm)
        if vm.status != VmStatus.UP:
            raise _busy(vm, "reboot")
        host = vm.host
        try:
            get_driver(host.uri).reboot(host.uri, vm.name)
        except HypervisorError as exc:
            raise OperationError(f"Cannot reboot VM {vm.name} on {host.name}: {exc.message}", status=409) from None
        who = user.get_username() if _user(user) else "system"
        events.record("vm_rebooted", f"VM {vm.name} was restarted by {who}.", user=user, vm=vm, host=host)
    return vm


def vm_console(vm: VirtualMachine, user=None) -> Console | None:
    """Where the running VM's display listens on its host; None for a headless VM (or one whose host reports no
    display). Handing it out is recorded, as oVirt records a console session."""
    vm = VirtualMachine.objects.select_related("host").get(pk=vm.pk)
    if vm.host is None or vm.status not in (VmStatus.UP, VmStatus.MIGRATING):
        raise OperationError(f"VM {vm.name} has no console: it is not running.", status=409)
    if vm.headless:
        return None
    try:
        console = get_driver(vm.host.uri).console(vm.host.uri, vm.name)
    except HypervisorError as exc:
        raise OperationError(f"Cannot read the console of VM {vm.name}: {exc.message}", status=409) from None
    if console is not None:
        who = user.get_username() if _user(user) else "system"
        events.record("vm_console_opened", f"User {who} initiated console session for VM {vm.name}.", user=user, vm=vm)
    return console


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


def migration_candidates(
    vm: VirtualMachine,
    destination: Host | None = None,
    *,
    moving_together: Collection[int] = (),
    ignore_vm_affinity: bool = False,
) -> list[HostVerdict]:
    """The scheduler's verdict on every host of the VM's cluster (or one ``destination``), as the Migrate
    dialog and the API show it: eligible with rank and score, or refused with every filter's reason. Hosts that
    fit the VM only with settings suspended are eligible after the others, with what they would suspend.
    ``moving_together`` and ``ignore_vm_affinity``: see :func:`migrate_vms`."""
    hosts = [destination] if destination is not None else None
    decision, by_id = scheduling.decide(
        vm,
        action="migrate",
        destination=destination,
        force=True,
        hosts=hosts,
        allow_degraded=True,
        moving_together=moving_together,
        ignore_vm_affinity=ignore_vm_affinity,
    )
    return scheduling.verdicts(decision, by_id)


class Refusal(NamedTuple):
    """Why a VM may not migrate as asked: the message, an HTTP-like status (409: the state of things forbids it;
    400: the request itself is wrong) and whether it only lacks the confirmation that settings may be
    suspended."""

    message: str
    status: int
    unconfirmed: bool = False


def _refusal(
    vm: VirtualMachine,
    destination: Host | None,
    force: bool,
    busy: set[int],
    allow_degraded: bool = False,
    together: Collection[int] = (),
    ignore_vm_affinity: bool = False,
) -> Refusal | None:
    """Why this VM may not be migrated as asked, or None. oVirt's VmValidator and MigrateVmToServer.
    A destination that fits the VM only with settings suspended needs ``allow_degraded``."""
    mode_error = check_migration_mode(snapshot.vm_request(vm, placement_hosts=()), _core_request(destination, force))
    if vm.pk in busy:
        return Refusal(f"Cannot migrate VM {vm.name}: a migration is already in progress.", 409)
    if vm.status == VmStatus.DOWN or vm.host_id is None:
        return Refusal(f"Cannot migrate VM {vm.name}: it is not running.", 409)
    if vm.status != VmStatus.UP:
        return Refusal(f"Cannot migrate VM {vm.name}: it is {vm.get_status_display().lower()}.", 409)
    if mode_error is not None:
        return Refusal(
            f"Cannot migrate VM {vm.name}: {mode_error.message}.", 409 if vm.migration_mode == "pinned" else 400
        )
    if destination is None:
        return None
    where = f"Cannot migrate VM {vm.name} to {destination.name}"
    if destination.pk == vm.host_id:
        return Refusal(f"{where}: source and destination are the same.", 400)
    if destination.cluster_id != vm.cluster_id:
        return Refusal(f"{where}: the host is in another cluster; VMs migrate within their cluster.", 400)
    if destination.status != HostStatus.UP:
        return Refusal(f"{where}: the host is {destination.get_status_display().lower()}, not up.", 409)
    together = set(together) - {vm.pk}
    verdict = migration_candidates(vm, destination, moving_together=together, ignore_vm_affinity=ignore_vm_affinity)[0]
    if not verdict.eligible:
        reasons = "; ".join(f"{f}: {r}" for f, r in verdict.rejections)
        return Refusal(f"{where}: the host does not satisfy the scheduling constraints ({reasons}).", 400)
    if verdict.suspended and not allow_degraded:
        suspended = degradation.describe([{"setting": s, "reason": r} for s, r in verdict.suspended])
        message = f"{where}: it runs there only with settings suspended: {suspended}. Confirm to migrate it so."
        return Refusal(message, 400, unconfirmed=True)
    return None


def _core_request(destination: Host | None, force: bool) -> core.ScheduleRequest:
    return core.ScheduleRequest(action="migrate", destination=destination.pk if destination else None, force=force)


@dataclass(frozen=True)
class Skipped:
    """A VM of a migration request that stays where it is: the refusal's message and its HTTP-like status.
    ``unconfirmed``: it would move, but only with settings suspended, which the request did not allow."""

    vm: VirtualMachine
    message: str
    status: int
    unconfirmed: bool = False


class Migrations(list[MigrationJob]):
    """The jobs of one migration request, one per VM that moves, and ``skipped``: the VMs that stay, with why."""

    def __init__(self, jobs: Iterable[MigrationJob], skipped: list[Skipped]) -> None:
        super().__init__(jobs)
        self.skipped = skipped


def _sort_out(
    vms: list[VirtualMachine],
    destinations: Mapping[int, Host | None],
    force: bool,
    busy: set[int],
    allow_degraded: Mapping[int, bool] | None = None,
    together: Collection[int] = (),
    ignore_vm_affinity: bool = False,
) -> tuple[list[VirtualMachine], list[Skipped]]:
    """The VMs that may move as asked (each to its destination in ``destinations``, by VM id), and the others
    with why. One request moves VMs within one cluster: the one that most of the movable VMs are in (on a tie,
    the cluster first by name), whatever order they come in."""
    allowed = allow_degraded or {}
    refusals: dict[int, Refusal] = {}
    for vm in vms:
        destination = destinations.get(vm.pk)
        judged = _refusal(vm, destination, force, busy, allowed.get(vm.pk, False), together, ignore_vm_affinity)
        if judged is not None:
            refusals[vm.pk] = judged
    movable = [vm for vm in vms if vm.pk not in refusals]
    counts = Counter(vm.cluster_id for vm in movable)
    if len(counts) > 1:
        home = min((vm.cluster for vm in movable), key=lambda c: (-counts[c.pk], c.name))
        for vm in movable:
            if vm.cluster_id != home.pk:
                refusals[vm.pk] = Refusal(
                    f"Cannot migrate VM {vm.name}: it is in cluster {vm.cluster.name} and the other VMs are in "
                    f"{home.name}; VMs migrate within their cluster, so migrate it on its own.",
                    400,
                )
        movable = [vm for vm in movable if vm.cluster_id == home.pk]
    return movable, [Skipped(vm, *refusals[vm.pk]) for vm in vms if vm.pk in refusals]


def migration_plan(
    vms: list[VirtualMachine], destination: Host | None = None, *, force: bool = False
) -> tuple[list[VirtualMachine], list[Skipped]]:
    """Which of ``vms`` a migration request would move and why each other one stays: the rule
    :func:`migrate_vms` applies under the VMs' locks, read without them (for the Migrate dialog)."""
    busy = set(MigrationJob.objects.filter(vm__in=vms).active().values_list("vm_id", flat=True))
    return _sort_out(vms, dict.fromkeys((vm.pk for vm in vms), destination), force, busy)


def migrate_vms(
    vms: list[VirtualMachine],
    destination: Host | None = None,
    *,
    force: bool = False,
    user=None,
    reason: str = "user",
    reason_text: str = "",
    planned: Mapping[int, Host] | None = None,
    evacuation: Evacuation | None = None,
    allow_degraded: bool = False,
    affinity_closure: bool = False,
    ignore_vm_affinity: bool = False,
) -> Migrations:
    """Ask for the live migration of ``vms`` to ``destination`` (None: the scheduler chooses per VM).

    Every VM is validated first: those that may move get a job, the others stay and are reported in
    ``skipped`` with why (see :func:`migration_plan`); when none may move, the refusal lists every VM's reason.
    An explicit destination must pass every scheduling filter now, and its refusal lists each filter's
    reason. Jobs start on commit.

    ``planned`` (VM id -> host): where a plan of the scheduler sends each VM (an ``evacuation``'s); the job
    tries that host first and, should the move fail, lets the scheduler choose again.

    Settings are suspended on a host that cannot honour them only where allowed: ``allow_degraded`` is the
    admin's confirmation of it (needed for an explicit destination that suspends anything); otherwise each VM's
    policy (``VirtualMachine.allows_degraded``) decides for the scheduler's choices and planned moves. A
    restoring migration never suspends anything.

    ``affinity_closure``: the VMs in positive enforcing affinity with ``vms`` (and running on their hosts) move
    too, all to one host: ``destination``, or the best host that takes them all. ``ignore_vm_affinity``: enforcing
    VM-to-VM rules do not hold the jobs back (a user's maintenance that cannot empty the host otherwise).
    """
    if not vms:
        raise OperationError("Select at least one VM to migrate.", {"vms": ["Select at least one VM."]})
    together: set[int] = set()
    if affinity_closure:
        vms = affinity_closure_of(vms)
        together = {vm.pk for vm in vms}
        if destination is None and len(vms) > 1:
            destination, why = scheduling.host_for_all(vms)
            if destination is None:
                raise OperationError(why, status=409)
    try:
        with transaction.atomic():
            locked = list(
                VirtualMachine.objects.select_for_update(of=("self",))
                .select_related("cluster", "host")
                .filter(pk__in=[vm.pk for vm in vms])
                .order_by("pk")
            )
            busy = set(MigrationJob.objects.filter(vm__in=locked).active().values_list("vm_id", flat=True))
            destinations = planned or dict.fromkeys((vm.pk for vm in locked), destination)
            degraded = {
                vm.pk: reason != MigrationReason.RESTORE
                and (allow_degraded or (destination is None and vm.allows_degraded()))
                for vm in locked
            }
            movable, skipped = _sort_out(locked, destinations, force, busy, degraded, together, ignore_vm_affinity)
            if not movable:
                raise OperationError(
                    " ".join(s.message for s in skipped),
                    {"allow_degraded" if s.unconfirmed else s.vm.name: [s.message] for s in skipped},
                    status=max(s.status for s in skipped),
                )
            jobs = [
                MigrationJob.objects.create(
                    vm=vm,
                    source_id=vm.host_id,
                    requested_destination=destinations[vm.pk],
                    requested_by=_user(user),
                    reason=reason,
                    reason_text=reason_text,
                    mode=MigrationMode.MANUAL if destination else MigrationMode.AUTOMATIC,
                    force=force,
                    evacuation=evacuation,
                    allow_degraded=degraded[vm.pk],
                    moving_with=sorted(together - {vm.pk}),
                    ignore_vm_affinity=ignore_vm_affinity,
                )
                for vm in movable
            ]
            transaction.on_commit(dispatch_pending)
    except IntegrityError:  # the database's "one active job per VM", should a lock ever be missing
        names = ", ".join(vm.name for vm in vms)
        raise OperationError(f"Cannot migrate VM {names}: a migration is already in progress.", status=409) from None
    return Migrations(jobs, skipped)


def affinity_closure_of(vms: list[VirtualMachine]) -> list[VirtualMachine]:
    """``vms`` and the VMs in positive enforcing VM-to-VM affinity with them, transitively, that run on the same
    hosts (oVirt's MigrateMultipleVms with addVmsInPositiveHardAffinity); ordered by name after ``vms``."""
    groups = [g for cluster in {vm.cluster for vm in vms} for g in snapshot.affinity_groups(cluster)]
    closure = positive_closure((vm.pk for vm in vms), groups) - {vm.pk for vm in vms}
    if not closure:
        return list(vms)
    hosts = {vm.host_id for vm in vms if vm.host_id is not None}
    more = VirtualMachine.objects.filter(pk__in=closure, host_id__in=hosts).select_related("cluster", "host")
    return [*vms, *more.order_by("name")]


def restore_settings(vm: VirtualMachine, user=None) -> MigrationJob:
    """Migrate a degraded VM to a host that fits its whole configuration (the one it came from first), which
    restores its suspended settings."""
    if not vm.degraded:
        raise OperationError(f"VM {vm.name} runs with its whole configuration: nothing to restore.", status=409)
    hosts, why = degradation.fitting_hosts(vm)
    if not hosts:
        raise OperationError(f"Cannot restore the settings of VM {vm.name} now: {why}", status=409)
    (job,) = migrate_vms(
        [vm],
        planned={vm.pk: hosts[0]},
        force=True,
        user=user,
        reason=MigrationReason.RESTORE,
        reason_text="restore settings",
    )
    return job


def cancel_migration(job: MigrationJob, user=None) -> MigrationJob:
    """Cancel a waiting job at once; abort a running migration through the driver (the task records it)."""
    vm = MigrationJob.objects.select_related("vm").get(pk=job.pk).vm
    with transaction.atomic():
        _locked(vm)
        job = MigrationJob.objects.select_for_update(of=("self",)).select_related("vm", "source").get(pk=job.pk)
        if not job.is_active:
            raise OperationError(
                f"The migration of {job.vm.name} has already ended ({job.get_state_display().lower()}).", status=409
            )
        if job.move(JobState.PENDING, JobState.CANCELLED):
            events.record(
                "vm_migration_cancelled",
                f"Migration of VM {job.vm.name} cancelled before it started.",
                user=user,
                vm=job.vm,
                job=job,
            )
            return job
        MigrationJob.objects.filter(pk=job.pk).update(cancel_requested=True)
        job.cancel_requested = True
    if job.state == JobState.MIGRATING:
        try:
            get_driver(job.source.uri).abort_migration(job.source.uri, job.vm.name)
        except HypervisorError as exc:
            logger.info("abort of %s: %s", job, exc.message)
    return job
