"""Permissions (who holds which role where), with Add Permission and Remove, and users with their quotas.

The list shows the grants the user may see (``Access.grants``); opened from a cluster's or a VM's page it shows
that object's, and Add Permission grants on it. Whoever may not grant a role gets a form error, not a grant.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_safe

from hpadmin.access.models import Grant
from hpadmin.access.roles import Permit
from hpadmin.access.services import grant_role, may_grant, revoke, set_quota
from hpadmin.access.shortcuts import access_of, admin_required, get_visible, limit_choices
from hpadmin.inventory.models import Cluster
from hpadmin.utilities.htmx import client_redirect, render_two_ways
from hpadmin.utilities.lists import sorted_page
from hpadmin.vms.models import Quota, VirtualMachine

from .forms import GrantFilterForm, GrantForm, QuotaForm, UserFilterForm

GRANT_SORTS = {"role": "role", "user": "user__username", "group": "group__name", "created": "created_at"}


def dialog(request, context: dict, template: str = "hpadmin/htmx/form_dialog.html"):
    """A dialog: the fragment for htmx, a page holding it otherwise."""
    return render_two_ways(request, "hpadmin/dialog_page.html", template, {**context, "dialog": template})


def scope_object(request) -> tuple[str, Cluster | VirtualMachine | None]:
    """The cluster (``?cluster=``) or VM (``?vm=``) the page is about, among those the user may see, with the
    query parameter that named it."""
    for name, model in (("vm", VirtualMachine), ("cluster", Cluster)):
        if value := request.GET.get(name):
            if not value.isdigit():
                raise Http404(f"No such {name}.")
            return name, get_visible(request, model.objects.all(), pk=int(value))
    return "", None


@require_safe
@admin_required
def permission_list(request):
    param, scope = scope_object(request)
    grants = access_of(request).grants(Grant.objects.select_related("user", "group", "cluster", "vm", "granted_by"))
    if isinstance(scope, VirtualMachine):
        grants = grants.filter(vm=scope)
    elif isinstance(scope, Cluster):
        grants = grants.filter(cluster=scope)
    form = GrantFilterForm(request.GET)
    context = {"form": form, "scope": scope, **sorted_page(request, form.filter(grants), GRANT_SORTS, "role")}
    access = access_of(request)
    for grant in context["rows"]:
        grant.revocable = may_grant(access, grant)
    if access.can(Permit.GRANT, scope) if scope else access.anywhere(Permit.GRANT):
        context["add_url"] = reverse("grant-new") + (f"?{param}={scope.pk}" if scope else "")
    return render_two_ways(request, "hpadmin/permission_list.html", "hpadmin/htmx/permission_table.html", context)


@admin_required
def grant_new(request):
    """Add Permission: on the page's cluster or VM, else on a cluster or the system."""
    if not access_of(request).anywhere(Permit.GRANT):
        raise PermissionDenied("You may not grant roles.")
    _, scope = scope_object(request)
    form = GrantForm(request.POST or None, access=access_of(request))
    limit_choices(form, request, cluster=Permit.GRANT, vm=Permit.GRANT)
    if isinstance(scope, VirtualMachine):
        del form.fields["cluster"]
        form.fields["vm"].initial, form.fields["vm"].disabled = scope.pk, True
    else:
        del form.fields["vm"]
        if scope is not None:
            form.fields["cluster"].initial, form.fields["cluster"].disabled = scope.pk, True
    if request.method == "POST" and form.is_valid():
        grant = grant_role(form.instance, access_of(request), request.user)
        messages.success(request, f"{grant} added.")
        return client_redirect(request, _list_url(grant))
    context = {"form": form, "title": "Add Permission", "url": request.get_full_path()}
    return dialog(request, context)


@admin_required
def grant_remove(request, pk: int):
    grant = get_object_or_404(
        access_of(request).grants(Grant.objects.select_related("user", "group", "cluster", "vm")), pk=pk
    )
    if request.method == "POST":
        try:
            revoke(grant, access_of(request), request.user)
        except PermissionDenied as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{grant} removed.")
        return client_redirect(request, _list_url(grant))
    context = {"grant": grant, "title": "Remove Permission", "url": request.path}
    return dialog(request, context, "hpadmin/htmx/grant_remove_dialog.html")


def _list_url(grant: Grant) -> str:
    url = reverse("permission-list")
    if grant.vm_id:
        return f"{url}?vm={grant.vm_id}"
    return f"{url}?cluster={grant.cluster_id}" if grant.cluster_id else url


# -- users and quotas --------------------------------------------------------------------------------------------

USER_SORTS = {"username": "username", "grants": "grant_count", "vms": "vm_count"}


@require_safe
@admin_required
def user_list(request):
    """Users with how many roles they hold, how many VMs they own and their quota; for those who grant roles."""
    if not access_of(request).anywhere(Permit.GRANT):
        raise PermissionDenied("Only those who may grant roles see the users.")
    users = (
        get_user_model()
        .objects.select_related("quota")
        .annotate(grant_count=Count("grants", distinct=True), vm_count=Count("vms", distinct=True))
    )
    form = UserFilterForm(request.GET)
    context = {"form": form, **sorted_page(request, form.filter(users), USER_SORTS, "username")}
    return render_two_ways(request, "hpadmin/user_list.html", "hpadmin/htmx/user_table.html", context)


@admin_required
def quota_edit(request, pk: int):
    """Set a user's quota; only the system's administrators do."""
    if not access_of(request).can(Permit.MANAGE_SYSTEM):
        raise PermissionDenied("Only the system's administrators set quotas.")
    user = get_object_or_404(get_user_model(), pk=pk)
    quota = Quota.objects.filter(user=user).first() or Quota(user=user)
    form = QuotaForm(request.POST or None, instance=quota)
    if request.method == "POST" and form.is_valid():
        set_quota(form.instance, request.user)
        messages.success(request, f"Quota of {user.get_username()} saved.")
        return client_redirect(request, reverse("user-list"))
    context = {"form": form, "title": f"Quota of {user.get_username()}", "url": request.path}
    return dialog(request, context)
