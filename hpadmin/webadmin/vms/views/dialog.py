"""The New/Edit dialog of VMs, templates and pools: tabs, the HP profile on a type change, live checks of
typed pinnings, and oVirt's HP recommendations before the save.

Dialogs are fragments loaded into ``#modal-content``; without htmx the same view renders them as a page.
"""

from __future__ import annotations

from functools import partial

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import render

from hpadmin.access.shortcuts import access_of, admin_required, get_visible, limit_choices
from hpadmin.operations import audit
from hpadmin.utilities.htmx import client_redirect, render_two_ways, wants_partial
from hpadmin.vms.models import VirtualMachine
from hpadmin.vms.profiles import prepare_new
from hpadmin.webadmin.vms.forms.dialog import config_form_class
from hpadmin.webadmin.vms.viewmodels import KINDS, pinning_preview


def saved(form):
    """The form's object saved, or None with the errors on the form: a rule checked again as it is written (the
    owner's quota, under its lock) may refuse what the form accepted a moment before."""
    try:
        return form.save()
    except ValidationError as exc:
        form.add_error(None, exc)
        return None


@admin_required
def config_form(request, kind: str, pk: int | None = None):
    """New or Edit of a VM, template or pool: tabs, HP profile on type change, live checks, HP recommendations.
    A new one goes only to a cluster where the user may create it; a new VM belongs to its creator."""
    spec = KINDS[kind]
    if pk:
        instance = get_visible(request, spec.model.objects.all(), spec.edit_permit, pk=pk)
    else:
        if not access_of(request).anywhere(spec.create_permit):
            raise PermissionDenied(f"You may not create {spec.plural.lower()}.")
        instance = spec.model(owner=request.user) if spec.model is VirtualMachine else spec.model()
    instance.apply_next_run()  # a running VM's edit goes on from the changes that wait for its next start
    form_class = config_form_class(spec.model)
    scope = partial(limit_choices, request=request, cluster=spec.create_permit)
    url = request.path
    context = {"kind": spec, "object": instance if pk else None, "url": url, "active_tab": "general"}

    if request.method == "POST":
        before = audit.snapshot(instance) if pk else None  # before the form writes the input onto the instance
        form = form_class(request.POST, instance=instance, url=url, scope=scope)
        context["active_tab"] = request.POST.get("_tab") or "general"
        if form.is_valid():
            recommendations = form.hp_recommendations()
            if recommendations and not request.POST.get("confirm_hp"):
                context["recommendations"] = recommendations
            elif (config := saved(form)) is not None:
                audit.record_saved(config, before, request.user)
                later = (
                    " Changes to its size and placement apply at its next start."
                    if getattr(config, "next_run", None)
                    else ""
                )
                messages.success(request, f"{spec.label} {config.name} {'saved' if pk else 'created'}.{later}")
                return client_redirect(request, config.get_absolute_url())
    elif "_validate" in request.GET:
        name = request.GET["_validate"]
        form = form_class(request.GET, instance=instance, url=url, scope=scope)
        if name not in form.fields:
            raise Http404("No such field.")
        form.is_valid()
        preview = pinning_preview(form[name].value() or "") if name == "cpu_pinning" else []
        return render(request, "hpadmin/htmx/field_feedback.html", {"field": form[name], "preview": preview})
    elif "_changed" in request.GET or (not pk and "template" in request.GET):
        # A field that brings defaults along changed (or "New VM" from a template): re-render from the input.
        if not pk:
            prepare_new(instance, {})
        changed = request.GET.get("_changed", "template")
        form, heading, changes = form_class.refreshed(
            request.GET, instance=instance, changed=changed, url=url, scope=scope
        )
        context.update(
            note_heading=heading,
            changes=[form.describe(change) for change in changes],
            active_tab=request.GET.get("_tab") or "general",
        )
        if "_changed" in request.GET and wants_partial(request):
            return render(request, "hpadmin/htmx/vm_form_fields.html", {**context, "form": form})
    else:
        if not pk:
            prepare_new(instance, {})
        initial = {"cluster": request.GET["cluster"]} if not pk and request.GET.get("cluster") else {}
        form = form_class(instance=instance, url=url, initial=initial, scope=scope)
    context["form"] = form
    return render_two_ways(request, "hpadmin/vm_form_page.html", "hpadmin/htmx/vm_form.html", context)
