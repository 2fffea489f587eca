"""What an admin does to running VMs: the Migrate dialog, Start and Stop, and Restore settings."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.views.decorators.http import require_POST

from hpadmin.access.roles import Permit
from hpadmin.access.shortcuts import access_of, admin_required, get_visible, get_visible_all, limit_choices, require
from hpadmin.operations.errors import OperationError
from hpadmin.operations.services import (
    affinity_closure_of,
    migrate_vms,
    migration_plan,
    restore_settings,
    start_vm,
    stop_vm,
)
from hpadmin.utilities.htmx import back_to, client_redirect, render_two_ways
from hpadmin.vms.models import VirtualMachine
from hpadmin.webadmin.vms.forms.migrate import MigrateForm
from hpadmin.webadmin.vms.viewmodels import degraded_policy_note, destination_rows, suspensions


@admin_required
def migrate(request):
    """The Migrate dialog for the selected VMs: the ones that can move, with the automatic choice (recommended)
    or a host the scheduler judged for all of them, and the ones that stay, each with why. A host that takes
    some of them only with settings suspended asks for confirmation first, naming the settings."""
    data = request.POST if request.method == "POST" else request.GET
    access = access_of(request)
    for vm in get_visible_all(request, VirtualMachine.objects.all(), data.getlist("vm")):
        require(request, Permit.MIGRATE, vm)
    if not access.anywhere(Permit.MIGRATE):
        raise PermissionDenied("You may not migrate VMs.")
    form = limit_choices(
        MigrateForm(request.POST if request.method == "POST" else request.GET), request, vm=Permit.MIGRATE
    )
    valid = form.is_valid()
    vms = list(form.cleaned_data.get("vm") or [])
    error = None
    suspended = []  # the selected destination's suspensions, while they wait for the admin's confirmation
    if request.method == "POST" and valid:
        destination, allow_degraded = form.cleaned_data["destination"], form.cleaned_data["allow_degraded"]
        if destination is not None and not allow_degraded:
            suspended = suspensions(vms, destination)
        if not suspended:
            try:
                jobs = migrate_vms(
                    vms,
                    destination,
                    force=True,
                    user=request.user,
                    allow_degraded=allow_degraded,
                    affinity_closure=form.cleaned_data["affinity_closure"],
                )
            except OperationError as exc:
                error = exc
                # A host that came to need suspensions since it was judged above is asked about all the same.
                if "allow_degraded" in exc.errors and (again := suspensions(vms, destination)):
                    suspended, error = again, None
            else:
                names = ", ".join(job.vm.name for job in jobs)
                messages.success(request, f"Migration of {names} requested.")
                if jobs.skipped:
                    messages.warning(request, "Not migrated: " + " ".join(s.message for s in jobs.skipped))
                if len(vms) == 1:
                    return client_redirect(request, vms[0].get_absolute_url())
                return back_to(request, "/")
    movable, skipped = migration_plan(vms, force=True)
    closure = [vm for vm in affinity_closure_of(movable) if vm not in movable] if movable else []
    eligible, refused, homeless = destination_rows(movable, access) if movable else ([], [], [])
    context = {
        "form": form,
        "vms": vms,
        "movable": movable,
        "skipped": skipped,
        "eligible": eligible,
        "refused": refused,
        "homeless": homeless,
        "policy_note": degraded_policy_note(movable),
        "closure": closure,
        "suspended": suspended,
        "error": error,
    }
    return render_two_ways(request, "hpadmin/migrate_page.html", "hpadmin/htmx/migrate_dialog.html", context)


@require_POST
@admin_required
def vm_start(request, pk: int):
    vm = get_visible(request, VirtualMachine.objects.all(), Permit.OPERATE, pk=pk)
    try:
        vm = start_vm(vm, user=request.user)
    except OperationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"VM {vm.name} started on {vm.host}.")
    return back_to(request, vm.get_absolute_url())


@require_POST
@admin_required
def vm_stop(request, pk: int):
    vm = get_visible(request, VirtualMachine.objects.all(), Permit.OPERATE, pk=pk)
    try:
        stop_vm(vm, user=request.user)
    except OperationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"VM {vm.name} powered off.")
    return back_to(request, vm.get_absolute_url())


@require_POST
@admin_required
def vm_restore_settings(request, pk: int):
    """Migrate a degraded VM to a host, chosen automatically, that fits its whole configuration."""
    vm = get_visible(request, VirtualMachine.objects.all(), Permit.MIGRATE, pk=pk)
    try:
        job = restore_settings(vm, user=request.user)
    except OperationError as exc:
        messages.error(request, exc.message)
    else:
        where = job.requested_destination.name if job.requested_destination else "a host that fits it"
        messages.success(request, f"Migration of {vm.name} to {where} requested: its settings are restored there.")
    return back_to(request, vm.get_absolute_url())
