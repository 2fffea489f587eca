"""Affinity pages: the lists of groups and labels, their pages, and their New/Edit and Delete dialogs.

Groups hpadmin manages are shown like the others, with why each member is there, and have no Edit or Delete: a
request for them is refused (409) with the reason. Every save and removal goes to the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_safe

from hpadmin.access.roles import Permit
from hpadmin.access.shortcuts import access_of, admin_required, get_visible, limit_choices
from hpadmin.affinity.models import AffinityGroup, AffinityLabel
from hpadmin.operations import audit
from hpadmin.utilities.htmx import client_redirect, render_two_ways, wants_partial
from hpadmin.utilities.lists import sorted_page

from .forms import AffinityGroupFilterForm, AffinityGroupForm, AffinityLabelFilterForm, AffinityLabelForm
from .viewmodels import group_members, group_rows, label_groups, label_rows

MANAGED = (
    "Affinity group {name} is managed by hpadmin, which keeps it current for High Performance VMs: "
    "it cannot be changed or removed."
)


@dataclass(frozen=True)
class Kind:
    """Groups and labels share their dialogs; this says which one a URL is about."""

    model: type[AffinityGroup] | type[AffinityLabel]
    form: type[AffinityGroupForm] | type[AffinityLabelForm]
    slug: str
    label: str
    permit: Permit  # to create, change or remove one


GROUPS = Kind(AffinityGroup, AffinityGroupForm, "affinity-group", "Affinity group", Permit.MANAGE_CLUSTER)
LABELS = Kind(AffinityLabel, AffinityLabelForm, "affinity-label", "Affinity label", Permit.MANAGE_SYSTEM)


def dialog(request, template: str, context: dict, status: int = 200):
    """A dialog: the fragment for htmx, a page holding it otherwise."""
    return render_two_ways(request, "hpadmin/dialog_page.html", template, {**context, "dialog": template}, status)


def refused_if_managed(request, obj: AffinityGroup | AffinityLabel):
    """The refusal of an edit of a group hpadmin manages, or None."""
    if not getattr(obj, "managed", False):
        return None
    context = {"title": f"Affinity group {obj.name}", "message": MANAGED.format(name=obj.name)}
    return dialog(request, "hpadmin/htmx/affinity_refused.html", context, status=409)


# -- groups ------------------------------------------------------------------------------------------------------

GROUP_SORTS = {
    "name": "name",
    "cluster": "cluster__name",
    "priority": "priority",
    "vm_rule": "vm_rule",
    "host_rule": "host_rule",
    "vms": "vm_count",
    "hosts": "host_count",
}


@require_safe
@admin_required
def group_list(request):
    form = limit_choices(AffinityGroupFilterForm(request.GET), request)
    rows = access_of(request).scope(group_rows())
    context = {"form": form, **sorted_page(request, form.filter(rows), GROUP_SORTS, "-priority")}
    return render_two_ways(
        request, "hpadmin/affinity_group_list.html", "hpadmin/htmx/affinity_group_table.html", context
    )


@require_safe
@admin_required
def group_detail(request, pk: int):
    """The group's rules and members, labels with what they stand for in its cluster; for a managed group, why
    each member is there."""
    group = get_visible(request, AffinityGroup.objects.select_related("cluster"), pk=pk)
    context = {"group": group, **group_members(group)}
    return render(request, "hpadmin/affinity_group_detail.html", context)


# -- labels ------------------------------------------------------------------------------------------------------

LABEL_SORTS = {"name": "name", "vms": "vm_count", "hosts": "host_count", "groups": "group_count"}


@require_safe
@admin_required
def label_list(request):
    form = AffinityLabelFilterForm(request.GET)
    rows = access_of(request).scope(label_rows())
    context = {"form": form, **sorted_page(request, form.filter(rows), LABEL_SORTS, "name")}
    return render_two_ways(
        request, "hpadmin/affinity_label_list.html", "hpadmin/htmx/affinity_label_table.html", context
    )


@require_safe
@admin_required
def label_detail(request, pk: int):
    """The label's VMs and hosts (of every cluster) and the groups that name it."""
    label = get_visible(request, AffinityLabel.objects.all(), pk=pk)
    access = access_of(request)
    context = {
        "label": label,
        "vms": access.scope(label.vms.select_related("cluster", "host")).order_by("name"),
        "hosts": access.scope(label.hosts.select_related("cluster")).order_by("name"),
        "groups": label_groups(label),
    }
    return render(request, "hpadmin/affinity_label_detail.html", context)


# -- New, Edit, Delete of both -----------------------------------------------------------------------------------


@admin_required
def edit(request, kind: Kind, pk: int | None = None):
    """New or Edit: the model's ``clean()`` judges the members chosen, its errors next to their fields. A new
    group's VMs and hosts follow the cluster chosen."""
    if pk:
        instance = get_visible(request, kind.model.objects.all(), kind.permit, pk=pk)
    else:
        if not access_of(request).anywhere(kind.permit):
            raise PermissionDenied(f"You may not create {kind.label.lower()}s.")
        instance = kind.model()
    if refused := refused_if_managed(request, instance):
        return refused
    url = request.path
    if request.method == "POST":
        before = audit.snapshot(instance) if pk else None  # before the form writes the input onto the instance
        form = limit_choices(kind.form(request.POST, instance=instance, url=url), request, cluster=kind.permit)
        if form.is_valid():
            with transaction.atomic():
                obj = form.save()
                audit.record_saved(obj, before, request.user)
            messages.success(request, f"{kind.label} {obj.name} {'saved' if pk else 'created'}.")
            return client_redirect(request, reverse(f"{kind.slug}-detail", args=[obj.pk]))
    elif request.GET.get("_changed") == "cluster" and kind is GROUPS and not pk:
        form = limit_choices(
            AffinityGroupForm.refreshed(request.GET, instance=instance, url=url), request, cluster=kind.permit
        )
        if wants_partial(request):
            return render(request, "hpadmin/htmx/affinity_group_fields.html", {"form": form})
    else:
        initial = {"cluster": request.GET["cluster"]} if kind is GROUPS and request.GET.get("cluster") else {}
        form = limit_choices(kind.form(instance=instance, initial=initial, url=url), request, cluster=kind.permit)
    title = f"Edit {kind.label} {instance.name}" if pk else f"New {kind.label}"
    context = {"form": form, "kind": kind, "object": instance if pk else None, "title": title, "url": url}
    return dialog(request, f"hpadmin/htmx/{kind.slug.replace('-', '_')}_form.html", context)


@admin_required
def delete(request, kind: Kind, pk: int):
    """Delete: a confirmation naming what the group or label holds."""
    obj = get_visible(request, kind.model.objects.all(), kind.permit, pk=pk)
    if refused := refused_if_managed(request, obj):
        return refused
    if request.method == "POST":
        with transaction.atomic():
            obj.delete()
            audit.record_removed(obj, request.user)
        messages.success(request, f"{kind.label} {obj.name} was removed.")
        return client_redirect(request, reverse(f"{kind.slug}-list"))
    context = {
        "object": obj,
        "kind": kind,
        "title": f"Remove {kind.label} {obj.name}",
        "url": request.path,
        "groups": label_groups(obj) if kind is LABELS else [],
    }
    return dialog(request, "hpadmin/htmx/affinity_delete_dialog.html", context)
