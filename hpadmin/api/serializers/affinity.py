"""Affinity groups and labels, their members as id lists. The rules are the models' ``clean()``, which judges the
members a request leaves (staged before it runs), so a membership action is refused as the same edit would be."""

from __future__ import annotations

from django.db import models
from rest_framework import serializers
from rest_framework.validators import UniqueTogetherValidator

from hpadmin.affinity.models import AffinityGroup, AffinityLabel
from hpadmin.inventory.models import Host
from hpadmin.vms.models import VirtualMachine

from .base import FiniteFloatField, ValidatedModelSerializer, VisiblePrimaryKeyRelatedField, detail_url


class StagedMembersSerializer(ValidatedModelSerializer):
    """Hands the member lists the client sent to the model's ``stage_members()`` before its ``clean()``."""

    def build(self, attrs: dict) -> models.Model:
        obj = super().build(attrs)
        obj.stage_members(**{name: attrs[name] for name in self.m2m_names() & attrs.keys()})
        return obj


class AffinityGroupSerializer(StagedMembersSerializer):
    """An affinity group of one cluster (fixed once created): its VM and host rules, its members (VMs, hosts and
    the labels that stand for more), and whether hpadmin manages it, with why each member is there."""

    url = detail_url("affinity-group")
    priority = FiniteFloatField(required=False, help_text="Groups with a higher priority are applied first.")

    class Meta:
        model = AffinityGroup
        fields = [
            "id",
            "url",
            "name",
            "description",
            "cluster",
            "priority",
            "vm_rule",
            "vm_enforcing",
            "host_rule",
            "host_enforcing",
            "vms",
            "hosts",
            "vm_labels",
            "host_labels",
            "managed",
            "managed_reasons",
            "created_at",
        ]
        read_only_fields = ["managed", "managed_reasons", "created_at"]
        validators = [
            UniqueTogetherValidator(
                AffinityGroup.objects.all(),
                fields=["cluster", "name"],
                message="The cluster has an affinity group of this name already.",
            )
        ]

    def get_fields(self) -> dict:
        fields = super().get_fields()
        if self.instance is not None:
            fields["cluster"].read_only = True
        return fields


class AffinityLabelSerializer(StagedMembersSerializer):
    """A label on VMs and hosts of any cluster; the groups that name it count its members in their cluster."""

    url = detail_url("affinity-label")

    class Meta:
        model = AffinityLabel
        fields = ["id", "url", "name", "description", "vms", "hosts", "created_at"]
        read_only_fields = ["created_at"]


class VmIdsSerializer(serializers.Serializer):
    ids = VisiblePrimaryKeyRelatedField(many=True, queryset=VirtualMachine.objects.all(), help_text="VM ids.")


class HostIdsSerializer(serializers.Serializer):
    ids = VisiblePrimaryKeyRelatedField(many=True, queryset=Host.objects.all(), help_text="Host ids.")
