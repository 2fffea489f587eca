"""Jobs and events as oVirt shows them: hpadmin's migration jobs and its audit trail, read only."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from hpadmin.operations.models import Event, JobState, MigrationJob, Severity

from .resources import Resource, integer, ref_to, vm_ref

JOB_STATUS = {
    JobState.PENDING: "started",
    JobState.SCHEDULING: "started",
    JobState.MIGRATING: "started",
    JobState.SUCCEEDED: "finished",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "aborted",
}
SEVERITY = {Severity.INFO: "normal", Severity.WARNING: "warning", Severity.ERROR: "error"}


class Jobs(Resource):
    collection = "jobs"
    entity = "job"
    kind = "job"
    model = MigrationJob
    search_fields = {}

    def queryset(self) -> QuerySet:
        return super().queryset().select_related("vm", "source", "destination", "requested_by")

    def listed(self, params) -> list:
        return list(self.limit(self.searched(self.queryset(), params).order_by("-created_at", "-pk"), params))

    def represent(self, job: MigrationJob) -> dict:
        route = f"from {job.source.name if job.source else '?'}"
        if job.destination:
            route += f" to {job.destination.name}"
        return {
            "href": self.href(job),
            "id": self.ovirt_id(job),
            "description": f"Migrating VM {job.vm.name} {route}",
            "status": JOB_STATUS[job.state],
            "start_time": job.started_at or job.created_at,
            "end_time": job.finished_at,
            "last_updated": job.heartbeat_at or job.finished_at or job.started_at or job.created_at,
            "external": False,
            "auto_cleared": True,
            "owner": {"user_name": job.requested_by.username} if job.requested_by else None,
        }


class Events(Resource):
    """The audit trail, newest first; ``from=<id>`` gives the events after that one, as oVirt's does."""

    collection = "events"
    entity = "event"
    model = Event
    search_fields = {}

    def ovirt_id(self, event: Event) -> str:
        return str(event.pk)

    def find(self, ovirt_id: str) -> Event:
        event = self.queryset().filter(pk=int(ovirt_id)).first() if ovirt_id.isdigit() else None
        if event is None:
            raise Http404(f"There is no event with id '{ovirt_id}' that you may see.")
        return event

    def queryset(self) -> QuerySet:
        return super().queryset().select_related("user", "vm")

    def listed(self, params) -> list:
        events = self.searched(self.queryset(), params)
        if "from" in params:
            events = events.filter(pk__gt=integer(params["from"], "from"))
        return list(self.limit(events.order_by("-pk"), params))

    def represent(self, event: Event) -> dict:
        return {
            "href": self.href(event),
            "id": self.ovirt_id(event),
            "name": event.code,
            "description": event.message,
            "severity": SEVERITY.get(event.severity, "normal"),
            "time": event.time,
            "origin": "hpadmin",
            "cluster": ref_to("cluster", event.cluster_id),
            "host": ref_to("host", event.host_id),
            "vm": vm_ref(event.vm) if event.vm_id else None,
            "user": {"user_name": event.user.username} if event.user_id else None,
        }
