"""State of the simulated hypervisor, kept in the database so that web, worker and beat processes share it."""

from __future__ import annotations

from django.db import models


class SimulatedDomain(models.Model):
    """A domain running on a simulated host."""

    host_uri = models.CharField(max_length=255, db_index=True)
    name = models.CharField(max_length=120)
    spec = models.JSONField(help_text="The DomainSpec it runs with, pinning included.")
    state = models.CharField(max_length=16, default="running")
    dirty_rate_mibps = models.FloatField(default=50.0, help_text="How fast the guest writes its memory.")
    migrating_to = models.CharField(max_length=255, blank=True)
    migrated_by = models.CharField(max_length=200, blank=True, help_text="host:pid of the process copying it.")
    abort_requested = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["host_uri", "name"], name="unique_sim_domain")]

    def __str__(self) -> str:
        return f"{self.name} on {self.host_uri}"


class FaultKind(models.TextChoices):
    REFUSE_INCOMING = "refuse_incoming", "Destination refuses incoming migrations"
    FAIL_MIDWAY = "fail_midway", "Migration fails half way through the copy"
    NEVER_CONVERGE = "never_converge", "Guest dirties memory faster than the link copies it"
    UNREACHABLE = "unreachable", "Host does not answer"
    STALL = "stall", "Migration stops making progress until it is aborted"
    # A host's failure and fencing (see ``simulated.fail_host``): a hung host does not answer and keeps its guests
    # as they were; a powered-off one does not answer and runs nothing.
    POWERED_OFF = "powered_off", "Host is powered off"


class SimulatedFault(models.Model):
    """A fault switched on for a simulated host (from tests, the demo or the admin). ``times`` 0 = until removed."""

    host_uri = models.CharField(max_length=255, db_index=True)
    kind = models.CharField(max_length=24, choices=FaultKind.choices)
    times = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.host_uri}"


class SimulatedHostLoad(models.Model):
    """CPU load a simulated host carries besides its guests (set from tests or for a demo): work its guests do
    not explain, which load balancing reads as part of the host's load."""

    host_uri = models.CharField(max_length=255, unique=True)
    extra_percent = models.FloatField(default=0.0, help_text="Percent of the host's CPU time, 0-100.")

    def __str__(self) -> str:
        return f"{self.extra_percent:g} % extra load on {self.host_uri}"
