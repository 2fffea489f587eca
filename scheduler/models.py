"""Allocations: what each VM holds on a host. Free capacity is always capacity minus these rows."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class AllocationState(models.TextChoices):
    ACTIVE = "active", "Active"  # the VM runs there
    PENDING = "pending", "Pending"  # claimed for a start or an incoming migration


class AllocationQuerySet(models.QuerySet):
    def active(self) -> AllocationQuerySet:
        return self.filter(state=AllocationState.ACTIVE)

    def pending(self) -> AllocationQuerySet:
        return self.filter(state=AllocationState.PENDING)


class Allocation(models.Model):
    """Resources one VM holds on one host, and the placement applied there.

    JSON keys are strings as JSON wants them: ``memory_mib`` {host node: MiB} (node "0" on a host without
    NUMA), ``hugepages`` {host node: {page KiB: pages}}, ``numa_mapping`` {vNUMA node: host node},
    ``cpu_pinning`` {vCPU: [pCPUs]}.
    """

    vm = models.ForeignKey("vms.VirtualMachine", on_delete=models.CASCADE, related_name="allocations")
    host = models.ForeignKey("inventory.Host", on_delete=models.PROTECT, related_name="allocations")
    state = models.CharField(max_length=8, choices=AllocationState.choices)
    job = models.ForeignKey(
        "operations.MigrationJob", on_delete=models.SET_NULL, null=True, blank=True, related_name="allocations"
    )
    vcpus = models.PositiveSmallIntegerField()
    exclusive_cpus = models.JSONField(default=list, blank=True)
    shared_cpus = models.JSONField(default=list, blank=True)
    memory_mib = models.JSONField(default=dict, blank=True)
    hugepages = models.JSONField(default=dict, blank=True)
    numa_mapping = models.JSONField(default=dict, blank=True)
    cpu_pinning = models.JSONField(default=dict, blank=True)
    topology = models.JSONField(
        default=list, blank=True, help_text="[sockets, cores, threads] applied; differs under Resize and Pin NUMA."
    )
    emulator_cpus = models.JSONField(default=list, blank=True)
    iothread_cpus = models.JSONField(default=list, blank=True)
    suspended_settings = models.JSONField(
        default=list,
        blank=True,
        help_text='What the placement leaves out on this host: [{"setting": name, "reason": text}].',
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AllocationQuerySet.as_manager()

    class Meta:
        ordering = ["host", "vm"]
        constraints = [
            models.UniqueConstraint(fields=["vm"], condition=Q(state="active"), name="one_active_allocation_per_vm"),
            models.UniqueConstraint(fields=["vm"], condition=Q(state="pending"), name="one_pending_allocation_per_vm"),
        ]

    def __str__(self) -> str:
        return f"{self.vm} on {self.host} ({self.state})"

    @property
    def total_memory_mib(self) -> int:
        return sum(self.memory_mib.values())
