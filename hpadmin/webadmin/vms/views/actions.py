"""What an admin does to running VMs: the Migrate dialog, Start and Stop."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_POST

from hpadmin.operations.errors import OperationError
from hpadmin.operations.services import migrate_vms, start_vm, stop_vm
from hpadmin.utilities.htmx import back_to, client_redirect, render_two_ways
from hpadmin.utilities.views import staff_required
from hpadmin.vms.models import VirtualMachine, VmStatus
from hpadmin.webadmin.vms.forms.migrate import MigrateForm
from hpadmin.webadmin.vms.viewmodels import destination_rows


@staff_required
def migrate(request):
    """The Migrate dialog for the selected VMs: automatic choice (recommended) or a host the scheduler judged."""
    form = MigrateForm(request.POST if request.method == "POST" else request.GET)
    valid = form.is_valid()
    vms = list(form.cleaned_data.get("vm") or [])
    error = None
    if request.method == "POST" and valid:
        try:
            jobs = migrate_vms(vms, form.cleaned_data["destination"], force=True, user=request.user)
        except OperationError as exc:
            error = exc
        else:
            names = ", ".join(job.vm.name for job in jobs)
            messages.success(request, f"Migration of {names} requested.")
            return client_redirect(request, vms[0].get_absolute_url()) if len(vms) == 1 else back_to(request, "/")
    eligible, refused = destination_rows(vms) if vms else ([], [])
    source_hosts = {vm.host_id for vm in vms}
    context = {
        "form": form,
        "vms": vms,
        "eligible": eligible,
        "refused": refused,
        "error": error,
        "one_source": vms[0].host if len(source_hosts) == 1 and vms else None,
        "not_running": [vm for vm in vms if vm.status != VmStatus.UP],
    }
    return render_two_ways(request, "hpadmin/migrate_page.html", "hpadmin/htmx/migrate_dialog.html", context)


@require_POST
@staff_required
def vm_start(request, pk: int):
    vm = get_object_or_404(VirtualMachine, pk=pk)
    try:
        vm = start_vm(vm, user=request.user)
    except OperationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"VM {vm.name} started on {vm.host}.")
    return back_to(request, vm.get_absolute_url())


@require_POST
@staff_required
def vm_stop(request, pk: int):
    vm = get_object_or_404(VirtualMachine, pk=pk)
    try:
        stop_vm(vm, user=request.user)
    except OperationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"VM {vm.name} powered off.")
    return back_to(request, vm.get_absolute_url())
