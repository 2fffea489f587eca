"""What an admin does to hosts: New and Edit, Refresh capabilities, Maintenance, Activate and Remove; and the
host's status, which its page polls while an evacuation moves its VMs away.

Dialogs are fragments loaded into ``#modal-content``; without htmx the same views render them as pages. Refusals
of the services (``OperationError``, a hypervisor's error) are shown in the dialog or as a message, never a 500.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import HTMX_STOP_POLLING, trigger_client_event

from hpadmin.access.roles import Permit
from hpadmin.access.shortcuts import access_of, admin_required, get_visible, limit_choices
from hpadmin.hypervisor.base import HypervisorError
from hpadmin.inventory.models import Host, HostStatus
from hpadmin.inventory.services import add_host, refresh_capabilities, update_host
from hpadmin.operations import audit
from hpadmin.operations.errors import OperationError
from hpadmin.operations.maintenance import activate_host, maintenance_preview, remove_host, start_maintenance
from hpadmin.operations.models import EvacuationState
from hpadmin.utilities.htmx import back_to, client_redirect, render_partial, render_two_ways

from .forms import HostEditForm, HostForm, MaintenanceForm


def dialog(request, template: str, context: dict):
    """A dialog: the fragment for htmx, a page holding it otherwise."""
    return render_two_ways(request, "hpadmin/dialog_page.html", template, {**context, "dialog": template})


# -- status and evacuation ---------------------------------------------------------------------------------------


def host_state(host: Host) -> dict:
    """The host's running evacuation (a maintenance in progress, or a system's evacuation), with its progress
    and each of its migrations; what the host page's header shows."""
    evacuation = host.evacuations.filter(state=EvacuationState.RUNNING).select_related("requested_by").first()
    if evacuation is None:
        return {"host": host, "evacuation": None}
    moved, total = evacuation.progress()
    jobs = evacuation.jobs.select_related("vm", "destination", "requested_destination").order_by("created_at", "pk")
    return {
        "host": host,
        "evacuation": evacuation,
        "moved": moved,
        "total": total,
        "percent": round(100 * moved / total) if total else 100,
        "evacuation_jobs": jobs,
    }


@require_safe
@admin_required
def host_status(request, pk: int):
    """The host's status, actions and evacuation; polled while an evacuation runs, 286 once it has ended, with a
    ``host-changed`` event that makes the page show what the host holds now."""
    host = get_visible(request, Host.objects.select_related("cluster"), pk=pk)
    context = host_state(host)
    response = render_partial(request, "hpadmin/htmx/host_status.html", context)
    if context["evacuation"] is not None:
        return response
    response.status_code = HTMX_STOP_POLLING
    return trigger_client_event(response, "host-changed", {"host": host.pk})


# -- New, Edit, Refresh ------------------------------------------------------------------------------------------


@admin_required
def host_new(request):
    """New host: its topology is imported from its hypervisor. A URI hpadmin may not use, or a hypervisor that
    does not answer, is an error next to the URI."""
    if not access_of(request).anywhere(Permit.MANAGE_CLUSTER):
        raise PermissionDenied("You may not add hosts.")
    if request.method == "POST":
        form = limit_choices(HostForm(request.POST), request, cluster=Permit.MANAGE_CLUSTER)
        if form.is_valid():
            data = form.cleaned_data
            try:
                host = add_host(data["cluster"], data["name"], data["uri"])
            except HypervisorError as exc:
                form.add_error("uri", exc.message)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                audit.record_created(host, request.user)
                messages.success(request, f"Host {host.name} added.")
                return client_redirect(request, host.get_absolute_url())
    else:
        form = limit_choices(
            HostForm(initial={"cluster": request.GET.get("cluster")}), request, cluster=Permit.MANAGE_CLUSTER
        )
    context = {"form": form, "title": "New Host", "url": reverse("host-new")}
    return dialog(request, "hpadmin/htmx/form_dialog.html", context)


@admin_required
def host_edit(request, pk: int):
    """Edit host: name, fence command, and the cluster while the host is in maintenance."""
    host = get_visible(request, Host.objects.select_related("cluster"), Permit.MANAGE_CLUSTER, pk=pk)
    url, title = reverse("host-edit", args=[pk]), f"Edit Host {host.name}"
    if request.method == "POST":
        before = audit.snapshot(host)  # before the form writes the input onto the host
        form = limit_choices(
            HostEditForm(request.POST, instance=host, user=request.user), request, cluster=Permit.MANAGE_CLUSTER
        )
        if form.is_valid():
            try:
                update_host(host, form.changed_data)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                audit.record_changed(host, before, request.user)
                messages.success(request, f"Host {host.name} saved.")
                return client_redirect(request, host.get_absolute_url())
    else:
        form = limit_choices(HostEditForm(instance=host, user=request.user), request, cluster=Permit.MANAGE_CLUSTER)
    context = {"form": form, "title": title, "url": url}
    return dialog(request, "hpadmin/htmx/form_dialog.html", context)


@require_POST
@admin_required
def host_refresh(request, pk: int):
    """Read the host's topology from its hypervisor again."""
    host = get_visible(request, Host.objects.all(), Permit.MANAGE_CLUSTER, pk=pk)
    before = audit.snapshot(host)
    try:
        refresh_capabilities(host)
    except HypervisorError as exc:
        messages.error(request, f"Failed to refresh the capabilities of host {host.name}. {exc.message}")
    except ValidationError as exc:
        messages.error(request, f"Failed to refresh the capabilities of host {host.name}. {' '.join(exc.messages)}")
    else:
        audit.record_capabilities_refreshed(host, before, request.user)
        messages.success(request, f"Successfully refreshed the capabilities of host {host.name}.")
    return back_to(request, host.get_absolute_url())


# -- Maintenance, Activate, Remove -------------------------------------------------------------------------------


@admin_required
def host_maintenance(request, pk: int):
    """The Maintenance dialog: where each VM of the host will go (its moves planned together), the VMs that
    would stay and why, and oVirt's warning that HP and pinned VMs may run slower where they go; a running
    "Do not allow migration" VM blocks it, with oVirt's message. OK starts the maintenance."""
    host = get_visible(request, Host.objects.select_related("cluster"), Permit.MANAGE_CLUSTER, pk=pk)
    form = MaintenanceForm(request.POST if request.method == "POST" else None)
    error = None
    if request.method == "POST" and form.is_valid():
        try:
            evacuation = start_maintenance(host, user=request.user, reason=form.cleaned_data["reason"])
        except OperationError as exc:
            error = exc
        else:
            host.refresh_from_db(fields=["status"])
            if host.status == HostStatus.MAINTENANCE:
                messages.success(request, f"Host {host.name} was switched to Maintenance Mode.")
            else:
                count = f"{evacuation.total} VM{'s' if evacuation.total != 1 else ''}"
                messages.success(request, f"Host {host.name} is preparing for maintenance: migrating {count}.")
            return client_redirect(request, host.get_absolute_url())
    allowed = host.may_enter_maintenance
    context = {
        "form": form,
        "host": host,
        "allowed": allowed,
        "plan": maintenance_preview(host) if allowed else None,
        "error": error,
    }
    return dialog(request, "hpadmin/htmx/maintenance_dialog.html", context)


@require_POST
@admin_required
def host_activate(request, pk: int):
    """Bring the host back up; a maintenance in progress is cancelled with the migrations still to run."""
    host = get_visible(request, Host.objects.all(), Permit.MANAGE_CLUSTER, pk=pk)
    try:
        activate_host(host, user=request.user)
    except OperationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Host {host.name} was activated.")
    return back_to(request, host.get_absolute_url())


@admin_required
def host_remove(request, pk: int):
    """Remove host: a confirmation; only a host in maintenance that holds nothing may go."""
    host = get_visible(request, Host.objects.all(), Permit.MANAGE_CLUSTER, pk=pk)
    error = None
    if request.method == "POST":
        try:
            remove_host(host, user=request.user)
        except OperationError as exc:
            error = exc
        else:
            messages.success(request, f"Host {host.name} was removed.")
            return client_redirect(request, reverse("host-list"))
    return dialog(request, "hpadmin/htmx/host_remove_dialog.html", {"host": host, "error": error})
