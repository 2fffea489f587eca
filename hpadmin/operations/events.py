"""The audit trail: one function records an event; messages follow oVirt's audit log wording."""

from __future__ import annotations

from .models import Event, Severity


def record(
    code: str,
    message: str,
    *,
    severity: str = Severity.INFO,
    user=None,
    vm=None,
    host=None,
    job=None,
    cluster=None,
) -> Event:
    """Write one event; its cluster is ``cluster``, else the VM's or the host's."""
    cluster_id = getattr(cluster, "pk", None) or getattr(vm, "cluster_id", None) or getattr(host, "cluster_id", None)
    return Event.objects.create(
        code=code,
        message=message,
        severity=severity,
        user=user if getattr(user, "is_authenticated", False) else None,
        vm=vm,
        host=host,
        job=job,
        cluster_id=cluster_id,
    )
