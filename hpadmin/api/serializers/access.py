"""Grants of roles, users' quotas, and the users they name."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied

from hpadmin.access.models import Grant
from hpadmin.access.services import may_grant, refusal
from hpadmin.access.shortcuts import access_of
from hpadmin.vms.models import Quota

from .base import ValidatedModelSerializer, detail_url


class GrantSerializer(ValidatedModelSerializer):
    """A role given to a user or a group on the system (no ``cluster`` nor ``vm``), a cluster or a VM."""

    url = detail_url("grant")
    scope = serializers.CharField(source="scope_label", read_only=True, help_text='e.g. "cluster hp-a".')

    class Meta:
        model = Grant
        fields = ["id", "url", "role", "user", "group", "cluster", "vm", "scope", "granted_by", "created_at"]
        read_only_fields = ["granted_by", "created_at"]

    def validate(self, attrs: dict) -> dict:
        # Whether the caller may grant it comes first: a refusal for a duplicate would tell of grants they cannot see.
        grant = self.build(attrs)
        if not may_grant(access_of(self.context["request"]), grant):
            raise PermissionDenied(refusal(grant))
        return super().validate(attrs)


class QuotaSerializer(ValidatedModelSerializer):
    """What one user's VMs may hold together."""

    url = detail_url("quota")

    class Meta:
        model = Quota
        fields = ["id", "url", "user", "max_vms", "max_vcpus", "max_memory_mib"]


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = get_user_model()
        fields = ["id", "username", "first_name", "last_name", "email", "is_active", "is_staff", "groups"]
        read_only_fields = fields
