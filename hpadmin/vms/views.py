"""VM, template and pool pages; the New/Edit dialog, the NUMA pinning editor, the Migrate dialog, Start and Stop.

Dialogs are fragments loaded into ``#modal-content``; without htmx the same view renders them as a page.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import transaction
from django.db.models import F, Prefetch, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import capfirst
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import HttpResponseClientRedirect

from hpadmin.inventory.views import node_usage, render_two_ways, sorted_page, staff_required, wants_partial
from hpadmin.operations.models import ACTIVE_JOB_STATES, MigrationJob
from hpadmin.operations.services import OperationError, migrate_vms, migration_candidates, start_vm, stop_vm
from scheduler.core.cpuset import PinningSyntaxError, format_cpuset, parse_pinning
from scheduler.models import Allocation, AllocationState

from .forms import (
    TABS,
    ConfigFilterForm,
    MigrateForm,
    NumaPinningForm,
    VmFilterForm,
    config_form_class,
)
from .models import Pool, Template, VirtualMachine, VmConfig, VmStatus
from .profiles import prepare_new


@dataclass(frozen=True)
class Kind:
    """VMs, templates and pools share pages; this says which one a URL is about."""

    model: type[VmConfig]
    slug: str
    label: str
    plural: str


KINDS = {
    "vms": Kind(VirtualMachine, "vm", "Virtual machine", "Virtual machines"),
    "templates": Kind(Template, "template", "Template", "Templates"),
    "pools": Kind(Pool, "pool", "Pool", "Pools"),
}


def client_redirect(request, url: str):
    """Send the browser to ``url``: htmx follows HX-Redirect, a plain form post a 302."""
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def back_to(request, fallback: str):
    """Where an action button came from: the page htmx reports, a safe ``next``, or ``fallback``."""
    candidates = [request.htmx.current_url if request.htmx else None, request.POST.get("next")]
    for url in candidates:
        if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}):
            return client_redirect(request, url)
    return client_redirect(request, fallback)


# -- lists -------------------------------------------------------------------------------------------------------


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
    active_jobs = MigrationJob.objects.filter(state__in=ACTIVE_JOB_STATES).select_related("destination")
    return (
        VirtualMachine.objects.select_related("cluster", "host")
        .annotate(vcpu_count=F("sockets") * F("cores") * F("threads"))
        .prefetch_related(Prefetch("migration_jobs", queryset=active_jobs, to_attr="active_jobs"))
    )


@require_safe
@login_required
def vm_list(request):
    form = VmFilterForm(request.GET)
    context = {"form": form, **sorted_page(request, form.filter(vm_queryset()), VM_SORTS, "name")}
    return render_two_ways(request, "hpadmin/vm_list.html", "hpadmin/htmx/vm_table.html", context)


CONFIG_SORTS = {"name": "name", "cluster": "cluster__name", "type": "optimized_for", "mode": "migration_mode"}


@require_safe
@login_required
def config_list(request, kind: str):
    """Templates or pools."""
    spec = KINDS[kind]
    form = ConfigFilterForm(request.GET)
    queryset = spec.model.objects.select_related("cluster")
    if spec.model is Pool:
        queryset = queryset.select_related("template")
    context = {"form": form, "kind": spec, **sorted_page(request, form.filter(queryset), CONFIG_SORTS, "name")}
    return render_two_ways(request, "hpadmin/config_list.html", "hpadmin/htmx/config_table.html", context)


# -- detail pages ------------------------------------------------------------------------------------------------


def display_value(config: VmConfig, field) -> object:
    """A configuration value as the dialog words it."""
    if field.many_to_many:
        return ", ".join(h.name for h in getattr(config, field.name).all()) or "Any host in cluster"
    value = getattr(config, f"get_{field.name}_display")() if field.choices else getattr(config, field.name)
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return "—" if value in (None, "") else value


def configuration_sections(config: VmConfig) -> list[tuple[str, list[tuple[str, object]]]]:
    """The configuration grouped as the dialog's tabs (vNUMA nodes have a card of their own)."""
    sections = []
    for _, label, names in TABS:
        rows = []
        for name in names:
            try:
                field = config._meta.get_field(name)
            except FieldDoesNotExist:  # a dialog-only field (start running on, NUMA node count)
                continue
            rows.append((capfirst(field.verbose_name), display_value(config, field)))
        if rows:
            sections.append((label, rows))
    return sections


def vnuma_rows(config: VmConfig, hosts: list) -> list[tuple]:
    """Each vNUMA node with its pinning on every placement host (and whether that host has its own)."""
    return [
        (node, [(host, node.pinning_for(host.pk), host.pk in node.pinned_to_by_host) for host in hosts])
        for node in config.vnuma()
    ]


def applied_pinning(allocation: Allocation | None, config: VmConfig) -> dict | None:
    """What the hypervisor was told for this allocation: vCPU -> pCPUs, vNUMA -> host node, threads, memory."""
    if allocation is None:
        return None
    vnodes = {node.index: node for node in config.vnuma()}
    return {
        "allocation": allocation,
        "vcpus": sorted(((int(v), format_cpuset(cpus)) for v, cpus in allocation.cpu_pinning.items())),
        "numa": [
            (int(v), node, vnodes.get(int(v)))
            for v, node in sorted(allocation.numa_mapping.items(), key=lambda item: int(item[0]))
        ],
        "memory": sorted((int(n), mib) for n, mib in allocation.memory_mib.items()),
        "hugepages": sorted(
            (int(n), int(size), pages) for n, sizes in allocation.hugepages.items() for size, pages in sizes.items()
        ),
        "exclusive": format_cpuset(allocation.exclusive_cpus),
        "shared": format_cpuset(allocation.shared_cpus),
        "emulator": format_cpuset(allocation.emulator_cpus),
        "iothreads": format_cpuset(allocation.iothread_cpus),
    }


def vm_panels(vm: VirtualMachine) -> dict:
    """Placement and migration history of a VM: the parts of its page that change while it migrates."""
    allocations = {a.state: a for a in vm.allocations.select_related("host")}
    return {
        "vm": vm,
        "applied": applied_pinning(allocations.get(AllocationState.ACTIVE), vm),
        "incoming": applied_pinning(allocations.get(AllocationState.PENDING), vm),
        "jobs": vm.migration_jobs.select_related("source", "destination", "requested_by")[:20],
    }


@require_safe
@login_required
def vm_detail(request, pk: int):
    vm = get_object_or_404(VirtualMachine.objects.select_related("cluster", "host", "template", "pool", "owner"), pk=pk)
    if wants_partial(request):
        response = render(request, "hpadmin/htmx/vm_panels.html", vm_panels(vm))
        patch_vary_headers(response, ["HX-Request"])
        return response
    hosts = list(vm.placement_hosts.order_by("name"))
    context = {
        **vm_panels(vm),
        "kind": KINDS["vms"],
        "config": vm,
        "sections": configuration_sections(vm),
        "placement_hosts": hosts,
        "vnuma_rows": vnuma_rows(vm, hosts),
        "events": vm.events.select_related("host", "user")[:15],
    }
    return render(request, "hpadmin/vm_detail.html", context)


@require_safe
@login_required
def config_detail(request, kind: str, pk: int):
    """A template's or a pool's page."""
    spec = KINDS[kind]
    config = get_object_or_404(spec.model.objects.select_related("cluster"), pk=pk)
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


# -- the New/Edit dialog -----------------------------------------------------------------------------------------


def pinning_preview(text: str) -> list[str]:
    try:
        pins = parse_pinning(text)
    except PinningSyntaxError:
        return []
    return [f"vCPU {vcpu} → pCPU {format_cpuset(cpus)}" for vcpu, cpus in sorted(pins.items())]


@staff_required
def config_form(request, kind: str, pk: int | None = None):
    """New or Edit of a VM, template or pool: tabs, HP profile on type change, live checks, HP recommendations."""
    spec = KINDS[kind]
    instance = get_object_or_404(spec.model, pk=pk) if pk else spec.model()
    form_class = config_form_class(spec.model)
    url = request.path
    context = {"kind": spec, "object": instance if pk else None, "url": url, "active_tab": "general"}

    if request.method == "POST":
        form = form_class(request.POST, instance=instance, url=url)
        context["active_tab"] = request.POST.get("_tab") or "general"
        if form.is_valid():
            recommendations = form.hp_recommendations()
            if recommendations and not request.POST.get("confirm_hp"):
                context["recommendations"] = recommendations
            else:
                config = form.save()
                messages.success(request, f"{spec.label} {config.name} {'saved' if pk else 'created'}.")
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


# -- NUMA pinning editor -----------------------------------------------------------------------------------------


def _numa_errors(config: VmConfig) -> dict[str, list[str]]:
    try:
        config.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        return exc.message_dict
    return {}


def pinning_conflicts(config: VmConfig, hosts: list, nodes: list[dict]) -> tuple[dict[int, list[str]], list[str]]:
    """clean()'s verdict on a pinning, per placement host (the pinning as that host would get it, judged alone)
    and for the whole configuration (messages not already shown under a host)."""
    per_host = {}
    for host in hosts:
        trial = copy.copy(config)
        trial.numa_nodes = [
            {
                **node,
                "pinned_to": node["pinned_to_by_host"].get(str(host.pk), node["pinned_to"]),
                "pinned_to_by_host": {},
            }
            for node in nodes
        ]
        trial.stage_placement_hosts([host])
        per_host[host.pk] = _numa_errors(trial).get("numa_nodes", [])
    whole = copy.copy(config)
    whole.numa_nodes = nodes
    whole.stage_placement_hosts(hosts)
    shown = {message for messages_ in per_host.values() for message in messages_}
    general = [m for messages_ in _numa_errors(whole).values() for m in messages_ if m not in shown]
    return per_host, general


def editor_hosts(form: NumaPinningForm, usage: dict, conflicts: dict[int, list[str]]) -> list[dict]:
    """Each placement host as the editor draws it: its NUMA nodes side by side, each with its CPUs, free
    memory and hugepages, and the vNUMA nodes pinned to it; plus the vNUMA nodes not pinned there."""
    out = []
    vnodes = form.vnodes
    for position, host in enumerate(form.hosts):
        pins = form.pins(host)
        mirrored = position > 0 and form.same_as_first(host)
        host_nodes = list(host.numa_nodes.all())
        cpus_of = {}
        for cpu in host.cpus.all():
            cpus_of.setdefault(cpu.numa_node, []).append(cpu.cpu_id)
        known = {n.index for n in host_nodes}
        options = [("", "Not pinned")] + [(str(n.index), f"Node {n.index}") for n in host_nodes]
        # Pinnings the plain choices cannot show (several nodes, or nodes this host lacks) stay selectable.
        for nodes in sorted({p for p in pins.values() if len(p) > 1 or (p and p[0] not in known)}):
            missing = "" if set(nodes) <= known else " (not on this host)"
            options.append(
                (",".join(map(str, nodes)), f"Node{'s' if len(nodes) > 1 else ''} {format_cpuset(nodes)}{missing}")
            )

        def chip(vnode, host=host, pins=pins, mirrored=mirrored, options=options, known=known):
            return {
                "vnode": vnode,
                "name": f"pin-{host.pk}-{vnode.index}",
                "value": ",".join(map(str, pins[vnode.index])),
                "options": options,
                "disabled": mirrored,
                "also": pins[vnode.index][1:],
                "missing": not set(pins[vnode.index]) <= known,
            }

        columns = []
        for node in host_nodes:
            assigned = [v for v in vnodes if node.index in pins[v.index]]
            columns.append(
                {
                    "node": node,
                    "cpus": format_cpuset(cpus_of.get(node.index, [])),
                    "usage": usage[host.pk].get(node.index),
                    "chips": [chip(v) for v in assigned if pins[v.index][0] == node.index],
                    "assigned_mib": sum(v.memory_mib for v in assigned),
                }
            )
        for column in columns:
            column["over"] = column["usage"] is not None and column["assigned_mib"] > column["usage"].free_mib
        out.append(
            {
                "host": host,
                "first": position == 0,
                "mirrored": mirrored,
                "columns": columns,
                "unpinned": [chip(v) for v in vnodes if not pins[v.index] or pins[v.index][0] not in known],
                "conflicts": conflicts.get(host.pk, []),
            }
        )
    return out


@staff_required
def numa_pinning(request, kind: str, pk: int):
    """The NUMA pinning editor: vNUMA nodes onto host NUMA nodes on each placement host; saved atomically."""
    spec = KINDS[kind]
    config = get_object_or_404(spec.model, pk=pk)
    hosts = list(config.placement_hosts.prefetch_related("numa_nodes", "hugepage_pools", "cpus").order_by("name"))
    form = NumaPinningForm(config, hosts, request.POST or None)
    checking = "_check" in request.POST
    general: list[str] = []
    if request.method == "POST" and not checking and form.is_valid():
        try:
            with transaction.atomic():
                locked = spec.model.objects.select_for_update().get(pk=config.pk)
                locked.numa_nodes = form.numa_nodes()
                locked.stage_placement_hosts(hosts)
                locked.full_clean(validate_unique=False, validate_constraints=False)
                locked.save(update_fields=["numa_nodes"])
        except ValidationError as exc:
            general = list(exc.messages)
        else:
            messages.success(request, f"NUMA pinning of {config.name} saved.")
            return client_redirect(request, config.get_absolute_url())
    if form.is_bound and not form.is_valid():
        general = [message for errors in form.errors.values() for message in errors]
    others = Allocation.objects.filter(host__in=hosts)
    if spec.model is VirtualMachine:
        others = others.exclude(vm_id=config.pk)
    by_host: dict[int, list] = {h.pk: [] for h in hosts}
    for row in others:
        by_host[row.host_id].append(row)
    usage = {h.pk: node_usage(h, by_host[h.pk]) for h in hosts}
    conflicts, general_now = pinning_conflicts(config, hosts, form.numa_nodes()) if hosts and form.vnodes else ({}, [])
    context = {
        "kind": spec,
        "config": config,
        "url": request.path,
        "form": form,
        "hosts": editor_hosts(form, usage, conflicts) if hosts else [],
        "general": general or general_now,
        "vnodes": [(v, form.tune_mode(v.index)) for v in form.vnodes],
        "tune_modes": form.fields[f"tune-{form.vnodes[0].index}"].choices if form.vnodes else [],
    }
    if checking:
        return render(request, "hpadmin/htmx/numa_editor_body.html", context)
    return render_two_ways(request, "hpadmin/numa_editor_page.html", "hpadmin/htmx/numa_editor.html", context)


# -- Migrate, Start, Stop ----------------------------------------------------------------------------------------


def destination_rows(vms: list[VirtualMachine]) -> tuple[list[dict], list[dict]]:
    """Every host with the scheduler's verdict for all the VMs: eligible ones by rank, refused ones with each
    filter's reason (prefixed by the VM when several are migrated)."""
    rows: dict[int, dict] = {}
    for vm in vms:
        for verdict in migration_candidates(vm):
            row = rows.setdefault(verdict.host.pk, {"host": verdict.host, "ranks": [], "reasons": [], "vms": set()})
            row["vms"].add(vm.pk)
            if verdict.eligible:
                row["ranks"].append((vm, verdict.rank))
            else:
                row["reasons"].extend((vm, name, reason) for name, reason in verdict.rejections)
    for row in rows.values():
        for vm in vms:
            if vm.pk not in row["vms"]:
                row["reasons"].append((vm, "Cluster", f"the host is not in cluster {vm.cluster.name}"))
        row["eligible"] = not row["reasons"]
    eligible = sorted(
        (r for r in rows.values() if r["eligible"]),
        key=lambda r: (sum(rank or 0 for _, rank in r["ranks"]), r["host"].name),
    )
    refused = sorted((r for r in rows.values() if not r["eligible"]), key=lambda r: r["host"].name)
    return eligible, refused


@staff_required
def migrate(request):
    """The Migrate dialog for the selected VMs: automatic choice (recommended) or a host the scheduler judged."""
    form = MigrateForm(request.POST if request.method == "POST" else request.GET)
    valid = form.is_valid()
    vms = list(form.cleaned_data.get("vm") or [])
    error = None
    if request.method == "POST" and valid:
        try:
            jobs = migrate_vms(vms, form.cleaned_data["destination"], force=True, user=request.user)
        except OperationError as exc:
            error = exc
        else:
            names = ", ".join(job.vm.name for job in jobs)
            messages.success(request, f"Migration of {names} requested.")
            return client_redirect(request, vms[0].get_absolute_url()) if len(vms) == 1 else back_to(request, "/")
    eligible, refused = destination_rows(vms) if vms else ([], [])
    source_hosts = {vm.host_id for vm in vms}
    context = {
        "form": form,
        "vms": vms,
        "eligible": eligible,
        "refused": refused,
        "error": error,
        "one_source": vms[0].host if len(source_hosts) == 1 and vms else None,
        "not_running": [vm for vm in vms if vm.status != VmStatus.UP],
    }
    return render_two_ways(request, "hpadmin/migrate_page.html", "hpadmin/htmx/migrate_dialog.html", context)


@require_POST
@staff_required
def vm_start(request, pk: int):
    vm = get_object_or_404(VirtualMachine, pk=pk)
    try:
        vm = start_vm(vm, user=request.user)
    except OperationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"VM {vm.name} started on {vm.host}.")
    return back_to(request, vm.get_absolute_url())


@require_POST
@staff_required
def vm_stop(request, pk: int):
    vm = get_object_or_404(VirtualMachine, pk=pk)
    try:
        stop_vm(vm, user=request.user)
    except OperationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"VM {vm.name} powered off.")
    return back_to(request, vm.get_absolute_url())
