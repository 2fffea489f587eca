"""Affinity groups (``/clusters/{id}/affinitygroups``) and labels (``/affinitylabels``) as oVirt 4.4 shows them,
with their member collections. Groups hpadmin keeps for its HP VMs are refused any change (409), as in the v1 API.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import status

from hpadmin.access.roles import Permit
from hpadmin.affinity.models import AffinityGroup, AffinityLabel, AffinityRule
from hpadmin.api.serializers import AffinityGroupSerializer, AffinityLabelSerializer
from hpadmin.api.views import MANAGED_GROUP
from hpadmin.inventory.models import Host
from hpadmin.operations.errors import OperationError
from hpadmin.vms.models import VirtualMachine

from .inventory import Hosts
from .representation import items
from .resources import BadInput, Resource, boolean, find_vm, ref_to, refuse_unknown, vm_ref, vm_referenced


def rule_body(rule: str, enforcing: bool) -> dict:
    return {"enabled": rule != AffinityRule.DISABLED, "positive": rule == AffinityRule.POSITIVE, "enforcing": enforcing}


def rule_from(body: Any, attribute: str, current: str) -> tuple[str, bool | None]:
    rule = refuse_unknown(body, {"enabled", "positive", "enforcing"}, attribute)
    enabled = boolean(rule.get("enabled", "true"), f"{attribute}.enabled")
    positive = boolean(rule["positive"], f"{attribute}.positive") if "positive" in rule else None
    if not enabled:
        value = AffinityRule.DISABLED
    elif positive is None:
        if current == AffinityRule.DISABLED:
            raise BadInput(attribute, "say whether the enabled rule is positive.")
        value = current
    else:
        value = AffinityRule.POSITIVE if positive else AffinityRule.NEGATIVE
    enforcing = boolean(rule["enforcing"], f"{attribute}.enforcing") if "enforcing" in rule else None
    return value, enforcing


class Members(Resource):
    """A member collection of a group or label (``vms``, ``hosts``): listing, adding one, removing one."""

    field: str

    def queryset(self) -> QuerySet:
        return self.context.access.scope(getattr(self.parent, self.field).all())

    def change(self, member, add: bool) -> None:
        self.owner.check_changeable(self.parent)
        self.require(self.owner.change_permit, self.parent)
        current = {obj.pk for obj in getattr(self.parent, self.field).all()}
        members = current | {member.pk} if add else current - {member.pk}
        self.owner.save_v1({self.field: sorted(members)}, self.parent)

    def remove(self, member) -> None:
        self.change(member, add=False)


class VmMembers(Members):
    collection = "vms"
    entity = "vm"
    model = VirtualMachine
    field = "vms"

    def ovirt_id(self, vm: VirtualMachine) -> str:
        return str(vm.uuid)

    def find(self, ovirt_id: str) -> VirtualMachine:
        return find_vm(self.context, ovirt_id, getattr(self.parent, self.field).all())

    def represent(self, vm: VirtualMachine) -> dict:
        return {**vm_ref(vm), "name": vm.name}

    def add(self, body: dict) -> VirtualMachine:
        vm = vm_referenced(self.context, body, "vm")
        self.change(vm, add=True)
        return vm


class HostMembers(Members):
    collection = "hosts"
    entity = "host"
    kind = "host"
    model = Host
    field = "hosts"

    def represent(self, host: Host) -> dict:
        return {**ref_to("host", host.pk), "name": host.name}

    def add(self, body: dict) -> Host:
        host = Hosts(self.context).find_referenced(body, "host")
        self.change(host, add=True)
        return host


class AffinityGroups(Resource):
    collection = "affinitygroups"
    entity = "affinity_group"
    kind = "affinity_group"
    model = AffinityGroup
    serializer_class = AffinityGroupSerializer
    children = {"vms": VmMembers, "hosts": HostMembers}

    def queryset(self) -> QuerySet:
        groups = super().queryset().filter(cluster=self.parent)
        return groups.prefetch_related("vms", "hosts", "vm_labels", "host_labels")

    def represent(self, group: AffinityGroup) -> dict:
        return {
            **self.common(group),
            "priority": group.priority,
            "vms_rule": rule_body(group.vm_rule, group.vm_enforcing),
            "hosts_rule": rule_body(group.host_rule, group.host_enforcing),
            "enforcing": group.vm_enforcing,
            "positive": group.vm_rule == AffinityRule.POSITIVE if group.vm_rule != AffinityRule.DISABLED else None,
            "cluster": ref_to("cluster", group.cluster_id),
            "vms": {"vm": [vm_ref(vm) for vm in group.vms.all()]},
            "hosts": {"host": [ref_to("host", host.pk) for host in group.hosts.all()]},
            "vm_labels": {"affinity_label": [ref_to("affinity_label", label.pk) for label in group.vm_labels.all()]},
            "host_labels": {
                "affinity_label": [ref_to("affinity_label", label.pk) for label in group.host_labels.all()]
            },
        }

    def check_changeable(self, group: AffinityGroup) -> None:
        if group.managed:
            raise OperationError(MANAGED_GROUP.format(name=group.name), status=status.HTTP_409_CONFLICT)

    def to_v1(self, body: Any, instance=None) -> dict:
        known = {"name", "description", "priority", "vms_rule", "hosts_rule", "enforcing", "positive", "vms", "hosts"}
        body = refuse_unknown(body, known, self.entity)
        data: dict[str, Any] = {key: body[key] for key in ("name", "description", "priority") if key in body}
        if instance is None:
            data["cluster"] = self.parent.pk
        vm_rule = instance.vm_rule if instance else AffinityRule.DISABLED
        if "positive" in body or "enforcing" in body:  # oVirt 4.1's attributes: the VM rule
            legacy = {key: body[key] for key in ("positive", "enforcing") if key in body}
            body = {**body, "vms_rule": {**legacy, **(body.get("vms_rule") or {})}}
        for attribute, rule, enforcing, current in (
            ("vms_rule", "vm_rule", "vm_enforcing", vm_rule),
            ("hosts_rule", "host_rule", "host_enforcing", instance.host_rule if instance else AffinityRule.DISABLED),
        ):
            if attribute in body:
                data[rule], forced = rule_from(body[attribute], attribute, current)
                if forced is not None:
                    data[enforcing] = forced
        if "vms" in body:
            data["vms"] = [vm_referenced(self.context, vm, "vms").pk for vm in items(body, "vms", "vm")]
        if "hosts" in body:
            hosts = Hosts(self.context)
            data["hosts"] = [hosts.find_referenced(host, "hosts").pk for host in items(body, "hosts", "host")]
        return data

    def update(self, group: AffinityGroup, body: dict) -> AffinityGroup:
        self.check_changeable(group)
        return super().update(group, body)

    def remove(self, group: AffinityGroup) -> None:
        self.check_changeable(group)
        super().remove(group)


class AffinityLabels(Resource):
    collection = "affinitylabels"
    entity = "affinity_label"
    kind = "affinity_label"
    model = AffinityLabel
    serializer_class = AffinityLabelSerializer
    children = {"vms": VmMembers, "hosts": HostMembers}
    add_permit = change_permit = Permit.MANAGE_SYSTEM

    def queryset(self) -> QuerySet:
        return super().queryset().prefetch_related("vms", "hosts")

    def represent(self, label: AffinityLabel) -> dict:
        return {
            **self.common(label),
            "read_only": False,
            "has_implicit_affinity_group": False,
            "vms": {"vm": [vm_ref(vm) for vm in label.vms.all()]},
            "hosts": {"host": [ref_to("host", host.pk) for host in label.hosts.all()]},
        }

    def check_changeable(self, label: AffinityLabel) -> None:
        """Labels are never managed."""

    def to_v1(self, body: Any, instance=None) -> dict:
        body = refuse_unknown(body, {"name", "description", "read_only", "has_implicit_affinity_group"}, self.entity)
        for flag in ("read_only", "has_implicit_affinity_group"):
            if flag in body and boolean(body[flag], flag):
                raise BadInput(flag, "hpadmin's labels are neither read-only nor implicit groups.")
        return {key: body[key] for key in ("name", "description") if key in body}
