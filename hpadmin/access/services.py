"""Granting and revoking roles, and setting quotas: each checked against the granter's own permits and recorded
in the audit trail with oVirt's wording."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import transaction

from hpadmin.operations import events
from hpadmin.vms.models import Quota

from .models import Grant
from .policy import Access
from .roles import SYSTEM_ONLY_ROLES, Permit


def may_grant(access: Access, grant: Grant) -> bool:
    """Whether ``access`` may give or take ``grant``: GRANT on its scope (the system, the cluster, the VM's
    cluster or the VM), and only the system's own administrators hand out SuperUser."""
    if grant.role in SYSTEM_ONLY_ROLES and Permit.MANAGE_SYSTEM not in access.system:
        return False
    scope = grant.vm or grant.cluster
    return access.can(Permit.GRANT, scope)


def refusal(grant: Grant, verb: str = "grant") -> str:
    return f"You may not {verb} {grant.role} on {grant.scope_label}."


def _links(grant: Grant) -> dict:
    return {"vm": grant.vm, "cluster": grant.cluster or (grant.vm.cluster if grant.vm_id else None)}


@transaction.atomic
def grant_role(grant: Grant, access: Access, user) -> Grant:
    """Save the (cleaned) ``grant`` if ``access`` may give it."""
    if not may_grant(access, grant):
        raise PermissionDenied(refusal(grant))
    grant.granted_by = user
    grant.save()
    events.record(
        "user_add_permission",
        f"{grant.grantee_label.capitalize()} was granted permission for Role {grant.role} on {grant.scope_label}, "
        f"by {user.get_username()}.",
        user=user,
        **_links(grant),
    )
    return grant


@transaction.atomic
def revoke(grant: Grant, access: Access, user) -> None:
    if not may_grant(access, grant):
        raise PermissionDenied(refusal(grant, "revoke"))
    links = _links(grant)
    grant.delete()
    events.record(
        "user_remove_permission",
        f"{grant.grantee_label.capitalize()}'s permission for Role {grant.role} on {grant.scope_label} was removed "
        f"by {user.get_username()}.",
        user=user,
        **links,
    )


@transaction.atomic
def set_quota(quota: Quota, user) -> Quota:
    """Save the (cleaned) quota; only the system's administrators set quotas (the caller checks)."""
    quota.save()
    events.record(
        "user_quota_set",
        f"Quota of {quota.user.get_username()} set to {quota.max_vms} VMs, {quota.max_vcpus} vCPUs and "
        f"{quota.max_memory_mib} MiB of memory by {user.get_username()}.",
        user=user,
    )
    return quota
