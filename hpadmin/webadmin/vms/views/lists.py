"""The VM list, and the template and pool lists."""

from __future__ import annotations

from django.db.models import F, Prefetch, QuerySet
from django.views.decorators.http import require_safe

from hpadmin.access.shortcuts import access_of, admin_required, limit_choices
from hpadmin.operations.models import MigrationJob
from hpadmin.utilities.htmx import render_two_ways
from hpadmin.utilities.lists import sorted_page
from hpadmin.vms.models import Pool, VirtualMachine
from hpadmin.webadmin.vms.forms.filters import ConfigFilterForm, VmFilterForm
from hpadmin.webadmin.vms.viewmodels import KINDS

VM_SORTS = {
    "name": "name",
    "cluster": "cluster__name",
    "status": "status",
    "host": "host__name",
    "type": "optimized_for",
    "mode": "migration_mode",
    "memory": "memory_mib",
    "vcpus": "vcpu_count",
    "pinning": "cpu_pinning_policy",
}


def vm_queryset() -> QuerySet:
    """VMs with what a list row shows: cluster, host and any migration in progress, in three queries a page."""
    active_jobs = MigrationJob.objects.active().select_related("destination")
    return (
        VirtualMachine.objects.select_related("cluster", "host")
        .annotate(vcpu_count=F("sockets") * F("cores") * F("threads"))
        .prefetch_related(Prefetch("migration_jobs", queryset=active_jobs, to_attr="active_jobs"))
    )


@require_safe
@admin_required
def vm_list(request):
    form = limit_choices(VmFilterForm(request.GET), request)
    queryset = access_of(request).scope(vm_queryset())
    context = {"form": form, **sorted_page(request, form.filter(queryset), VM_SORTS, "name")}
    return render_two_ways(request, "hpadmin/vm_list.html", "hpadmin/htmx/vm_table.html", context)


CONFIG_SORTS = {"name": "name", "cluster": "cluster__name", "type": "optimized_for", "mode": "migration_mode"}


@require_safe
@admin_required
def config_list(request, kind: str):
    """Templates or pools."""
    spec = KINDS[kind]
    form = limit_choices(ConfigFilterForm(request.GET), request)
    queryset = access_of(request).scope(spec.model.objects.select_related("cluster"))
    if spec.model is Pool:
        queryset = queryset.select_related("template")
    context = {"form": form, "kind": spec, **sorted_page(request, form.filter(queryset), CONFIG_SORTS, "name")}
    return render_two_ways(request, "hpadmin/config_list.html", "hpadmin/htmx/config_table.html", context)
