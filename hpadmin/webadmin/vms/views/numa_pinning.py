"""The NUMA pinning editor: vNUMA nodes onto host NUMA nodes on each placement host, checked as the admin drags
and saved at once."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import render

from hpadmin.access.shortcuts import admin_required, get_visible
from hpadmin.operations import audit
from hpadmin.utilities.htmx import client_redirect, render_two_ways
from hpadmin.vms.services import save_numa_nodes
from hpadmin.webadmin.vms.forms.numa_editor import NumaPinningForm
from hpadmin.webadmin.vms.viewmodels import KINDS, numa_editor


@admin_required
def numa_pinning(request, kind: str, pk: int):
    """The NUMA pinning editor: vNUMA nodes onto host NUMA nodes on each placement host; saved atomically."""
    spec = KINDS[kind]
    config = get_visible(request, spec.model.objects.all(), spec.edit_permit, pk=pk)
    config.apply_next_run()
    hosts = list(config.placement_hosts.prefetch_related("numa_nodes", "hugepage_pools", "cpus").order_by("name"))
    form = NumaPinningForm(config, hosts, request.POST or None)
    checking = "_check" in request.POST
    general: list[str] = []
    if request.method == "POST" and not checking and form.is_valid():
        before = audit.snapshot(config)
        try:
            saved = save_numa_nodes(config, form.numa_nodes(), hosts)
        except ValidationError as exc:
            general = list(exc.messages)
        else:
            audit.record_numa_pinning(saved, before, request.user)
            messages.success(request, f"NUMA pinning of {config.name} saved.")
            return client_redirect(request, config.get_absolute_url())
    if form.is_bound and not form.is_valid():
        general = [message for errors in form.errors.values() for message in errors]
    context = {
        "kind": spec,
        "config": config,
        "url": request.path,
        "form": form,
        **numa_editor(config, hosts, form),
    }
    context["general"] = general or context["general"]
    if checking:
        return render(request, "hpadmin/htmx/numa_editor_body.html", context)
    return render_two_ways(request, "hpadmin/numa_editor_page.html", "hpadmin/htmx/numa_editor.html", context)
