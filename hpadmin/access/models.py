"""Grants: a role given to a user or a group on the system, a cluster or a VM."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from hpadmin.inventory.models import Cluster
from hpadmin.vms.models import VirtualMachine

from .roles import SYSTEM_ONLY_ROLES, VM_ROLES, Role


class Grant(models.Model):
    """``role`` for ``user`` or ``group`` on ``vm``, else on ``cluster``, else on the whole system."""

    role = models.CharField(max_length=16, choices=Role.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="grants"
    )
    group = models.ForeignKey(Group, on_delete=models.CASCADE, null=True, blank=True, related_name="grants")
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, null=True, blank=True, related_name="grants")
    vm = models.ForeignKey(VirtualMachine, on_delete=models.CASCADE, null=True, blank=True, related_name="grants")
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["role", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=True) ^ Q(group__isnull=True), name="grant_to_a_user_or_a_group"
            ),
            models.CheckConstraint(condition=Q(cluster__isnull=True) | Q(vm__isnull=True), name="grant_on_one_object"),
            models.UniqueConstraint(
                fields=["role", "user", "group", "cluster", "vm"], nulls_distinct=False, name="unique_grant"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} on {self.scope_label} to {self.grantee_label}"

    @property
    def grantee_label(self) -> str:
        return f"user {self.user.get_username()}" if self.user_id else f"group {self.group.name}"

    @property
    def scope_label(self) -> str:
        if self.vm_id:
            return f"VM {self.vm.name}"
        if self.cluster_id:
            return f"cluster {self.cluster.name}"
        return "the system"

    @property
    def scope_cluster_id(self) -> int | None:
        """The cluster the grant lies in (a VM's own), None on the system."""
        return self.vm.cluster_id if self.vm_id else self.cluster_id

    def clean(self) -> None:
        errors = {}
        if bool(self.user_id) == bool(self.group_id):
            errors["user"] = "Grant the role to a user or to a group."
        if self.cluster_id and self.vm_id:
            errors["vm"] = "Grant the role on a cluster or on a VM, not both."
        elif self.role in SYSTEM_ONLY_ROLES and (self.cluster_id or self.vm_id):
            errors["role"] = f"{self.role} is granted on the system only; on a cluster grant ClusterAdmin."
        elif self.vm_id and self.role not in VM_ROLES:
            roles = ", ".join(sorted(VM_ROLES))
            errors["role"] = f"{self.role} needs a cluster or the system; on one VM grant {roles}."
        if not errors and self._duplicate().exists():
            errors["role"] = f"{self.grantee_label.capitalize()} already holds {self.role} on {self.scope_label}."
        if errors:
            raise ValidationError(errors)

    def _duplicate(self):
        same = Grant.objects.filter(
            role=self.role, user_id=self.user_id, group_id=self.group_id, cluster_id=self.cluster_id, vm_id=self.vm_id
        )
        return same.exclude(pk=self.pk) if self.pk else same
