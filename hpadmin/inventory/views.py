"""Inventory pages (overview, clusters, hosts, search) and the list helpers every hpadmin list uses.

Lists follow one pattern: a filter form, a sortable whitelist of columns, 50 rows a page, and one view with two
renders (the whole page, or only the table for htmx). Every list runs a fixed number of queries per page.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_safe

from hpadmin.operations.models import ACTIVE_JOB_STATES, Event, MigrationJob
from hpadmin.vms.models import OptimizedFor, Pool, Template, VirtualMachine, VmStatus
from scheduler.models import Allocation, AllocationState

from .forms import ClusterFilterForm, HostFilterForm
from .models import Cluster, Host, HostNumaNode, HostStatus

PAGE_SIZE = 50


# -- shared helpers ----------------------------------------------------------------------------------------------


def staff_required(view):
    """Logged-in users only; those who are not staff get 403 (they may look, not change)."""

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only administrators can do this.")
        return view(request, *args, **kwargs)

    return wrapper


def wants_partial(request) -> bool:
    """An htmx request for a fragment (not a boosted navigation, not a history restore)."""
    htmx = request.htmx
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def render_two_ways(request, page_template: str, partial_template: str, context: dict, status: int = 200):
    """One view, two renders: the full page, or the fragment the page includes when htmx asks for it."""
    template = partial_template if wants_partial(request) else page_template
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def sorted_page(request, queryset: QuerySet, sorts: dict[str, str], default: str) -> dict:
    """Order by a whitelisted ``?sort=`` key (``-key`` for descending) and cut the ``?page=``.

    The sort and the cut run on primary keys only; the page's rows (with their joins and prefetches) are then
    loaded by key. Sorting narrow rows keeps deep pages of a 10,000-row list fast.
    """
    sort = request.GET.get("sort") or default
    key = sort.removeprefix("-")
    if key not in sorts:
        sort, key = default, default.removeprefix("-")
    order = sorts[key]
    keys = (
        queryset.select_related(None)
        .prefetch_related(None)
        .order_by(f"-{order}" if sort.startswith("-") else order, "pk")
    )
    page = Paginator(keys.values_list("pk", flat=True), PAGE_SIZE).get_page(request.GET.get("page"))
    ids = list(page.object_list)
    rows = queryset.in_bulk(ids) if ids else {}
    page.object_list = [rows[pk] for pk in ids]
    return {"page": page, "rows": page.object_list, "sort": sort}


def subquery_count(queryset: QuerySet, link: str):
    """A correlated COUNT: evaluated only for the rows of the page unless the list is sorted by it."""
    counted = queryset.filter(**{link: OuterRef("pk")}).order_by().values(link).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


# -- overview and search -----------------------------------------------------------------------------------------


@require_safe
@login_required
def overview(request):
    """Clusters with their host and VM counts by state, migrations in progress and the latest events."""
    clusters = Cluster.objects.annotate(
        host_count=subquery_count(Host.objects.all(), "cluster"),
        hosts_up=subquery_count(Host.objects.filter(status=HostStatus.UP), "cluster"),
        vm_count=subquery_count(VirtualMachine.objects.all(), "cluster"),
        vms_up=subquery_count(VirtualMachine.objects.exclude(status=VmStatus.DOWN), "cluster"),
        hp_count=subquery_count(VirtualMachine.objects.filter(optimized_for=OptimizedFor.HIGH_PERFORMANCE), "cluster"),
    )
    context = {
        "clusters": clusters,
        "jobs": MigrationJob.objects.filter(state__in=ACTIVE_JOB_STATES).select_related("vm", "source", "destination")[
            :10
        ],
        "events": Event.objects.select_related("vm", "host")[:10],
    }
    return render(request, "hpadmin/overview.html", context)


@require_safe
@login_required
def search(request):
    """Everything whose name contains the query; a single hit opens at once."""
    q = request.GET.get("q", "").strip()
    groups = []
    if q:
        for label, model in (
            ("Clusters", Cluster),
            ("Hosts", Host),
            ("Virtual machines", VirtualMachine),
            ("Templates", Template),
            ("Pools", Pool),
        ):
            hits = list(model.objects.filter(name__icontains=q).order_by("name")[:20])
            if hits:
                groups.append((label, hits))
        if len(groups) == 1 and len(groups[0][1]) == 1:
            return redirect(groups[0][1][0])
    return render(request, "hpadmin/search.html", {"q": q, "groups": groups})


# -- clusters ----------------------------------------------------------------------------------------------------


CLUSTER_SORTS = {"name": "name", "hosts": "host_count", "vms": "vm_count", "policy": "migration_policy"}


@require_safe
@login_required
def cluster_list(request):
    form = ClusterFilterForm(request.GET)
    queryset = Cluster.objects.annotate(
        host_count=subquery_count(Host.objects.all(), "cluster"),
        hosts_up=subquery_count(Host.objects.filter(status=HostStatus.UP), "cluster"),
        vm_count=subquery_count(VirtualMachine.objects.all(), "cluster"),
        vms_up=subquery_count(VirtualMachine.objects.exclude(status=VmStatus.DOWN), "cluster"),
    )
    context = {"form": form, **sorted_page(request, form.filter(queryset), CLUSTER_SORTS, "name")}
    return render_two_ways(request, "hpadmin/cluster_list.html", "hpadmin/htmx/cluster_table.html", context)


@require_safe
@login_required
def cluster_detail(request, pk: int):
    cluster = get_object_or_404(Cluster, pk=pk)
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


def attach_usage(hosts) -> None:
    """Give each host ``pinned_cpus`` and ``allocated_mib`` (memory and hugepages held by its allocations),
    from one query for the whole page."""
    by_host = defaultdict(list)
    for row in Allocation.objects.filter(host__in=hosts).only(
        "host_id", "exclusive_cpus", "shared_cpus", "memory_mib", "hugepages"
    ):
        by_host[row.host_id].append(row)
    for host in hosts:
        pinned: set[int] = set()
        allocated = 0.0
        for row in by_host[host.pk]:
            pinned.update(row.exclusive_cpus, row.shared_cpus)
            allocated += sum(row.memory_mib.values())
            allocated += sum(
                int(size) * pages / 1024 for sizes in row.hugepages.values() for size, pages in sizes.items()
            )
        host.pinned_cpus = len(pinned)
        host.allocated_mib = allocated
        host.memory_used_percent = round(100 * allocated / host.memory_mib) if host.memory_mib else 0


@require_safe
@login_required
def host_list(request):
    form = HostFilterForm(request.GET)
    context = {"form": form, **sorted_page(request, form.filter(host_queryset()), HOST_SORTS, "name")}
    attach_usage(context["rows"])
    return render_two_ways(request, "hpadmin/host_list.html", "hpadmin/htmx/host_table.html", context)


@dataclass
class CpuCell:
    id: int
    online: bool
    holders: list[tuple[Allocation, str]] = field(default_factory=list)  # (allocation, "exclusive"|"shared")


@dataclass
class NodeUsage:
    """One host NUMA node (index None: a host without NUMA) with free = capacity minus allocations."""

    index: int | None
    memory_mib: int
    hugepage_mib: float = 0
    allocated_mib: int = 0
    hugepages: list[dict] = field(default_factory=list)  # size_kib, total, used, free

    @property
    def free_mib(self) -> float:
        return self.memory_mib - self.hugepage_mib - self.allocated_mib

    @property
    def small_total_mib(self) -> float:
        return self.memory_mib - self.hugepage_mib


def node_usage(host: Host, allocations: list[Allocation]) -> dict[int | None, NodeUsage]:
    """Memory and hugepages per host node, as free = capacity minus allocations (active and pending)."""
    numa = list(host.numa_nodes.all())
    nodes = {n.index: NodeUsage(n.index, n.memory_mib) for n in numa} or {None: NodeUsage(None, host.memory_mib)}

    def key(raw: str) -> int | None:
        return int(raw) if numa else None

    pools = defaultdict(int)
    for pool in host.hugepage_pools.all():
        if pool.node_index in nodes or not numa:
            pools[(pool.node_index if numa else None, pool.size_kib)] += pool.total
    used = defaultdict(int)
    for row in allocations:
        for raw, mib in row.memory_mib.items():
            if key(raw) in nodes:
                nodes[key(raw)].allocated_mib += mib
        for raw, sizes in row.hugepages.items():
            for size, pages in sizes.items():
                used[(key(raw), int(size))] += pages
    for (index, size), total in sorted(pools.items(), key=lambda item: (item[0][0] or 0, item[0][1])):
        node = nodes[index]
        node.hugepage_mib += total * size / 1024
        taken = used[(index, size)]
        node.hugepages.append({"size_kib": size, "total": total, "used": taken, "free": total - taken})
    return nodes


def host_topology(
    host: Host, allocations: list[Allocation], usage: dict[int | None, NodeUsage]
) -> tuple[list[dict], list[dict]]:
    """Sockets -> NUMA nodes -> cores -> threads, each thread with the VMs holding it; and the colour legend."""
    vms = sorted({row.vm for row in allocations}, key=lambda vm: vm.name)
    colour = {vm.pk: i % 10 for i, vm in enumerate(vms)}
    cells = {cpu.cpu_id: CpuCell(cpu.cpu_id, cpu.online) for cpu in host.cpus.all()}
    for row in allocations:
        for cpu in row.exclusive_cpus:
            if cpu in cells:
                cells[cpu].holders.append((row, "exclusive"))
        for cpu in row.shared_cpus:
            if cpu in cells:
                cells[cpu].holders.append((row, "shared"))
    tree: dict[int, dict[int | None, dict[int, list[CpuCell]]]] = defaultdict(lambda: defaultdict(dict))
    for cpu in host.cpus.all():
        node = cpu.numa_node if None not in usage else None
        tree[cpu.socket][node].setdefault(cpu.core, []).append(cells[cpu.cpu_id])
    sockets = [
        {
            "index": socket,
            "nodes": [
                {
                    "usage": usage.get(node),
                    "index": node,
                    "cores": [sorted(t, key=lambda c: c.id) for t in cores.values()],
                }
                for node, cores in sorted(nodes.items(), key=lambda item: -1 if item[0] is None else item[0])
            ],
        }
        for socket, nodes in sorted(tree.items())
    ]
    for socket in sockets:
        for node in socket["nodes"]:
            node["cores"].sort(key=lambda threads: threads[0].id)
            for threads in node["cores"]:
                for cell in threads:
                    cell.colours = [(colour[row.vm_id], kind, row.state) for row, kind in cell.holders]
    legend = []
    for vm in vms:
        rows = [row for row in allocations if row.vm_id == vm.pk]
        legend.append(
            {
                "vm": vm,
                "colour": colour[vm.pk],
                "states": sorted({row.state for row in rows}),
                "exclusive": sorted({c for row in rows for c in row.exclusive_cpus}),
                "shared": sorted({c for row in rows for c in row.shared_cpus}),
                "memory_mib": sum(row.total_memory_mib for row in rows),
                "hugepages": sorted({int(size) for row in rows for sizes in row.hugepages.values() for size in sizes}),
                "hugepage_mib": sum(
                    int(size) * pages / 1024
                    for row in rows
                    for sizes in row.hugepages.values()
                    for size, pages in sizes.items()
                ),
            }
        )
    return sockets, legend


@require_safe
@login_required
def host_detail(request, pk: int):
    host = get_object_or_404(
        Host.objects.select_related("cluster").prefetch_related("cpus", "numa_nodes", "hugepage_pools"), pk=pk
    )
    allocations = list(
        Allocation.objects.filter(host=host, state__in=[AllocationState.ACTIVE, AllocationState.PENDING])
        .select_related("vm")
        .order_by("vm__name")
    )
    usage = node_usage(host, allocations)
    sockets, legend = host_topology(host, allocations, usage)
    context = {
        "host": host,
        "sockets": sockets,
        "legend": legend,
        "nodes": list(usage.values()),
        "vms": host.vms.select_related("cluster").order_by("name"),
        "jobs": MigrationJob.objects.filter(Q(source=host) | Q(destination=host), state__in=ACTIVE_JOB_STATES)
        .select_related("vm", "source", "destination")
        .order_by("created_at"),
        "events": host.events.select_related("vm")[:10],
    }
    return render(request, "hpadmin/host_detail.html", context)
