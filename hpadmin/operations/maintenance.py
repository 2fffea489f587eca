"""Host maintenance: every VM leaves the host, its moves planned together, before the host goes into
maintenance; and activating a host again, and removing one.

A user's maintenance counts as manual migration (oVirt 4.3): "Allow manual and automatic" and "Allow manual
migration only" VMs move, and a running "Do not allow migration" VM refuses it. A system's evacuation (of a
non-operational host) moves only what automation may move; the others stay, and the host keeps its status.

The plan (``scheduler.services.plan_evacuation``) places the host's VMs together; each move becomes a
migration job of the evacuation, started within the concurrency limits. The host stays "preparing for
maintenance" while VMs run on it: :func:`advance` (after each job of the evacuation ends, and by beat)
plans again the VMs whose move failed, up to :data:`PLANNING_ROUNDS` times, and puts the host into
maintenance once it is empty. Activating the host cancels what is still to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from celery import shared_task
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from hpadmin.inventory.models import Host, HostStatus
from hpadmin.vms.models import MigrationMode, SuspendableSetting, VirtualMachine, VmStatus
from scheduler import services as scheduling
from scheduler.models import Allocation

from . import events
from .errors import OperationError
from .models import Evacuation, EvacuationState, Event, MigrationJob, MigrationReason, Severity
from .services import cancel_migration, migrate_vms
from .signals import job_ended

PLANNING_ROUNDS = 3  # plans made for one evacuation before it waits for an admin


@dataclass
class MaintenancePreview:
    """What a user's maintenance of a host would do now: the Maintenance dialog shows it before OK."""

    host: Host
    blocking: list[VirtualMachine] = field(default_factory=list)
    moves: list[tuple[VirtualMachine, Host]] = field(default_factory=list)
    degraded: list[tuple[VirtualMachine, Host, list[str]]] = field(default_factory=list)  # and the settings' labels
    stays: list[tuple[VirtualMachine, str]] = field(default_factory=list)
    slower: list[VirtualMachine] = field(default_factory=list)
    exact: bool = True
    ignores_affinity: bool = False  # enforcing VM-to-VM affinity would keep VMs on the host otherwise

    @property
    def message(self) -> str:
        return _blocked_message(self.host, self.blocking) if self.blocking else ""


def _blocked_message(host: Host, vms: list[VirtualMachine]) -> str:
    """oVirt's VDS_CANNOT_MAINTENANCE_IT_INCLUDES_NON_MIGRATABLE_VM."""
    return (
        f"Cannot switch the following Hosts to Maintenance mode: {host.name}. One or more running VMs are "
        f"indicated as non-migratable. The non-migratable VMs are: {', '.join(vm.name for vm in vms)}."
    )


def _running_on(host: Host):
    return (
        VirtualMachine.objects.filter(host=host)
        .exclude(status=VmStatus.DOWN)
        .select_related("cluster", "host")
        .order_by("name")
    )


def _plan(host: Host, vms: list[VirtualMachine], initiator: str):
    """The moves and stays for ``vms``: automation leaves alone what its cluster does not let it move."""
    stays: list[tuple[VirtualMachine, str]] = []
    movable = []
    for vm in vms:
        refusal = vm.automatic_migration_refusal() if initiator == "system" else ""
        if refusal:
            stays.append((vm, refusal))
        else:
            movable.append(vm)
    plan, hosts = scheduling.plan_evacuation(host, movable, initiator=initiator)
    ignored = False
    if initiator == "user" and plan.stays:
        # oVirt's IgnoreVmToVmAffinityForHostMaintenance: a user's maintenance that enforcing VM-to-VM affinity
        # alone keeps from emptying the host ignores it.
        relaxed, hosts = scheduling.plan_evacuation(host, movable, initiator=initiator, ignore_vm_affinity=True)
        if len(relaxed.stays) < len(plan.stays):
            plan, ignored = relaxed, True
    by_id = {vm.pk: vm for vm in movable}
    moves = [(by_id[move.vm_id], hosts[move.host_id]) for move in plan.moves]
    labels = dict(SuspendableSetting.choices)
    degraded = [
        (by_id[m.vm_id], hosts[m.host_id], [labels[s] for s in m.placement.suspended])
        for m in plan.moves
        if m.placement.suspended
    ]
    stays += [(by_id[stay.vm_id], stay.reason) for stay in plan.stays]
    return moves, degraded, stays, plan.exact, ignored


def _refused_by_status(host: Host) -> OperationError:
    return OperationError(
        f"Cannot switch host {host.name} to maintenance mode: it is {host.get_status_display().lower()}.", status=409
    )


def maintenance_preview(host: Host) -> MaintenancePreview:
    """A user's maintenance of ``host``, planned now and not carried out; OperationError (409) when the host's
    status does not allow maintenance."""
    if not host.may_enter_maintenance:
        raise _refused_by_status(host)
    vms = list(_running_on(host))
    preview = MaintenancePreview(host, blocking=[vm for vm in vms if vm.migration_mode == MigrationMode.PINNED])
    if preview.blocking:
        return preview
    preview.moves, preview.degraded, preview.stays, preview.exact, preview.ignores_affinity = _plan(host, vms, "user")
    preview.slower = [vm for vm, _ in preview.moves if vm.is_high_performance or vm.has_pinning_settings()]
    return preview


def start_maintenance(host: Host, *, user=None, reason: str = "") -> Evacuation:
    """Move every VM off ``host``: a user's maintenance (``user`` given, or the API's and the pages' user) puts
    the host into maintenance once it is empty; a system's (``user=None``) only empties it of what automation
    may move. Raises OperationError (409) when the host's state or a "Do not allow migration" VM forbids it."""
    initiator = "user" if user is not None else "system"
    with transaction.atomic():
        host = Host.objects.select_for_update(no_key=True, of=("self",)).select_related("cluster").get(pk=host.pk)
        if not host.may_enter_maintenance:
            raise _refused_by_status(host)
        if Evacuation.objects.filter(host=host, state=EvacuationState.RUNNING).exists():
            raise OperationError(f"Host {host.name} is already being evacuated.", status=409)
        vms = list(_running_on(host))
        pinned = [vm for vm in vms if vm.migration_mode == MigrationMode.PINNED]
        if initiator == "user" and pinned:
            raise OperationError(_blocked_message(host, pinned), status=409)
        evacuation = Evacuation.objects.create(
            host=host, requested_by=user, initiator=initiator, reason=reason, total=len(vms)
        )
        who = f" by {user.get_username()}" if user is not None else ""
        why = f" (Reason: {reason})" if reason else ""
        if initiator == "user":
            host.move(host.status, HostStatus.PREPARING_FOR_MAINTENANCE)
            message = f"Host {host.name} was switched to Maintenance mode{who}{why}."
            events.record("host_maintenance", message, user=user, host=host)
        else:
            events.record(
                "host_evacuation",
                f"Migrating the VMs that may move automatically off host {host.name}{why}.",
                severity=Severity.WARNING,
                host=host,
            )
        transaction.on_commit(lambda: advance(evacuation.pk))
    return evacuation


def advance(evacuation_id: int) -> None:
    """Take an evacuation one step on: finish it once its host is empty, or, when no migration from the host
    is running and none of its VMs is on its way up or down, plan what is left to move. Called after each job
    from a host being evacuated ends, and by beat."""
    host_id = Evacuation.objects.filter(pk=evacuation_id).values_list("host", flat=True).first()
    with transaction.atomic():
        # The host's row lock first, as every change of a host's status takes it.
        host = (
            Host.objects.select_for_update(no_key=True, of=("self",))
            .select_related("cluster")
            .filter(pk=host_id)
            .first()
        )
        evacuation = (
            Evacuation.objects.select_related("requested_by")
            .filter(pk=evacuation_id, state=EvacuationState.RUNNING)
            .first()
        )
        if host is None or evacuation is None or MigrationJob.objects.active().filter(source=host).exists():
            return
        vms = list(_running_on(host))
        if not vms and not Allocation.objects.filter(host=host).exists():
            _finish(evacuation, host)
            return
        if evacuation.rounds >= PLANNING_ROUNDS or any(vm.status != VmStatus.UP for vm in vms):
            return  # waiting for an admin (the error says what is left), or for a start or stop to end
        evacuation.rounds += 1
        moves, _, stays, _, ignored = _plan(host, vms, evacuation.initiator)
        code = "host_maintenance_ignores_affinity"
        if ignored and not Event.objects.filter(host=host, code=code, time__gte=evacuation.created_at).exists():
            events.record(
                code,
                f"Enforcing VM affinity rules are ignored so that every VM can leave host {host.name} for maintenance.",
                severity=Severity.WARNING,
                user=evacuation.requested_by,
                host=host,
            )
        started, skipped = _migrate(evacuation, moves, ignore_vm_affinity=ignored)
        stays += skipped
        evacuation.error = "; ".join(f"VM {vm.name} could not move: {why}" for vm, why in stays)
        evacuation.save(update_fields=["rounds", "error"])
        if not started and stays:
            _stuck(evacuation, host, stays)


def _stuck(evacuation: Evacuation, host: Host, stays: list[tuple[VirtualMachine, str]]) -> None:
    """Nothing more can move: say so once, and wait for an admin (the host empties when they stop or move
    what is left)."""
    user = evacuation.requested_by
    if evacuation.initiator == "user":
        message = (
            f"Host {host.name} cannot change into maintenance mode - not all Vms have been migrated "
            f"successfully. Consider manual intervention: stopping/migrating Vms: "
            f"{', '.join(vm.name for vm, _ in stays)} (User: {_name(user)})."
        )
    else:
        message = f"Not every VM could be moved off host {host.name}: {evacuation.error}."
    evacuation.rounds = PLANNING_ROUNDS
    evacuation.save(update_fields=["rounds"])
    events.record("host_evacuation_failed", message, severity=Severity.ERROR, user=user, host=host)


def _migrate(
    evacuation: Evacuation, moves: list[tuple[VirtualMachine, Host]], *, ignore_vm_affinity: bool = False
) -> tuple[int, list[tuple[VirtualMachine, str]]]:
    """Jobs for the planned moves, each VM to its planned host: how many started, and the VMs refused, with
    why (one that a user's migration or a stop took meanwhile, say)."""
    if not moves:
        return 0, []
    what = "maintenance" if evacuation.initiator == "user" else "evacuation"
    try:
        jobs = migrate_vms(
            [vm for vm, _ in moves],
            planned={vm.pk: host for vm, host in moves},
            force=evacuation.initiator == "user",
            user=evacuation.requested_by,
            reason=MigrationReason.MAINTENANCE,
            reason_text=f"Host {evacuation.host.name} {what}",
            evacuation=evacuation,
            ignore_vm_affinity=ignore_vm_affinity,
        )
    except OperationError as refused:  # every one of them
        return 0, [(vm, refused.errors.get(vm.name, [refused.message])[0]) for vm, _ in moves]
    return len(jobs), [(skip.vm, skip.message) for skip in jobs.skipped]


def _finish(evacuation: Evacuation, host: Host) -> None:
    evacuation.state = EvacuationState.DONE
    evacuation.error = ""
    evacuation.finished_at = timezone.now()
    evacuation.save(update_fields=["state", "error", "finished_at"])
    if evacuation.initiator == "user" and host.move(HostStatus.PREPARING_FOR_MAINTENANCE, HostStatus.MAINTENANCE):
        events.record("host_maintenance_done", f"Host {host.name} was switched to Maintenance Mode.", host=host)
    elif evacuation.initiator == "system":
        events.record("host_evacuation_done", f"Every VM that may move automatically left host {host.name}.", host=host)


@receiver(job_ended)
def _after_job(sender, job: MigrationJob, **kwargs) -> None:
    """A job of an evacuation, or one from a host that was preparing for maintenance when the job began, ended:
    the evacuation's next step (beat finds the others)."""
    if job.evacuation_id is not None:
        advance(job.evacuation_id)
    elif job.source is not None and job.source.status == HostStatus.PREPARING_FOR_MAINTENANCE:
        for pk in Evacuation.objects.filter(host=job.source, state=EvacuationState.RUNNING).values_list(
            "pk", flat=True
        ):
            advance(pk)


@shared_task
def advance_evacuations() -> None:
    """Beat's part: every running evacuation one step on (the end of its jobs normally does it)."""
    for pk in Evacuation.objects.filter(state=EvacuationState.RUNNING).values_list("pk", flat=True):
        advance(pk)


def activate_host(host: Host, *, user=None) -> Host:
    """Bring a host in (or on its way to) maintenance, or non-operational, back up; a maintenance in
    progress is cancelled, and its migrations still waiting or running with it."""
    with transaction.atomic():
        host = Host.objects.select_for_update(no_key=True).get(pk=host.pk)
        if not host.may_be_activated:
            raise OperationError(
                f"Cannot activate host {host.name}: it is {host.get_status_display().lower()}.", status=409
            )
        running = list(Evacuation.objects.filter(host=host, state=EvacuationState.RUNNING))
        for evacuation in running:
            evacuation.state = EvacuationState.CANCELLED
            evacuation.finished_at = timezone.now()
            evacuation.save(update_fields=["state", "finished_at"])
        host.move(host.status, HostStatus.UP, status_reason="")
        events.record("host_activated", f"Host {host.name} was activated by {_name(user)}.", user=user, host=host)
    for evacuation in running:
        for job in evacuation.jobs.active():
            try:
                cancel_migration(job, user)
            except OperationError:
                pass  # it ended meanwhile
    return host


def remove_host(host: Host, *, user=None) -> None:
    """Remove a host in maintenance that holds nothing (oVirt: only a host in maintenance can be removed)."""
    with transaction.atomic():
        host = Host.objects.select_for_update(no_key=True).get(pk=host.pk)
        if not host.may_be_removed:
            raise OperationError(
                f"Cannot remove host {host.name}: it is {host.get_status_display().lower()}; "
                "switch it to maintenance first.",
                status=409,
            )
        if Allocation.objects.filter(host=host).exists() or VirtualMachine.objects.filter(host=host).exists():
            raise OperationError(f"Cannot remove host {host.name}: VMs still hold resources on it.", status=409)
        if placed := host.placed_names():
            raise OperationError(
                f"Cannot remove host {host.name}. The following VMs are set to run specifically only on this Host: "
                f"{', '.join(placed)}. Remove the association between the VMs and the Host first (Edit VM).",
                status=409,
            )
        name = host.name
        events.record("host_removed", f"Host {name} was removed by {_name(user)}.", user=user)
        host.delete()


def _name(user) -> str:
    return user.get_username() if user is not None else "the system"
