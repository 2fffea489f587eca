"""Inventory pages: the overview, search, clusters and hosts.

Lists follow one pattern (``hpadmin.utilities.lists``): a filter form, a sortable whitelist of columns, 50 rows
a page, and one view with two renders (the whole page, or only the table for htmx). Every list runs a fixed
number of queries per page.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count, F, Q, QuerySet
from django.shortcuts import redirect, render
from django.views.decorators.http import require_safe

from hpadmin.access.shortcuts import access_of, admin_required, get_visible, limit_choices
from hpadmin.inventory.models import Cluster, Host, HostNumaNode, HostStatus
from hpadmin.operations.models import Event, MigrationJob
from hpadmin.utilities.htmx import render_two_ways
from hpadmin.utilities.lists import sorted_page, subquery_count
from hpadmin.vms.models import OptimizedFor, Pool, Template, VirtualMachine, VmStatus
from hpadmin.webadmin.affinity.viewmodels import memberships
from scheduler.models import Allocation

from .forms import ClusterFilterForm, HostFilterForm, SearchForm
from .host_actions import host_state
from .topology import attach_usage, host_topology, node_usage

# -- overview and search -----------------------------------------------------------------------------------------


@require_safe
@login_required
def overview(request):
    """Clusters with their host and VM counts by state, migrations in progress and the latest events; users
    without an admin role land in their portal."""
    access = access_of(request)
    if not access.is_admin:
        return redirect("portal-home")
    clusters = access.scope(Cluster.objects.all()).annotate(
        host_count=subquery_count(Host.objects.all(), "cluster"),
        hosts_up=subquery_count(Host.objects.filter(status=HostStatus.UP), "cluster"),
        vm_count=subquery_count(VirtualMachine.objects.all(), "cluster"),
        vms_up=subquery_count(VirtualMachine.objects.exclude(status=VmStatus.DOWN), "cluster"),
        hp_count=subquery_count(VirtualMachine.objects.filter(optimized_for=OptimizedFor.HIGH_PERFORMANCE), "cluster"),
    )
    context = {
        "clusters": clusters,
        "jobs": access.scope(MigrationJob.objects.active()).select_related("vm", "source", "destination")[:10],
        "events": access.scope(Event.objects.select_related("vm", "host"))[:10],
    }
    return render(request, "hpadmin/overview.html", context)


@require_safe
@admin_required
def search(request):
    """Everything whose name contains the query; a single hit opens at once. A query no name can hold is 400."""
    form = SearchForm(request.GET)
    if not form.is_valid():
        return render(request, "hpadmin/search.html", {"form": form, "q": "", "groups": []}, status=400)
    q = form.cleaned_data["q"]
    groups = []
    if q:
        for label, model in (
            ("Clusters", Cluster),
            ("Hosts", Host),
            ("Virtual machines", VirtualMachine),
            ("Templates", Template),
            ("Pools", Pool),
        ):
            hits = list(access_of(request).scope(model.objects.filter(name__icontains=q)).order_by("name")[:20])
            if hits:
                groups.append((label, hits))
        if len(groups) == 1 and len(groups[0][1]) == 1:
            return redirect(groups[0][1][0])
    return render(request, "hpadmin/search.html", {"form": form, "q": q, "groups": groups})


# -- clusters ----------------------------------------------------------------------------------------------------


CLUSTER_SORTS = {"name": "name", "hosts": "host_count", "vms": "vm_count", "policy": "migration_policy"}


@require_safe
@admin_required
def cluster_list(request):
    form = ClusterFilterForm(request.GET)
    queryset = (
        access_of(request)
        .scope(Cluster.objects.all())
        .annotate(
            host_count=subquery_count(Host.objects.all(), "cluster"),
            hosts_up=subquery_count(Host.objects.filter(status=HostStatus.UP), "cluster"),
            vm_count=subquery_count(VirtualMachine.objects.all(), "cluster"),
            vms_up=subquery_count(VirtualMachine.objects.exclude(status=VmStatus.DOWN), "cluster"),
        )
    )
    context = {"form": form, **sorted_page(request, form.filter(queryset), CLUSTER_SORTS, "name")}
    return render_two_ways(request, "hpadmin/cluster_list.html", "hpadmin/htmx/cluster_table.html", context)


CLUSTER_PAGE_HOSTS = 20  # the host list, filtered by cluster, shows them all


@require_safe
@admin_required
def cluster_detail(request, pk: int):
    cluster = get_visible(request, Cluster.objects.all(), pk=pk)
    hosts_by_status = dict(cluster.hosts.values_list("status").annotate(n=Count("pk")))
    vm_counts = {
        row["optimized_for"]: row
        for row in VirtualMachine.objects.filter(cluster=cluster)
        .values("optimized_for")
        .annotate(n=Count("pk"), up=Count("pk", filter=~Q(status=VmStatus.DOWN)))
    }
    context = {
        "cluster": cluster,
        "hosts_by_status": [(label, value, hosts_by_status.get(value, 0)) for value, label in HostStatus.choices],
        "vms_by_type": [
            (label, value, vm_counts.get(value, {}).get("up", 0), vm_counts.get(value, {}).get("n", 0))
            for value, label in OptimizedFor.choices
        ],
        "weights": sorted(cluster.effective_weight_factors().items()),
        "hosts": cluster.hosts.order_by("name")[:CLUSTER_PAGE_HOSTS],
        "host_count": sum(hosts_by_status.values()),
        "events": cluster.events.select_related("vm", "host")[:10],
    }
    return render(request, "hpadmin/cluster_detail.html", context)


# -- hosts -------------------------------------------------------------------------------------------------------


HOST_SORTS = {
    "name": "name",
    "cluster": "cluster__name",
    "status": "status",
    "cpu": "cpu_model",
    "cpus": "cpu_count",
    "memory": "memory_mib",
    "numa": "numa_count",
    "vms": "vm_count",
}


def host_queryset() -> QuerySet:
    return Host.objects.select_related("cluster").annotate(
        numa_count=subquery_count(HostNumaNode.objects.all(), "host"),
        vm_count=subquery_count(VirtualMachine.objects.all(), "host"),
        cpu_count=F("sockets") * F("cores_per_socket") * F("threads_per_core"),
    )


@require_safe
@admin_required
def host_list(request):
    form = limit_choices(HostFilterForm(request.GET), request)
    queryset = access_of(request).scope(host_queryset())
    context = {"form": form, **sorted_page(request, form.filter(queryset), HOST_SORTS, "name")}
    attach_usage(context["rows"])
    return render_two_ways(request, "hpadmin/host_list.html", "hpadmin/htmx/host_table.html", context)


@require_safe
@admin_required
def host_detail(request, pk: int):
    host = get_visible(
        request, Host.objects.select_related("cluster").prefetch_related("cpus", "numa_nodes", "hugepage_pools"), pk=pk
    )
    allocations = list(Allocation.objects.filter(host=host).select_related("vm").order_by("vm__name"))
    usage = node_usage(host, allocations)
    sockets, legend = host_topology(host, allocations, usage)
    context = {
        **host_state(host),
        "sockets": sockets,
        "legend": legend,
        "nodes": list(usage.values()),
        "vms": host.vms.select_related("cluster").order_by("name"),
        "jobs": MigrationJob.objects.touching(host)
        .active()
        .select_related("vm", "source", "destination")
        .order_by("created_at"),
        "events": host.events.select_related("vm")[:10],
        **memberships(host),
    }
    return render(request, "hpadmin/host_detail.html", context)
