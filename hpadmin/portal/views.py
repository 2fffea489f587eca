"""The user portal's pages: the VMs a user may see as cards, what they may do to each, and Create VM.

Every VM is looked up among those the user may see (404 otherwise) and needs the action's permit (403
otherwise); the actions are the services the administration portal calls, so each is recorded with the user.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Sum
from django.urls import reverse
from django.views.decorators.http import require_POST

from hpadmin.access.roles import Permit
from hpadmin.access.shortcuts import access_of, get_visible
from hpadmin.hypervisor.base import Console
from hpadmin.inventory.models import Host
from hpadmin.operations import audit
from hpadmin.operations.errors import OperationError
from hpadmin.operations.services import (
    migrate_vms,
    migration_candidates,
    migration_plan,
    reboot_vm,
    start_vm,
    stop_vm,
    vm_console,
)
from hpadmin.utilities.htmx import back_to, client_redirect, render_two_ways
from hpadmin.utilities.lists import sorted_page
from hpadmin.vms.models import Quota, Template, VirtualMachine

from .forms import MigrateForm, NewVmForm

CARDS_PER_PAGE = 24


def dialog(request, template: str, context: dict):
    """A dialog: the fragment for htmx, a portal page holding it otherwise."""
    return render_two_ways(request, "portal/dialog_page.html", template, {**context, "dialog": template})


def _home(request):
    return back_to(request, reverse("portal-home"))


@login_required
def home(request):
    """The VMs the user may see, as cards, by name."""
    access = access_of(request)
    vms = access.scope(VirtualMachine.objects.select_related("host"))
    context = sorted_page(request, vms, {"name": "name"}, "name", per_page=CARDS_PER_PAGE)
    context["can_create"] = access.anywhere(Permit.CREATE_VM)
    return render_two_ways(request, "portal/home.html", "portal/htmx/vm_cards.html", context)


# -- power ---------------------------------------------------------------------------------------------------------


@require_POST
@login_required
def vm_start(request, pk: int):
    vm = get_visible(request, VirtualMachine.objects.all(), Permit.OPERATE, pk=pk)
    try:
        vm = start_vm(vm, user=request.user)
    except OperationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"VM {vm.name} started on {vm.host.name}.")
    return _home(request)


@login_required
def vm_stop(request, pk: int):
    """Stop: a confirmation first, as powering off loses what the guest did not save."""
    vm = get_visible(request, VirtualMachine.objects.all(), Permit.OPERATE, pk=pk)
    if request.method != "POST":
        return dialog(request, "portal/htmx/stop_dialog.html", {"vm": vm})
    try:
        stop_vm(vm, user=request.user)
    except OperationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"VM {vm.name} powered off.")
    return _home(request)


@require_POST
@login_required
def vm_reboot(request, pk: int):
    vm = get_visible(request, VirtualMachine.objects.all(), Permit.OPERATE, pk=pk)
    try:
        reboot_vm(vm, user=request.user)
    except OperationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"VM {vm.name} is restarting.")
    return _home(request)


# -- console -------------------------------------------------------------------------------------------------------


def tunnel(host: Host, console: Console) -> dict:
    """How to reach a display that listens on the host's loopback from one's own machine: an SSH tunnel to the
    host (as the user its URI names, else root), then a viewer on the tunnel's local end."""
    parts = urlsplit(host.uri)
    local = 5900
    target = f"{parts.username or 'root'}@{parts.hostname or host.name}"
    viewer = f"vncviewer localhost:{local}" if console.protocol == "vnc" else f"remote-viewer spice://localhost:{local}"
    return {"ssh": f"ssh -L {local}:{console.address}:{console.port} {target}", "viewer": viewer}


@login_required
def console(request, pk: int):
    """The console details: where the VM's display listens and the commands that reach it."""
    vm = get_visible(request, VirtualMachine.objects.select_related("host"), Permit.OPERATE, pk=pk)
    context = {"vm": vm}
    try:
        context["console"] = details = vm_console(vm, user=request.user)
    except OperationError as exc:
        context["error"] = exc
    else:
        context["tunnel"] = tunnel(vm.host, details) if details else None
    return dialog(request, "portal/htmx/console_dialog.html", context)


# -- migrate -------------------------------------------------------------------------------------------------------


def destinations(vm: VirtualMachine, access) -> tuple[list[Host], bool]:
    """The hosts the user may see that take the VM with its whole configuration, best first, and whether any
    host takes it at all (the automatic choice). Hosts that would take it only with settings suspended are left
    to the administration portal, which asks to confirm that."""
    verdicts = migration_candidates(vm)
    fitting = [v for v in access.visible_verdicts(verdicts) if v.eligible and not v.suspended]
    hosts = [v.host for v in sorted(fitting, key=lambda v: (v.rank or 0, v.host.name))]
    return hosts, any(v.eligible for v in verdicts)


@login_required
def migrate(request, pk: int):
    """The Migrate dialog for one VM: the automatic choice (recommended), or a host the user may see that fits."""
    vm = get_visible(request, VirtualMachine.objects.select_related("cluster", "host"), Permit.MIGRATE, pk=pk)
    movable, skipped = migration_plan([vm], force=True)
    hosts, placeable = destinations(vm, access_of(request)) if movable else ([], False)
    form = MigrateForm(request.POST if request.method == "POST" else None, hosts=hosts)
    error = None
    if form.is_valid():
        try:
            migrate_vms([vm], form.cleaned_data["destination"], force=True, user=request.user)
        except OperationError as exc:
            error = exc
        else:
            messages.success(request, f"Migration of {vm.name} requested.")
            return _home(request)
    context = {"vm": vm, "form": form, "hosts": hosts, "placeable": placeable, "skipped": skipped, "error": error}
    return dialog(request, "portal/htmx/migrate_dialog.html", context)


# -- create --------------------------------------------------------------------------------------------------------


def quota_use(user) -> list[tuple[int, int, str]] | None:
    """What the user's VMs hold against their quota: (held, allowed, unit) for VMs, vCPUs and memory."""
    quota = Quota.objects.filter(user=user).first()
    if quota is None:
        return None
    held = VirtualMachine.objects.filter(owner=user).aggregate(
        vms=Count("pk"), vcpus=Sum(F("sockets") * F("cores") * F("threads")), memory=Sum("memory_mib")
    )
    return [
        (held["vms"], quota.max_vms, "VMs"),
        (held["vcpus"] or 0, quota.max_vcpus, "vCPUs"),
        (held["memory"] or 0, quota.max_memory_mib, "MiB"),
    ]


@login_required
def vm_new(request):
    """Create VM: a name and a template the user may use; the template gives the rest, within the quota."""
    access = access_of(request)
    if not access.anywhere(Permit.CREATE_VM):
        raise PermissionDenied("You may not create VMs: ask an administrator for the VmCreator role on a cluster.")
    templates = access.scope(Template.objects.select_related("cluster"), Permit.CREATE_VM).order_by("name", "pk")
    if request.method == "POST":
        form = NewVmForm(request.POST, templates=templates)
        if form.is_valid() and (vm := form.save(owner=request.user)) is not None:
            audit.record_created(vm, request.user)
            messages.success(request, f"VM {vm.name} created from template {vm.template.name}.")
            return client_redirect(request, reverse("portal-home"))
    else:  # the form as far as it is filled in: choosing a template shows what it gives
        form = NewVmForm(templates=templates, initial=request.GET.dict())
    context = {"form": form, "template": form.chosen_template(), "quota": quota_use(request.user)}
    return render_two_ways(request, "portal/vm_new.html", "portal/htmx/vm_new_fields.html", context)
