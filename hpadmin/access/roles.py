"""oVirt's roles, simplified: each role is a fixed set of permits; a grant gives one role on a scope.

Admin roles open the administration portal; user roles open only the user portal (and the API). A role held
on the system covers every cluster, one held on a cluster every VM, host, template, pool and affinity group in
it. A VM's owner holds UserVmManager on it without a grant, as oVirt gives its creator.
"""

from __future__ import annotations

from enum import StrEnum

from django.db import models


class Permit(StrEnum):
    VIEW = "view"  # read the object (and what it holds)
    OPERATE = "operate"  # start, stop, reboot a VM; read its console details
    MIGRATE = "migrate"  # migrate a VM, cancel its migration, restore its settings
    EDIT_VM = "edit_vm"  # change or remove a VM, its NUMA pinning
    CREATE_VM = "create_vm"  # create VMs in a cluster from its templates, within one's quota
    MANAGE_CLUSTER = "manage_cluster"  # the cluster, its hosts, templates, pools and affinity groups
    GRANT = "grant"  # grant and revoke roles below SuperUser within the scope
    MANAGE_SYSTEM = "manage_system"  # clusters, labels, quotas, system-wide grants


class Role(models.TextChoices):
    SUPER_USER = "SuperUser", "SuperUser"
    CLUSTER_ADMIN = "ClusterAdmin", "ClusterAdmin"
    VIEWER = "Viewer", "Viewer (read-only admin)"
    VM_OPERATOR = "VmOperator", "VmOperator"
    USER_VM_MANAGER = "UserVmManager", "UserVmManager"
    VM_CREATOR = "VmCreator", "VmCreator"


PERMITS: dict[str, frozenset[Permit]] = {
    Role.SUPER_USER: frozenset(Permit),
    Role.CLUSTER_ADMIN: frozenset(Permit) - {Permit.MANAGE_SYSTEM},
    Role.VIEWER: frozenset({Permit.VIEW}),
    Role.VM_OPERATOR: frozenset({Permit.VIEW, Permit.OPERATE, Permit.MIGRATE}),
    Role.USER_VM_MANAGER: frozenset({Permit.VIEW, Permit.OPERATE, Permit.EDIT_VM}),
    Role.VM_CREATOR: frozenset({Permit.CREATE_VM}),
}

ADMIN_ROLES = frozenset({Role.SUPER_USER, Role.CLUSTER_ADMIN, Role.VIEWER})
# Roles that name what one may do to VMs, so a grant on one VM means something; the others need a wider scope.
VM_ROLES = frozenset({Role.VM_OPERATOR, Role.USER_VM_MANAGER, Role.VIEWER})
# SuperUser only on the system: on a cluster it would be ClusterAdmin.
SYSTEM_ONLY_ROLES = frozenset({Role.SUPER_USER})
