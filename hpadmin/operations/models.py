"""Migration jobs and the audit trail of events."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class JobState(models.TextChoices):
    PENDING = "pending", "Pending"
    SCHEDULING = "scheduling", "Scheduling"
    MIGRATING = "migrating", "Migrating"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_JOB_STATES = (JobState.PENDING, JobState.SCHEDULING, JobState.MIGRATING)
RUNNING_JOB_STATES = (JobState.SCHEDULING, JobState.MIGRATING)


class MigrationReason(models.TextChoices):
    USER = "user", "Requested by a user"
    MAINTENANCE = "maintenance", "Host maintenance"
    BALANCING = "balancing", "Load balancing"
    RESTORE = "restore", "Restoring suspended settings"
    AFFINITY = "affinity", "Affinity rules"
    HA = "ha", "High availability"


class MigrationMode(models.TextChoices):
    MANUAL = "manual", "Destination chosen by the user"
    AUTOMATIC = "automatic", "Destination chosen by the scheduler"


class MigrationJobQuerySet(models.QuerySet):
    def active(self) -> MigrationJobQuerySet:
        """Jobs that have not ended: waiting, scheduling or migrating."""
        return self.filter(state__in=ACTIVE_JOB_STATES)

    def finished(self) -> MigrationJobQuerySet:
        return self.exclude(state__in=ACTIVE_JOB_STATES)

    def running(self) -> MigrationJobQuerySet:
        """Jobs a worker has taken (they count against the concurrency limits)."""
        return self.filter(state__in=RUNNING_JOB_STATES)

    def touching(self, host) -> MigrationJobQuerySet:
        """Jobs leaving or entering ``host``."""
        return self.filter(models.Q(source=host) | models.Q(destination=host))


class MigrationJob(models.Model):
    """One VM's live migration from request to outcome; the row is the truth a recovering worker reads."""

    vm = models.ForeignKey("vms.VirtualMachine", on_delete=models.CASCADE, related_name="migration_jobs")
    # A removed host leaves its jobs' history (a host is removed only with no job running).
    source = models.ForeignKey(
        "inventory.Host", on_delete=models.SET_NULL, null=True, blank=True, related_name="outgoing_jobs"
    )
    destination = models.ForeignKey(
        "inventory.Host", on_delete=models.SET_NULL, null=True, blank=True, related_name="incoming_jobs"
    )
    requested_destination = models.ForeignKey(
        "inventory.Host", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    evacuation = models.ForeignKey("Evacuation", on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="migration_jobs"
    )
    reason = models.CharField(max_length=16, choices=MigrationReason.choices, default=MigrationReason.USER)
    reason_text = models.CharField(max_length=255, blank=True)
    mode = models.CharField(max_length=16, choices=MigrationMode.choices)
    force = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.PENDING, db_index=True)
    phase = models.CharField(max_length=32, blank=True)
    progress = models.FloatField(default=0.0, help_text="Percent done.")
    data_total_mib = models.FloatField(null=True, blank=True)
    data_remaining_mib = models.FloatField(null=True, blank=True)
    dirty_rate_mibps = models.FloatField(null=True, blank=True)
    transferred_mib = models.FloatField(null=True, blank=True)
    downtime_ms = models.FloatField(null=True, blank=True)
    attempt = models.PositiveSmallIntegerField(default=0)
    tried_hosts = models.JSONField(default=list, blank=True)
    allow_degraded = models.BooleanField(
        default=False, help_text="The VM may move to a host that fits it only with some settings suspended."
    )
    moving_with = models.JSONField(
        default=list, blank=True, help_text="The other VMs of its affinity closure, moving to the same host."
    )
    ignore_vm_affinity = models.BooleanField(
        default=False, help_text="Enforcing VM-to-VM affinity does not hold it back (a user's maintenance)."
    )
    suspended_settings = models.JSONField(
        default=list, blank=True, help_text="Settings the destination cannot honour, each with its reason."
    )
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the worker running the job.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    objects = MigrationJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["state", "created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["vm"], condition=models.Q(state__in=ACTIVE_JOB_STATES), name="one_active_job_per_vm"
            )
        ]

    def __str__(self) -> str:
        return f"Migration of {self.vm} ({self.get_state_display()})"

    def get_absolute_url(self) -> str:
        return reverse("job-detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_JOB_STATES

    def move(self, expected: str | Iterable[str], new: str, **fields) -> bool:
        """The one way a job changes state: a compare-and-set that is False, and writes nothing, when another
        process moved the job first. An ended job gets its ``finished_at``."""
        states = [expected] if isinstance(expected, str) else list(expected)
        fields = {"state": new, **fields}
        if new not in ACTIVE_JOB_STATES:
            fields.setdefault("finished_at", timezone.now())
        won = bool(MigrationJob.objects.filter(pk=self.pk, state__in=states).update(**fields))
        if won:
            for name, value in fields.items():
                setattr(self, name, value)
        return won

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class EvacuationState(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class EvacuationQuerySet(models.QuerySet):
    def with_progress(self) -> EvacuationQuerySet:
        """Each with ``moved``: the VMs its jobs moved off the host (what ``progress()`` then reads)."""
        succeeded = models.Q(jobs__state=JobState.SUCCEEDED)
        return self.annotate(moved=models.Count("jobs__vm", filter=succeeded, distinct=True))


class Evacuation(models.Model):
    """Every VM of a host moved off it, its moves planned together: a user's maintenance, or a system's
    evacuation of a non-operational host (see ``operations.maintenance``)."""

    host = models.ForeignKey("inventory.Host", on_delete=models.CASCADE, related_name="evacuations")
    initiator = models.CharField(max_length=8, choices=[("user", "User"), ("system", "System")])
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=16, choices=EvacuationState.choices, default=EvacuationState.RUNNING)
    total = models.PositiveIntegerField(default=0, help_text="VMs on the host when it started.")
    rounds = models.PositiveSmallIntegerField(default=0, help_text="Plans made so far.")
    error = models.TextField(blank=True, help_text="The VMs that could not move, and why.")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = EvacuationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["host"], condition=models.Q(state="running"), name="one_running_evacuation_per_host"
            )
        ]

    def __str__(self) -> str:
        return f"Evacuation of {self.host} ({self.get_state_display()})"

    def progress(self) -> tuple[int, int]:
        """(VMs moved off the host by its jobs, VMs it had to move); no query when read ``with_progress()``."""
        moved = getattr(self, "moved", None)
        if moved is None:
            moved = self.jobs.filter(state=JobState.SUCCEEDED).values("vm").distinct().count()
        return moved, self.total


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


class Event(models.Model):
    """The audit trail: who did what to which objects, in words an admin reads."""

    time = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.INFO)
    code = models.CharField(max_length=64, help_text="Machine-readable kind, e.g. vm_migration_done.")
    message = models.TextField()
    cluster = models.ForeignKey(
        "inventory.Cluster", on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    host = models.ForeignKey("inventory.Host", on_delete=models.SET_NULL, null=True, blank=True, related_name="events")
    vm = models.ForeignKey(
        "vms.VirtualMachine", on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    job = models.ForeignKey(MigrationJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="events")

    class Meta:
        ordering = ["-time", "-pk"]

    def __str__(self) -> str:
        return self.message
