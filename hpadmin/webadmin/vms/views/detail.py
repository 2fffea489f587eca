"""A VM's page (its placement and migrations refresh on their own while it migrates), and a template's or
a pool's page."""

from __future__ import annotations

from django.shortcuts import render
from django.views.decorators.http import require_safe

from hpadmin.access.shortcuts import admin_required, get_visible
from hpadmin.utilities.htmx import render_partial, wants_partial
from hpadmin.vms.models import VirtualMachine
from hpadmin.webadmin.affinity.viewmodels import memberships
from hpadmin.webadmin.vms.viewmodels import KINDS, configuration_sections, next_run_rows, vm_panels, vnuma_rows


@require_safe
@admin_required
def vm_detail(request, pk: int):
    vm = get_visible(
        request, VirtualMachine.objects.select_related("cluster", "host", "template", "pool", "owner"), pk=pk
    )
    if wants_partial(request):
        return render_partial(request, "hpadmin/htmx/vm_panels.html", vm_panels(vm))
    hosts = list(vm.placement_hosts.order_by("name"))
    context = {
        **vm_panels(vm),
        "kind": KINDS["vms"],
        "config": vm,
        "sections": configuration_sections(vm),
        "placement_hosts": hosts,
        "vnuma_rows": vnuma_rows(vm, hosts),
        "next_run": next_run_rows(vm),
        **memberships(vm),
        "events": vm.events.select_related("host", "user")[:15],
    }
    return render(request, "hpadmin/vm_detail.html", context)


@require_safe
@admin_required
def config_detail(request, kind: str, pk: int):
    """A template's or a pool's page."""
    spec = KINDS[kind]
    config = get_visible(request, spec.model.objects.select_related("cluster"), pk=pk)
    vms = config.vms.select_related("host").order_by("name")[:100]
    hosts = list(config.placement_hosts.order_by("name"))
    context = {
        "kind": spec,
        "config": config,
        "sections": configuration_sections(config),
        "placement_hosts": hosts,
        "vnuma_rows": vnuma_rows(config, hosts),
        "vms": vms,
    }
    return render(request, "hpadmin/config_detail.html", context)
