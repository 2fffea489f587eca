"""The New/Edit dialog of VMs, templates and pools: tabs, the HP profile on a type change, live checks of
typed pinnings, and oVirt's HP recommendations before the save.

Dialogs are fragments loaded into ``#modal-content``; without htmx the same view renders them as a page.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, render

from hpadmin.operations import audit
from hpadmin.utilities.htmx import client_redirect, render_two_ways, wants_partial
from hpadmin.utilities.views import staff_required
from hpadmin.vms.profiles import prepare_new
from hpadmin.webadmin.vms.forms.dialog import config_form_class
from hpadmin.webadmin.vms.viewmodels import KINDS, pinning_preview


@staff_required
def config_form(request, kind: str, pk: int | None = None):
    """New or Edit of a VM, template or pool: tabs, HP profile on type change, live checks, HP recommendations."""
    spec = KINDS[kind]
    instance = get_object_or_404(spec.model, pk=pk) if pk else spec.model()
    instance.apply_next_run()  # a running VM's edit goes on from the changes that wait for its next start
    form_class = config_form_class(spec.model)
    url = request.path
    context = {"kind": spec, "object": instance if pk else None, "url": url, "active_tab": "general"}

    if request.method == "POST":
        before = audit.snapshot(instance) if pk else None  # before the form writes the input onto the instance
        form = form_class(request.POST, instance=instance, url=url)
        context["active_tab"] = request.POST.get("_tab") or "general"
        if form.is_valid():
            recommendations = form.hp_recommendations()
            if recommendations and not request.POST.get("confirm_hp"):
                context["recommendations"] = recommendations
            else:
                config = form.save()
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
        form = form_class(request.GET, instance=instance, url=url)
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
        form, heading, changes = form_class.refreshed(request.GET, instance=instance, changed=changed, url=url)
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
        form = form_class(instance=instance, url=url, initial=initial)
    context["form"] = form
    return render_two_ways(request, "hpadmin/vm_form_page.html", "hpadmin/htmx/vm_form.html", context)
