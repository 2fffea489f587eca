"""The audit trail of configuration: who created, changed or removed a VM, template, pool, host, cluster, affinity
group or affinity label, what changed (old → new) and when; and the starts that were refused, with why. The
portal and the API call these after each save, so both leave the same trail. Messages follow oVirt's audit log.

A change is one event listing every setting it changed; a save that changes nothing records nothing. Settings
are compared as an admin reads them (labels, choice labels, host names), and a running VM's edits that wait for
its next start are compared as it will run then, and said to wait.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import models
from django.utils.text import capfirst

from hpadmin.affinity.models import AffinityGroup, AffinityLabel
from hpadmin.inventory.models import Cluster, Host, HostNumaNode, HugePagePool
from hpadmin.vms.models import RUNTIME_FIELDS, Pool, Template, VirtualMachine, VmConfig
from hpadmin.vms.numa import VNumaNode, parse_numa_nodes
from scheduler.core.cpuset import format_cpuset

from . import events
from .errors import OperationError
from .models import Event, Severity

Snapshot = dict[str, tuple[str, str]]
"""An object's settings as an admin reads them: label -> (model field name, value)."""

NOT_SET = "none"


@dataclass(frozen=True)
class Kind:
    """How the audit trail names one model: ``code`` in event codes (oVirt's), ``noun`` in messages."""

    code: str
    noun: str
    created: str = "created"  # oVirt's word for a new one: hosts and clusters are "added"
    skip: frozenset[str] = frozenset()  # fields that are state, not configuration
    labels: dict[str, str] = field(default_factory=dict)  # where the verbose name is only the field's name
    secret: frozenset[str] = frozenset()  # fields whose value the trail never shows (a fence command's password)


KINDS: dict[type[models.Model], Kind] = {
    VirtualMachine: Kind("vm", "VM", skip=RUNTIME_FIELDS | {"next_run"}),
    Template: Kind("vm_template", "Template"),
    Pool: Kind("vm_pool", "VM Pool"),
    Host: Kind(
        "host",
        "Host",
        created="added",
        skip=frozenset(
            {
                "refreshed_at",
                "status",
                "status_reason",
                "last_seen_at",
                "cpu_load_percent",
                "high_load_since",
                "low_load_since",
            }
        ),
        secret=frozenset({"fence_command"}),
        labels={
            "cpu_model": "CPU model",
            "cpu_flags": "CPU flags",
            "memory_mib": "Memory (MiB)",
            "tsc_khz": "TSC frequency (kHz)",
        },
    ),
    Cluster: Kind(
        "cluster",
        "Cluster",
        created="added",
        skip=frozenset({"affinity_changed_at"}),
        labels={"cpu_level_flags": "CPU level flags", "threads_as_cores": "Count threads as cores"},
    ),
    AffinityGroup: Kind(
        "affinity_group", "Affinity group", created="added", skip=frozenset({"managed", "managed_reasons"})
    ),
    AffinityLabel: Kind("affinity_label", "Affinity label", created="added"),
}


# -- what an object's settings read as ------------------------------------------------------------------------------


def snapshot(obj: models.Model) -> Snapshot:
    """The object's settings as an admin reads them; a VM's as it will run at its next start."""
    kind = KINDS[type(obj)]
    pending = getattr(obj, "next_run", None) or {}
    shown: Snapshot = {}
    fields = sorted([*obj._meta.concrete_fields, *obj._meta.many_to_many], key=lambda f: f.creation_counter)
    for f in fields:  # in the order they are declared, which is the dialog's
        if f.primary_key or not f.editable or f.name in kind.skip:
            continue
        if f.many_to_many:
            names = sorted(getattr(obj, f.name).values_list("name", flat=True)) if obj.pk else []
            shown[_label(kind, f)] = (f.name, ", ".join(names) or NOT_SET)
            continue
        value = pending[f.name] if f.name in pending else getattr(obj, f.name)
        if f.name in kind.secret:
            shown[_label(kind, f)] = (f.name, _fingerprint(value))
        elif isinstance(obj, VmConfig) and f.name == "numa_nodes":
            shown.update(_vnuma_nodes(parse_numa_nodes(value)))
        else:
            shown[_label(kind, f)] = (f.name, _shown(f, value))
    if isinstance(obj, Host):
        shown.update(_host_topology(obj))
    return shown


def _fingerprint(value: str) -> str:
    """A secret as the trail shows it: whether it is set, and a fingerprint that tells one value from another."""
    return f"set (fingerprint {hashlib.sha256(value.encode()).hexdigest()[:8]})" if value else NOT_SET


def _label(kind: Kind, f: models.Field) -> str:
    label = kind.labels.get(f.name) or str(f.verbose_name)
    return label if label[1:2].isupper() else capfirst(label)  # "vNUMA nodes" keeps its case


def _shown(f: models.Field, value) -> str:
    if f.choices:
        value = dict(f.flatchoices).get(value, value)
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if value is None or value == "" or value == [] or value == {}:
        return NOT_SET
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{key} {item}" for key, item in sorted(value.items()))
    return str(value)


def _vnuma_nodes(nodes: list[VNumaNode]) -> Snapshot:
    """One setting per vNUMA node, so a change names the node it touched."""
    host_ids = {host_id for node in nodes for host_id in node.pinned_to_by_host}
    names = dict(Host.objects.filter(pk__in=host_ids).values_list("pk", "name")) if host_ids else {}
    return {f"vNUMA node {node.index}": ("numa_nodes", _vnuma_node(node, names)) for node in nodes}


def _vnuma_node(node: VNumaNode, host_names: dict[int, str]) -> str:
    text = f"vCPUs {format_cpuset(node.vcpus) or NOT_SET}, {node.memory_mib} MiB, {node.tune_mode}"
    pins = [f"to {_host_nodes(node.pinned_to)}"] if node.pinned_to else []
    pins += [
        f"on {host_names.get(host_id, f'host {host_id}')} to {_host_nodes(targets)}"
        for host_id, targets in sorted(node.pinned_to_by_host.items())
        if targets
    ]
    return f"{text}, pinned {', '.join(pins)}" if pins else text


def _host_nodes(indexes: Collection[int]) -> str:
    return f"host node{'s' if len(indexes) > 1 else ''} {format_cpuset(indexes)}"


def _host_topology(host: Host) -> Snapshot:
    """What the hypervisor reports beyond the host's own fields: its NUMA nodes and hugepage pools (read from the
    database, since a refresh replaces the rows a prefetch may hold)."""
    node_count = HostNumaNode.objects.filter(host=host).count()
    rows = HugePagePool.objects.filter(host=host).values_list("node_index", "size_kib", "total")
    pools = [
        (f"node {node}: " if node is not None else "") + f"{total} × {_page_size(size)}" for node, size, total in rows
    ]
    return {
        "NUMA nodes": ("numa_nodes", str(node_count) if node_count else NOT_SET),
        "Hugepages": ("hugepage_pools", ", ".join(pools) or NOT_SET),
    }


def _page_size(kib: int) -> str:
    return f"{kib // 1048576} GiB" if kib % 1048576 == 0 else f"{kib // 1024} MiB" if kib % 1024 == 0 else f"{kib} KiB"


def _changed(obj: models.Model, before: Snapshot) -> list[str]:
    """'Label: old → new' for every setting the save changed; a running VM's that wait are marked as such."""
    after = snapshot(obj)
    waiting = getattr(obj, "next_run", None) or {}
    lines = []
    for label in dict.fromkeys([*before, *after]):
        name, old = before.get(label, ("", NOT_SET))
        name, new = after.get(label, (name, NOT_SET))
        if old != new:
            lines.append(f"{label}: {old} → {new}" + (" (at its next start)" if name in waiting else ""))
    return lines


# -- recording ------------------------------------------------------------------------------------------------------


def record_created(obj: models.Model, user) -> Event:
    kind = KINDS[type(obj)]
    message = f"{kind.noun} {obj.name} was {kind.created} by {_who(user)}."
    return events.record(f"user_add_{kind.code}", message, user=user, **_links(obj))


def record_changed(obj: models.Model, before: Snapshot, user) -> Event | None:
    """One event listing what the save changed; None, and nothing recorded, when it changed nothing."""
    kind = KINDS[type(obj)]
    return _record_update(obj, before, user, f"user_update_{kind.code}", f"{kind.noun} {obj.name} configuration")


def record_saved(obj: models.Model, before: Snapshot | None, user) -> Event | None:
    """A dialog's save: a creation when there was nothing ``before``, else a change."""
    return record_created(obj, user) if before is None else record_changed(obj, before, user)


def record_removed(obj: models.Model, user) -> Event:
    """After ``obj.delete()``: the event keeps the name, since the object it named is gone."""
    kind = KINDS[type(obj)]
    message = f"{kind.noun} {obj.name} was removed by {_who(user)}."
    return events.record(f"user_remove_{kind.code}", message, user=user, **_links(obj))


def record_numa_pinning(config: VmConfig, before: Snapshot, user) -> Event | None:
    """The NUMA pinning editor's save: which vNUMA nodes moved where; nothing when none did."""
    kind = KINDS[type(config)]
    what = f"NUMA pinning of {kind.noun} {config.name}"
    return _record_update(config, before, user, f"user_update_{kind.code}_numa_pinning", what)


def _record_update(obj: models.Model, before: Snapshot, user, code: str, what: str) -> Event | None:
    """ "<what> was updated by <user>: <changes>", or nothing when nothing changed."""
    changed = _changed(obj, before)
    if not changed:
        return None
    return events.record(code, f"{what} was updated by {_who(user)}: {'; '.join(changed)}.", user=user, **_links(obj))


def record_capabilities_refreshed(host: Host, before: Snapshot, user) -> Event:
    """A refresh of the host's capabilities, with what the hypervisor now reports differently."""
    changed = _changed(host, before)
    detail = f": {'; '.join(changed)}." if changed else "; nothing changed."
    message = f"Successfully refreshed the capabilities of host {host.name} (User: {_who(user)}){detail}"
    return events.record("host_refreshed_capabilities", message, user=user, host=host)


def record_refused_start(vm: VirtualMachine, error: OperationError, user) -> Event:
    """A start that was refused: a warning when the VM's state forbade it, an error when no host could run it."""
    severity = Severity.WARNING if error.status == 409 else Severity.ERROR
    message = f"Failed to run VM {vm.name} (User: {_who(user)}). {error.message}"
    return events.record("user_failed_run_vm", message, severity=severity, user=user, vm=vm)


@contextmanager
def refused_start(vm: VirtualMachine, user) -> Iterator[None]:
    """Record the refusal the block raises once the block's own transaction has rolled back (enter this first)."""
    try:
        yield
    except OperationError as exc:
        record_refused_start(vm, exc, user)
        raise


def _links(obj: models.Model) -> dict:
    """The event's links: the object itself where events link to its kind (not once it is deleted), its cluster."""
    if isinstance(obj, Cluster):
        return {"cluster": obj if obj.pk else None}
    links = {"cluster": getattr(obj, "cluster", None)}  # a label belongs to no cluster
    if obj.pk and isinstance(obj, VirtualMachine):
        links["vm"] = obj
    if obj.pk and isinstance(obj, Host):
        links["host"] = obj
    return links


def _who(user) -> str:
    return user.get_username() if getattr(user, "is_authenticated", False) else "system"
