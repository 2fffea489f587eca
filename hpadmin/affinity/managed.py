"""Affinity groups hpadmin keeps for High Performance VMs.

In a cluster with ``manage_hp_affinity`` on, the HP VMs are grouped by their exact set of "Start running on specific
hosts" (VMs with none are not grouped), and each set gets:

1. "HP on <host names>": a soft positive VM-to-host group of those VMs and hosts. Placement hosts are only a
   start-up preference for VMs that may migrate; this group keeps automatic moves (maintenance, balancing, HA
   restarts) preferring the hosts the admin chose, without refusing others when they are full.
2. "HP spread on <host names>", when two or more VMs share the set: a soft negative VM-to-VM group of those VMs.
   VMs pinned to the same few hosts compete for the same pCPUs, NUMA nodes and hugepages; spreading them means one
   host's failure or maintenance moves (or degrades) as few of them as possible at once.

Both have priority 0.5, below the 1.0 admins' groups get by default, so an admin's rule outweighs them. Each
member's reason is in ``managed_reasons``. A name an admin's group already has gets a suffix; the groups are
matched to their set by name, so renaming a host replaces its groups.

The receivers below resync a cluster once per transaction, after it commits, whatever number of its VMs changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from hpadmin.inventory.models import Cluster, Host
from hpadmin.vms.models import OptimizedFor, VirtualMachine

from .models import AffinityGroup, AffinityRule

PRIORITY = 0.5
NAME_LENGTH = AffinityGroup._meta.get_field("name").max_length
# What a VM save must touch to change the groups: HP-ness, the cluster, or the name the reasons use.
VM_FIELDS = frozenset({"optimized_for", "cluster", "name"})
# The fields of a managed group that the sync owns besides its members.
OWNED_FIELDS = ("description", "priority", "vm_rule", "vm_enforcing", "host_rule", "host_enforcing", "managed_reasons")


@dataclass(frozen=True)
class Wanted:
    """A managed group as the cluster's HP VMs call for it."""

    name: str
    description: str
    vm_rule: str
    host_rule: str
    vms: frozenset[int]
    hosts: frozenset[int]
    reasons: dict[str, str]

    def values(self) -> dict:
        return {
            "description": self.description,
            "priority": PRIORITY,
            "vm_rule": self.vm_rule,
            "vm_enforcing": False,
            "host_rule": self.host_rule,
            "host_enforcing": False,
            "managed_reasons": self.reasons,
        }


def sync_managed_groups(cluster: Cluster) -> None:
    """Make the cluster's managed groups what its HP VMs call for now (none when ``manage_hp_affinity`` is off):
    create, update and delete them, in a constant number of queries, and none that writes when nothing changed."""
    _sync(cluster.pk)


def _sync(cluster_id: int) -> None:
    with transaction.atomic():
        # The cluster's row lock makes concurrent syncs of one cluster take turns (and reads the switch fresh).
        switch = (
            Cluster.objects.select_for_update()
            .filter(pk=cluster_id)
            .values_list("manage_hp_affinity", flat=True)
            .first()
        )
        if switch is None:
            return  # deleted since
        groups = list(AffinityGroup.objects.filter(cluster_id=cluster_id))
        existing = {group.name: group for group in groups if group.managed}
        if not switch:
            if existing:
                AffinityGroup.objects.filter(pk__in=[group.pk for group in existing.values()]).delete()
            return
        wanted = {
            group.name: group
            for group in _wanted(cluster_id, taken={group.name for group in groups if not group.managed})
        }
        kept = {name: group for name, group in existing.items() if name in wanted}
        stale = [group.pk for name, group in existing.items() if name not in kept]
        if stale:
            AffinityGroup.objects.filter(pk__in=stale).delete()
        created = AffinityGroup.objects.bulk_create(
            AffinityGroup(cluster_id=cluster_id, name=name, managed=True, **group.values())
            for name, group in wanted.items()
            if name not in kept
        )
        changed = [group for name, group in kept.items() if _assign(group, wanted[name].values())]
        if changed:
            AffinityGroup.objects.bulk_update(changed, OWNED_FIELDS)
        members = [(group, wanted[group.name]) for group in [*created, *kept.values()]]
        kept_ids = [group.pk for group in kept.values()]
        moved = _set_members(AffinityGroup.vms, members, "vms", kept_ids)
        moved |= _set_members(AffinityGroup.hosts, members, "hosts", kept_ids)
        if created or changed or moved:
            # As ``signals`` does for edits: bulk writes send no signal, and the scheduler rereads on the stamp.
            Cluster.objects.filter(pk=cluster_id).update(affinity_changed_at=timezone.now())


def _wanted(cluster_id: int, taken: set[str]) -> list[Wanted]:
    """The groups the cluster's HP VMs call for; ``taken``: names of admins' groups, which the groups avoid."""
    hosts_of: dict[int, dict[int, str]] = {}
    vm_names: dict[int, str] = {}
    placements = VirtualMachine.placement_hosts.through.objects.filter(
        virtualmachine__cluster_id=cluster_id,
        virtualmachine__optimized_for=OptimizedFor.HIGH_PERFORMANCE,
        host__cluster_id=cluster_id,
    ).values_list("virtualmachine_id", "virtualmachine__name", "host_id", "host__name")
    for vm_id, vm_name, host_id, host_name in placements:
        hosts_of.setdefault(vm_id, {})[host_id] = host_name
        vm_names[vm_id] = vm_name
    sharing: dict[frozenset[int], list[int]] = {}
    for vm_id, hosts in hosts_of.items():
        sharing.setdefault(frozenset(hosts), []).append(vm_id)
    out = []
    # Sorted by host names, so that the suffixes a clash calls for are the same at every sync.
    sets = [(sorted(hosts_of[vms[0]].values()), host_ids, vms) for host_ids, vms in sharing.items()]
    for host_names, host_ids, vm_ids in sorted(sets, key=lambda item: item[0]):
        hosts = f"host{'s' if len(host_names) > 1 else ''} {', '.join(host_names)}"
        reason = f"High Performance, starts on specific {hosts}"
        out.append(
            Wanted(
                name=_free_name(f"HP on {', '.join(host_names)}", taken),
                description="Moves of High Performance VMs prefer the specific hosts they start on.",
                vm_rule=AffinityRule.DISABLED,
                host_rule=AffinityRule.POSITIVE,
                vms=frozenset(vm_ids),
                hosts=host_ids,
                reasons={vm_names[vm_id]: reason for vm_id in vm_ids},
            )
        )
        if len(vm_ids) < 2:
            continue
        others = len(vm_ids) - 1
        out.append(
            Wanted(
                name=_free_name(f"HP spread on {', '.join(host_names)}", taken),
                description="High Performance VMs that start on the same specific hosts run on different hosts.",
                vm_rule=AffinityRule.NEGATIVE,
                host_rule=AffinityRule.DISABLED,
                vms=frozenset(vm_ids),
                hosts=frozenset(),
                reasons={
                    vm_names[vm_id]: f"{reason}, like {others} other HP VM{'s' if others > 1 else ''}"
                    for vm_id in vm_ids
                },
            )
        )
    return out


def _free_name(base: str, taken: set[str]) -> str:
    """``base``, cut to fit the name field, with a suffix when ``taken`` has it; the name is then taken."""
    name, n = _fit(base, NAME_LENGTH), 1
    while name in taken:
        n += 1
        suffix = f" ({n})"
        name = _fit(base, NAME_LENGTH - len(suffix)) + suffix
    taken.add(name)
    return name


def _fit(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def _assign(group: AffinityGroup, values: dict) -> bool:
    """Set ``values`` on ``group``; whether any differed."""
    changed = False
    for name, value in values.items():
        if getattr(group, name) != value:
            setattr(group, name, value)
            changed = True
    return changed


def _set_members(descriptor, members: list[tuple[AffinityGroup, Wanted]], kind: str, kept: list[int]) -> bool:
    """Give each group its wanted members of ``kind`` ("vms" or "hosts", ``descriptor`` the many-to-many field) in
    three queries at most; ``kept``: ids of the groups that existed, the only ones with members yet. Whether any
    changed."""
    through = descriptor.through
    column = f"{descriptor.field.m2m_reverse_field_name()}_id"  # the through model's column for the VM or host
    have: dict[int, dict[int, int]] = {}  # group id -> member id -> row id
    for row_id, group_id, member_id in through.objects.filter(affinitygroup_id__in=kept).values_list(
        "pk", "affinitygroup_id", column
    ):
        have.setdefault(group_id, {})[member_id] = row_id
    drop, add = [], []
    for group, wanted in members:
        current, target = have.get(group.pk, {}), getattr(wanted, kind)
        drop += [row_id for member_id, row_id in current.items() if member_id not in target]
        add += [through(affinitygroup_id=group.pk, **{column: member_id}) for member_id in target - current.keys()]
    if drop:
        through.objects.filter(pk__in=drop).delete()
    if add:
        through.objects.bulk_create(add)
    return bool(drop or add)


# -- keeping them current ---------------------------------------------------------------------------------------


@dataclass
class Pending:
    """What the current transaction changed: clusters to resync, and VMs whose managed groups' clusters must be
    resynced too (a VM that left HP or its cluster is no longer found from its cluster)."""

    clusters: set[int] = field(default_factory=set)
    vms: set[int] = field(default_factory=set)


PENDING = "hpadmin_managed_affinity"  # the attribute of the database connection (one per thread) holding it


def _schedule(using: str, clusters=(), vms=()) -> None:
    """Resync after the transaction commits. Each change registers a callback, so that one survives the rollback
    of a savepoint; the first to run syncs everything pending and the others find nothing left. What a rolled-back
    transaction left pending is synced with the next commit, harmlessly: a sync only reads what is committed."""
    connection = transaction.get_connection(using)
    pending = connection.__dict__.setdefault(PENDING, Pending())
    pending.clusters.update(clusters)
    pending.vms.update(vms)
    # Robust: the change is committed already; the failure is logged, and the cluster's next change repairs it.
    transaction.on_commit(lambda: _flush(using), using=using, robust=True)


def _flush(using: str) -> None:
    pending: Pending | None = transaction.get_connection(using).__dict__.pop(PENDING, None)
    if pending is None:
        return
    clusters = set(pending.clusters)
    if pending.vms:
        in_groups = AffinityGroup.objects.filter(managed=True, vms__in=pending.vms)
        clusters.update(in_groups.values_list("cluster_id", flat=True))
    for cluster_id in sorted(clusters):
        _sync(cluster_id)


@receiver(post_save, sender=VirtualMachine)
def _vm_saved(sender, instance: VirtualMachine, raw: bool, using: str, update_fields, **kwargs) -> None:
    # The operations layer writes runtime fields with ``update()`` or ``update_fields``: those never reach a sync.
    if raw or (update_fields is not None and not VM_FIELDS & set(update_fields)):
        return
    _schedule(using, clusters=[instance.cluster_id] if instance.is_high_performance else [], vms=[instance.pk])


@receiver(post_delete, sender=VirtualMachine)
def _vm_deleted(sender, instance: VirtualMachine, using: str, **kwargs) -> None:
    _schedule(using, clusters=[instance.cluster_id])  # its memberships are gone with it: only its cluster tells


@receiver(m2m_changed, sender=VirtualMachine.placement_hosts.through)
def _placement_changed(sender, instance, action: str, using: str, **kwargs) -> None:
    if not action.startswith("post_"):
        return
    if isinstance(instance, Host):  # changed from the host's side: its VMs are in its cluster
        _schedule(using, clusters=[instance.cluster_id])
    elif instance.is_high_performance:
        _schedule(using, clusters=[instance.cluster_id], vms=[instance.pk])


@receiver(post_save, sender=Cluster)
def _cluster_saved(sender, instance: Cluster, created: bool, raw: bool, using: str, update_fields, **kwargs) -> None:
    if created or raw or (update_fields is not None and "manage_hp_affinity" not in update_fields):
        return
    _schedule(using, clusters=[instance.pk])
