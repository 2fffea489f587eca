"""What the VM pages show, built from the models: no request, no rendering.

The detail pages' configuration sections and applied pinning, the NUMA editor's host columns and its
per-host verdicts, and the Migrate dialog's destination rows.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.utils.text import capfirst

from hpadmin.access.policy import Access
from hpadmin.access.roles import Permit
from hpadmin.inventory.models import Host
from hpadmin.operations.services import migration_candidates
from hpadmin.operations.specs import domain_spec
from hpadmin.vms.models import Pool, SuspendableSetting, Template, VirtualMachine, VmConfig, VmStatus
from hpadmin.webadmin.inventory.topology import NodeUsage, node_usage
from scheduler.core.cpuset import PinningSyntaxError, format_cpuset, parse_pinning
from scheduler.models import Allocation, AllocationState
from scheduler.services import HostVerdict, start_verdicts

from .forms.dialog import TABS
from .forms.numa_editor import NumaPinningForm


@dataclass(frozen=True)
class Kind:
    """VMs, templates and pools share pages; this says which one a URL is about."""

    model: type[VmConfig]
    slug: str
    label: str
    plural: str
    create_permit: Permit  # on the cluster it is created in
    edit_permit: Permit


KINDS = {
    "vms": Kind(VirtualMachine, "vm", "Virtual machine", "Virtual machines", Permit.CREATE_VM, Permit.EDIT_VM),
    "templates": Kind(Template, "template", "Template", "Templates", Permit.MANAGE_CLUSTER, Permit.MANAGE_CLUSTER),
    "pools": Kind(Pool, "pool", "Pool", "Pools", Permit.MANAGE_CLUSTER, Permit.MANAGE_CLUSTER),
}


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


def next_run_rows(vm: VirtualMachine) -> list[tuple[str, object, object]]:
    """The changes that wait for the VM's next start: (label, what runs now, what will run)."""
    if not vm.next_run:
        return []
    after = copy.copy(vm)
    after.apply_next_run()
    rows = []
    for name in sorted(vm.next_run, key=lambda n: vm._meta.get_field(n).creation_counter):
        field = vm._meta.get_field(name)
        if name == "numa_nodes":
            now, then = (vnuma_layout(c) for c in (vm, after))
        else:
            now, then = display_value(vm, field), display_value(after, field)
        label = str(field.verbose_name)
        rows.append((label if label[1:2].isupper() else capfirst(label), now, then))
    return rows


def vnuma_layout(config: VmConfig) -> str:
    """vNUMA nodes in a line: their vCPUs, memory and pinning."""
    nodes = config.vnuma()
    if not nodes:
        return "None"
    pinned = ", pinned" if any(n.is_pinned for n in nodes) else ""
    return "; ".join(f"{len(n.vcpus)} vCPUs, {n.memory_mib} MiB" for n in nodes) + pinned


def vnuma_rows(config: VmConfig, hosts: list) -> list[tuple]:
    """Each vNUMA node with its pinning on every placement host (and whether that host has its own)."""
    return [
        (node, [(host, node.pinning_for(host.pk), host.pk in node.pinned_to_by_host) for host in hosts])
        for node in config.vnuma()
    ]


def applied_pinning(allocation: Allocation | None, vm: VirtualMachine) -> dict | None:
    """What the hypervisor was told for this allocation: vCPU -> pCPUs, vNUMA -> host nodes, threads, memory."""
    if allocation is None:
        return None
    spec = domain_spec(vm, allocation)
    if vm.emulator_pinning.strip():
        emulator_by = "as set in Emulator and I/O thread pinning"
    elif set(spec.emulator_cpus) & {cpu for cpus in spec.vcpu_pins.values() for cpu in cpus}:
        emulator_by = "with the VM's vCPUs: no other pCPU of the host was free of exclusive pinning"
    else:
        emulator_by = "apart from the VM's vCPUs, on pCPUs no VM holds exclusively"
    return {
        "allocation": allocation,
        "vcpus": sorted((vcpu, format_cpuset(cpus)) for vcpu, cpus in spec.vcpu_pins.items()),
        "numa": [(cell.index, format_cpuset(cell.host_nodes), cell) for cell in spec.numa_cells if cell.host_nodes],
        "memory": sorted((int(n), mib) for n, mib in allocation.memory_mib.items()),
        "hugepages": sorted(
            (int(n), int(size), pages) for n, sizes in allocation.hugepages.items() for size, pages in sizes.items()
        ),
        "exclusive": format_cpuset(allocation.exclusive_cpus),
        "shared": format_cpuset(allocation.shared_cpus),
        "emulator": format_cpuset(spec.emulator_cpus),
        "iothreads": format_cpuset(spec.iothread_cpus) if spec.iothreads else "",
        "emulator_by": emulator_by,
    }


def vm_panels(vm: VirtualMachine) -> dict:
    """Placement and migration history of a VM, and the settings it runs without: the parts of its page that
    change while it migrates."""
    allocations = {a.state: a for a in vm.allocations.select_related("host")}
    return {
        "vm": vm,
        "suspended": vm.suspended_labels() if vm.status != VmStatus.DOWN else [],
        "applied": applied_pinning(allocations.get(AllocationState.ACTIVE), vm),
        "incoming": applied_pinning(allocations.get(AllocationState.PENDING), vm),
        "jobs": vm.migration_jobs.select_related("source", "destination", "requested_by")[:20],
    }


# -- the New/Edit dialog -----------------------------------------------------------------------------------------


def pinning_preview(text: str) -> list[str]:
    try:
        pins = parse_pinning(text)
    except PinningSyntaxError:
        return []
    return [f"vCPU {vcpu} → pCPU {format_cpuset(cpus)}" for vcpu, cpus in sorted(pins.items())]


# -- the NUMA pinning editor -------------------------------------------------------------------------------------


def _numa_errors(config: VmConfig) -> dict[str, list[str]]:
    # The editor changes no relation, so they are not looked up again for every host it judges.
    relations = [field.name for field in config._meta.concrete_fields if field.is_relation]
    try:
        config.full_clean(exclude=relations, validate_unique=False, validate_constraints=False)
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


def start_fit(
    config: VmConfig, hosts: list, nodes: list[dict], conflicts: dict[int, list[str]], general: list[str]
) -> dict[int, HostVerdict]:
    """Whether the VM with the pinning shown would start on each host now, as start judges it (the vNUMA nodes
    that share a host node added up, against what the other VMs leave free). Only for the hosts whose pinning
    clean() accepts, and not while the configuration has errors of its own (``general``)."""
    judged = [host for host in hosts if not conflicts.get(host.pk)]
    if general or not judged:
        return {}
    trial = copy.copy(config)
    trial.numa_nodes = nodes
    trial.stage_placement_hosts(hosts)
    return {verdict.host.pk: verdict for verdict in start_verdicts(trial, judged)}


def _free_mib(usage: NodeUsage, hugepage_kib: int | None) -> float:
    """What a host node has free for the VM's memory: its pages of the VM's size, or its small-page memory."""
    if not hugepage_kib:
        return usage.free_mib
    return sum(pool["free"] * pool["size_kib"] / 1024 for pool in usage.hugepages if pool["size_kib"] == hugepage_kib)


def editor_hosts(
    form: NumaPinningForm, usage: dict, conflicts: dict[int, list[str]], fits: dict[int, HostVerdict]
) -> list[dict]:
    """Each placement host as the editor draws it: its NUMA nodes side by side, each with its CPUs, free
    memory and hugepages, and the vNUMA nodes pinned to it; plus the vNUMA nodes not pinned there."""
    out = []
    vnodes = form.vnodes
    hugepage_kib = form.config.hugepage_kib
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
            free = None if column["usage"] is None else _free_mib(column["usage"], hugepage_kib)
            column["over"] = free is not None and column["assigned_mib"] > free
        out.append(
            {
                "host": host,
                "first": position == 0,
                "mirrored": mirrored,
                "columns": columns,
                "unpinned": [chip(v) for v in vnodes if not pins[v.index] or pins[v.index][0] not in known],
                "conflicts": conflicts.get(host.pk, []),
                "fit": fits.get(host.pk),
            }
        )
    return out


def numa_editor(config: VmConfig, hosts: list, form: NumaPinningForm) -> dict:
    """The editor's page: each placement host's columns with what the other VMs leave free there and the
    verdicts on the pinning as shown (clean()'s, and the scheduler's for a start now), the vNUMA nodes with
    their tune modes, and clean()'s errors not tied to a host (``general``)."""
    others = Allocation.objects.filter(host__in=hosts)
    if isinstance(config, VirtualMachine):
        others = others.exclude(vm_id=config.pk)
    by_host: dict[int, list] = {h.pk: [] for h in hosts}
    for row in others:
        by_host[row.host_id].append(row)
    usage = {h.pk: node_usage(h, by_host[h.pk]) for h in hosts}
    conflicts: dict[int, list[str]] = {}
    general: list[str] = []
    fits: dict[int, HostVerdict] = {}
    if hosts and form.vnodes:
        nodes = form.numa_nodes()
        conflicts, general = pinning_conflicts(config, hosts, nodes)
        fits = start_fit(config, hosts, nodes, conflicts, general)
    return {
        "hosts": editor_hosts(form, usage, conflicts, fits) if hosts else [],
        "general": general,
        "vnodes": [(v, form.tune_mode(v.index)) for v in form.vnodes],
        "tune_modes": form.fields[f"tune-{form.vnodes[0].index}"].choices if form.vnodes else [],
    }


# -- the Migrate dialog ------------------------------------------------------------------------------------------

SETTING_LABELS = dict(SuspendableSetting.choices)


def destination_rows(vms: list[VirtualMachine], access: Access) -> tuple[list[dict], list[dict], list[VirtualMachine]]:
    """Every host of the VMs' cluster (one: see ``migration_plan``) with the scheduler's verdict for all of
    them: eligible ones by rank, those that take some VMs only with settings suspended (``suspended``: the
    VM, the setting's label and why) after every host that takes them whole, refused ones with each filter's
    reason (prefixed by the VM when several are migrated). The VMs' own hosts (``own``: placement host, or
    the source) come before the others. Last, the VMs no host takes: without them the automatic choice can
    place each VM, even where no one host takes all. Only the hosts the user may see are listed."""
    placement = {host.pk for vm in vms for host in vm.placement_hosts.all()}
    sources = {vm.host_id for vm in vms}
    rows: dict[int, dict] = {}
    homeless = []
    for vm in vms:
        verdicts = migration_candidates(vm)
        if not any(verdict.eligible for verdict in verdicts):
            homeless.append(vm)
        for verdict in access.visible_verdicts(verdicts):
            host = verdict.host
            own = "placement host" if host.pk in placement else "source" if host.pk in sources else ""
            row = rows.setdefault(host.pk, {"host": host, "own": own, "ranks": [], "reasons": [], "suspended": []})
            if verdict.eligible:
                row["ranks"].append((vm, verdict.rank))
                row["suspended"].extend(
                    (vm, SETTING_LABELS.get(name, name), reason) for name, reason in verdict.suspended
                )
            else:
                row["reasons"].extend((vm, name, reason) for name, reason in verdict.rejections)
    eligible = sorted(
        (r for r in rows.values() if not r["reasons"]),
        key=lambda r: (bool(r["suspended"]), sum(rank or 0 for _, rank in r["ranks"]), r["host"].name),
    )
    order = {"placement host": 0, "source": 1, "": 2}
    refused = sorted((r for r in rows.values() if r["reasons"]), key=lambda r: (order[r["own"]], r["host"].name))
    return eligible, refused, homeless


def suspensions(vms: list[VirtualMachine], destination: Host) -> list[tuple[VirtualMachine, str, str]]:
    """What ``destination`` would take the VMs without: (VM, setting's label, why), empty when it fits each
    VM it takes whole. It is degraded for the selection if it is for any of the VMs."""
    return [
        (vm, SETTING_LABELS.get(name, name), reason)
        for vm in vms
        for verdict in migration_candidates(vm, destination)
        if verdict.eligible
        for name, reason in verdict.suspended
    ]


def degraded_policy_note(vms: list[VirtualMachine]) -> str:
    """What the automatic choice does when no host fits a VM's whole configuration, by each VM's policy (or
    its cluster's)."""
    suspend = [vm.name for vm in vms if vm.allows_degraded()]
    if not suspend:
        return "If no host fits a VM's whole configuration, its migration is refused."
    note = (
        "If no host fits a VM's whole configuration, it moves to the best host with the settings that host cannot "
        "honour suspended until a fitting host is free, and its owner and the admins are told."
    )
    if len(suspend) < len(vms):
        note += f" This applies to {', '.join(suspend)}; the others' migrations are refused."
    return note
