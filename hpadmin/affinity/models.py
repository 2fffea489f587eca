"""Affinity groups and labels, after oVirt 4.4: which VMs run together or apart, and on which hosts.

A group belongs to a cluster and carries two rules: VM to VM (its VMs share a host, or each runs on another) and
VM to host (its VMs run on its hosts, or never on them). Each rule is enforcing (hard: the scheduler refuses a host
that breaks it) or not (soft: it only weighs hosts). Labels tag VMs and hosts of any cluster, as in oVirt; a group
that names a label counts the label's VMs and hosts of the group's own cluster among its members.

Memberships are many-to-many relations, saved after the object: forms and serializers hand the chosen members to
``stage_members()`` before ``full_clean()`` so that ``clean()`` judges the new choice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from hpadmin.inventory.models import Cluster, Host
from hpadmin.vms.models import VirtualMachine


class AffinityRule(models.TextChoices):
    """Positive: the VMs share a host (or run on the group's hosts); negative: they do not (or never run there)."""

    POSITIVE = "positive", "Positive"
    NEGATIVE = "negative", "Negative"
    DISABLED = "disabled", "Disabled"


class StagedMembersModel(models.Model):
    """Members that ``clean()`` judges instead of the stored ones, one list per many-to-many field."""

    class Meta:
        abstract = True

    def _stage(self, **members: Iterable[models.Model] | None) -> None:
        # A new dict each time: serializers validate a shallow copy of the instance, which must not share it.
        staged = {name: list(objs) for name, objs in members.items() if objs is not None}
        self._staged_members = {**getattr(self, "_staged_members", {}), **staged}

    def is_staged(self, name: str) -> bool:
        return name in getattr(self, "_staged_members", {})

    def member_list(self, name: str) -> list:
        """The staged members of ``name``, else the stored ones."""
        staged = getattr(self, "_staged_members", {})
        if name in staged:
            return staged[name]
        return list(getattr(self, name).all()) if self.pk else []


class AffinityLabel(StagedMembersModel):
    """A tag on VMs and hosts that affinity groups name instead of listing each one (oVirt's affinity label)."""

    name = models.CharField(max_length=120, unique=True)
    description = models.CharField(max_length=255, blank=True)
    vms = models.ManyToManyField(VirtualMachine, blank=True, related_name="affinity_labels", verbose_name="VMs")
    hosts = models.ManyToManyField(Host, blank=True, related_name="affinity_labels")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def stage_members(
        self, *, vms: Iterable[VirtualMachine] | None = None, hosts: Iterable[Host] | None = None
    ) -> None:
        """Make ``clean()`` judge these members instead of the stored ones (forms and serializers call this)."""
        self._stage(vms=vms, hosts=hosts)

    def clean(self) -> None:
        """New members must not make an enforcing group that names the label contradict another of its cluster."""
        super().clean()
        if not self.pk or not (self.is_staged("vms") or self.is_staged("hosts")):
            return  # no group names a new label; unchanged members change nothing
        override = LabelOverride(
            self.pk,
            vms=[(vm.cluster_id, vm.name) for vm in self.member_list("vms")],
            hosts=[(host.cluster_id, host.name) for host in self.member_list("hosts")],
        )
        naming = AffinityGroup.objects.enforcing().filter(Q(vm_labels=self) | Q(host_labels=self)).distinct()
        cluster_groups = list(AffinityGroup.objects.enforcing().filter(cluster__in=naming.values("cluster")))
        members = member_names(cluster_groups, override)
        rules = {group.pk: GroupRules.of(group, *members[group.pk]) for group in cluster_groups}
        naming_ids = set(naming.values_list("pk", flat=True))
        errors: dict[str, list[str]] = {}
        for group in cluster_groups:
            if group.pk not in naming_ids:
                continue
            others = [rules[other.pk] for other in cluster_groups if other.cluster_id == group.cluster_id]
            found = contradictions(rules[group.pk], others)
            errors.setdefault("vms", []).extend(found["vms"])
            errors.setdefault("hosts" if self.is_staged("hosts") else "vms", []).extend(found["hosts"])
        errors = {field: list(dict.fromkeys(messages)) for field, messages in errors.items() if messages}
        if errors:
            raise ValidationError(errors)


@dataclass(frozen=True)
class LabelOverride:
    """A label's members as a pending edit would leave them: (cluster id, name) of each VM and host."""

    label_id: int
    vms: list[tuple[int, str]]
    hosts: list[tuple[int, str]]


class AffinityGroupQuerySet(models.QuerySet):
    def enforcing(self) -> AffinityGroupQuerySet:
        """Groups with at least one enforcing (hard) rule: the only ones that can contradict each other."""
        hard_vm = Q(vm_enforcing=True) & ~Q(vm_rule=AffinityRule.DISABLED)
        hard_host = Q(host_enforcing=True) & ~Q(host_rule=AffinityRule.DISABLED)
        return self.filter(hard_vm | hard_host)


class AffinityGroup(StagedMembersModel):
    """oVirt's affinity group: VMs of one cluster that run together or apart (the VM rule), on or away from some
    of its hosts (the host rule). The scheduler applies groups by ``priority``, highest first.

    ``managed`` groups are kept by hpadmin for its High Performance VMs, with why each member is there in
    ``managed_reasons``; admins see them but cannot change them.
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="affinity_groups")
    name = models.CharField(max_length=120)
    description = models.CharField(max_length=255, blank=True)
    priority = models.FloatField(default=1.0, help_text="Groups with a higher priority are applied first.")
    vm_rule = models.CharField(
        "VM rule",
        max_length=8,
        choices=AffinityRule.choices,
        default=AffinityRule.DISABLED,
        help_text="Positive: the VMs run on one host; negative: each on another host.",
    )
    vm_enforcing = models.BooleanField(
        "VM rule enforcing", default=True, help_text="Hard: hosts that break the rule are refused; soft: avoided."
    )
    host_rule = models.CharField(
        max_length=8,
        choices=AffinityRule.choices,
        default=AffinityRule.DISABLED,
        help_text="Positive: the VMs run on the group's hosts; negative: never on them.",
    )
    host_enforcing = models.BooleanField(
        "Host rule enforcing", default=True, help_text="Hard: hosts that break the rule are refused; soft: avoided."
    )
    vms = models.ManyToManyField(VirtualMachine, blank=True, related_name="affinity_groups", verbose_name="VMs")
    hosts = models.ManyToManyField(Host, blank=True, related_name="affinity_groups")
    vm_labels = models.ManyToManyField(
        AffinityLabel, blank=True, related_name="vm_affinity_groups", verbose_name="VM labels"
    )
    host_labels = models.ManyToManyField(AffinityLabel, blank=True, related_name="host_affinity_groups")
    managed = models.BooleanField(
        default=False, help_text="Created and kept by hpadmin for High Performance VMs; admins cannot change it."
    )
    managed_reasons = models.JSONField(
        default=dict, blank=True, help_text="Member name -> why hpadmin put it in the group (managed groups)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AffinityGroupQuerySet.as_manager()

    class Meta:
        ordering = ["-priority", "name"]
        constraints = [models.UniqueConstraint(fields=["cluster", "name"], name="unique_affinity_group_name")]

    def __str__(self) -> str:
        return self.name

    def stage_members(
        self,
        *,
        vms: Iterable[VirtualMachine] | None = None,
        hosts: Iterable[Host] | None = None,
        vm_labels: Iterable[AffinityLabel] | None = None,
        host_labels: Iterable[AffinityLabel] | None = None,
    ) -> None:
        """Make ``clean()`` judge these members instead of the stored ones (forms and serializers call this)."""
        self._stage(vms=vms, hosts=hosts, vm_labels=vm_labels, host_labels=host_labels)

    # -- stored members, labels expanded ------------------------------------------------------------------------

    def member_vm_ids(self) -> set[int]:
        """The group's VMs and its VM labels' VMs in its cluster, in one query."""
        via_labels = AffinityLabel.vms.through.objects.filter(affinitylabel__vm_affinity_groups=self)
        return set(
            VirtualMachine.objects.filter(
                Q(affinity_groups=self) | Q(cluster_id=self.cluster_id, pk__in=via_labels.values("virtualmachine_id"))
            ).values_list("pk", flat=True)
        )

    def member_host_ids(self) -> set[int]:
        """The group's hosts and its host labels' hosts in its cluster, in one query."""
        via_labels = AffinityLabel.hosts.through.objects.filter(affinitylabel__host_affinity_groups=self)
        return set(
            Host.objects.filter(
                Q(affinity_groups=self) | Q(cluster_id=self.cluster_id, pk__in=via_labels.values("host_id"))
            ).values_list("pk", flat=True)
        )

    # -- validation ----------------------------------------------------------------------------------------------

    def clean(self) -> None:
        super().clean()
        if not self.cluster_id:
            return  # clean_fields() reports the missing cluster
        errors: dict[str, list[str]] = {}

        def error(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        cluster = self.cluster
        for field, noun in (("vms", "VM"), ("hosts", "Host")):
            for member in self.member_list(field):
                if member.cluster_id != self.cluster_id:
                    error(field, f"{noun} {member.name} is not in cluster {cluster.name}.")
        vms, hosts = self._expanded_members()
        for field, rule, what in (("vm_rule", self.vm_rule, "VM"), ("host_rule", self.host_rule, "host")):
            if rule == AffinityRule.DISABLED:
                continue
            label = AffinityRule(rule).label
            if not vms:
                error(field, f"A {label.lower()} {what} rule needs at least one VM of cluster {cluster.name}.")
            if field == "host_rule" and not hosts:
                error(field, f"A {label.lower()} host rule needs at least one host of cluster {cluster.name}.")
        if not errors:
            for field, messages in self._contradictions(vms, hosts).items():
                for message in messages:
                    error(field, message)
        if errors:
            raise ValidationError(errors)

    def _expanded_members(self) -> tuple[frozenset[str], frozenset[str]]:
        """Names of the VMs and hosts the staged (or stored) members and labels stand for in the cluster."""
        vms = {vm.name for vm in self.member_list("vms") if vm.cluster_id == self.cluster_id}
        hosts = {host.name for host in self.member_list("hosts") if host.cluster_id == self.cluster_id}
        vm_labels = [label.pk for label in self.member_list("vm_labels")]
        host_labels = [label.pk for label in self.member_list("host_labels")]
        if vm_labels:
            in_labels = VirtualMachine.objects.filter(cluster_id=self.cluster_id, affinity_labels__in=vm_labels)
            vms.update(in_labels.values_list("name", flat=True))
        if host_labels:
            in_labels = Host.objects.filter(cluster_id=self.cluster_id, affinity_labels__in=host_labels)
            hosts.update(in_labels.values_list("name", flat=True))
        return frozenset(vms), frozenset(hosts)

    def _contradictions(self, vms: frozenset[str], hosts: frozenset[str]) -> dict[str, list[str]]:
        group = GroupRules.of(self, vms, hosts)
        if group.vm_rule == AffinityRule.DISABLED and group.host_rule == AffinityRule.DISABLED:
            return {}
        others = list(AffinityGroup.objects.enforcing().filter(cluster_id=self.cluster_id).exclude(pk=self.pk))
        members = member_names(others)
        return contradictions(group, [GroupRules.of(other, *members[other.pk]) for other in others])


# -- contradictions between enforcing groups ----------------------------------------------------------------------


@dataclass(frozen=True)
class GroupRules:
    """A group as the contradiction check reads it: its enforcing rules (a soft rule counts as disabled) and its
    members, labels expanded, by name."""

    pk: int | None
    name: str
    vm_rule: str
    host_rule: str
    vms: frozenset[str]
    hosts: frozenset[str]

    @classmethod
    def of(cls, group: AffinityGroup, vms: frozenset[str], hosts: frozenset[str]) -> GroupRules:
        return cls(
            group.pk,
            group.name,
            group.vm_rule if group.vm_enforcing else AffinityRule.DISABLED,
            group.host_rule if group.host_enforcing else AffinityRule.DISABLED,
            vms,
            hosts,
        )


def contradictions(group: GroupRules, others: Iterable[GroupRules]) -> dict[str, list[str]]:
    """Where ``group`` and another enforcing group of its cluster cannot both hold: {"vms": [...], "hosts": [...]}.

    VM to VM: two VMs in a positive and in a negative group must share a host and must not. VM to host: a VM in a
    positive and in a negative group that share a host may run on that host and must not (oVirt's
    VM_TO_HOST_CONFLICT_IN_ENFORCING_POSITIVE_AND_NEGATIVE_AFFINITY).
    """
    found: dict[str, list[str]] = {"vms": [], "hosts": []}
    for other in others:
        if other.pk is not None and other.pk == group.pk:
            continue
        pair = _opposed(group, other, "vm_rule")
        if pair:
            together, apart = pair
            common = group.vms & other.vms
            if len(common) >= 2:
                found["vms"].append(
                    f"{_names('VM', common)} must run together (group {together.name}) and apart (group {apart.name})."
                )
        pair = _opposed(group, other, "host_rule")
        if pair:
            on, away = pair
            common, shared = group.vms & other.vms, group.hosts & other.hosts
            if common and shared:
                allowed = "must run on" if len(on.hosts) == 1 else "may run only on"
                found["hosts"].append(
                    f"{_names('VM', common)} {allowed} {_names('host', on.hosts)} (group {on.name}) "
                    f"and must not run on {_names('host', shared)} (group {away.name})."
                )
    return found


def _opposed(a: GroupRules, b: GroupRules, rule: str) -> tuple[GroupRules, GroupRules] | None:
    """(the positive group, the negative group) when ``rule`` is positive in one and negative in the other."""
    rules = (getattr(a, rule), getattr(b, rule))
    if rules == (AffinityRule.POSITIVE, AffinityRule.NEGATIVE):
        return a, b
    if rules == (AffinityRule.NEGATIVE, AffinityRule.POSITIVE):
        return b, a
    return None


def member_names(
    groups: list[AffinityGroup], override: LabelOverride | None = None
) -> dict[int, tuple[frozenset[str], frozenset[str]]]:
    """Group id -> (VM names, host names) of stored ``groups``, labels expanded to their members in each group's
    cluster: four queries whatever the number of groups, six with ``override`` (one label's pending members)."""
    vms = _kind_names(groups, "vms", AffinityGroup.vms, AffinityGroup.vm_labels, override and override.vms, override)
    hosts = _kind_names(
        groups, "hosts", AffinityGroup.hosts, AffinityGroup.host_labels, override and override.hosts, override
    )
    return {group.pk: (frozenset(vms[group.pk]), frozenset(hosts[group.pk])) for group in groups}


def _kind_names(groups, kind, direct, labels, staged, override) -> dict[int, set[str]]:
    """Group id -> names of its members of one ``kind`` ("vms" or "hosts"): ``direct`` ones and those of its
    ``labels`` (many-to-many descriptors of AffinityGroup); the ``override`` label has the ``staged`` members."""
    ids = [group.pk for group in groups]
    out: dict[int, set[str]] = {pk: set() for pk in ids}
    member = direct.field.m2m_reverse_field_name()  # the through model's foreign key to the VM or host
    for group_id, name in direct.through.objects.filter(affinitygroup__in=ids).values_list(
        "affinitygroup_id", f"{member}__name"
    ):
        out[group_id].add(name)
    in_cluster = {f"affinitylabel__{kind}__cluster_id": F("affinitygroup__cluster_id")}
    via_labels = labels.through.objects.filter(affinitygroup__in=ids, **in_cluster)
    if override is not None:
        via_labels = via_labels.exclude(affinitylabel_id=override.label_id)
        cluster_of = {group.pk: group.cluster_id for group in groups}
        naming = labels.through.objects.filter(affinitygroup__in=ids, affinitylabel_id=override.label_id)
        for group_id in naming.values_list("affinitygroup_id", flat=True):
            out[group_id].update(name for cluster_id, name in staged if cluster_id == cluster_of[group_id])
    for group_id, name in via_labels.values_list("affinitygroup_id", f"affinitylabel__{kind}__name"):
        out[group_id].add(name)
    return out


def _names(noun: str, names: Iterable[str]) -> str:
    """ "VM a", "VMs a and b", "VMs a, b and c"."""
    ordered = sorted(names)
    if len(ordered) == 1:
        return f"{noun} {ordered[0]}"
    return f"{noun}s {', '.join(ordered[:-1])} and {ordered[-1]}"
