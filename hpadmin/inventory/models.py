"""Clusters and hosts with the topology their hypervisor reports (CPUs, NUMA nodes, hugepage pools)."""

from __future__ import annotations

import math

from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from hpadmin.hypervisor.registry import validate_host_uri
from scheduler.core.model import DEFAULT_WEIGHT_FACTORS


class MigrationPolicy(models.TextChoices):
    """oVirt's migration policies; the driver options they map to live in operations.policies."""

    MINIMAL_DOWNTIME = "minimal_downtime", "Minimal downtime"
    POST_COPY = "post_copy", "Post-copy migration"
    SUSPEND_WORKLOAD = "suspend_workload", "Suspend workload if needed"


def default_weight_factors() -> dict[str, float]:
    return dict(DEFAULT_WEIGHT_FACTORS)


class Cluster(models.Model):
    """Hosts that VMs may migrate between, with the scheduling and migration defaults they share."""

    name = models.CharField(max_length=80, unique=True)
    description = models.CharField(max_length=255, blank=True)
    cpu_level_flags = models.JSONField(
        default=list, blank=True, help_text="CPU flags every host must offer (the cluster CPU level)."
    )
    threads_as_cores = models.BooleanField(
        default=False, help_text="Count SMT threads as cores when checking whether a VM's vCPUs fit a host."
    )
    migration_policy = models.CharField(
        max_length=32, choices=MigrationPolicy.choices, default=MigrationPolicy.MINIMAL_DOWNTIME
    )
    weight_factors = models.JSONField(default=default_weight_factors, blank=True)
    auto_migrate_hp = models.BooleanField(
        "Automatic migration of High Performance VMs",
        default=False,
        help_text="Let maintenance, load balancing and HA move HP and pinned VMs whose mode allows it.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("cluster-detail", args=[self.pk])

    def clean(self) -> None:
        super().clean()
        if not isinstance(self.cpu_level_flags, list) or not all(isinstance(f, str) for f in self.cpu_level_flags):
            raise ValidationError({"cpu_level_flags": "Give the CPU flags as a list of names."})
        factors = self.weight_factors or {}
        if not isinstance(factors, dict):
            raise ValidationError({"weight_factors": "Give the weight factors as a mapping of weight name to number."})
        unknown = sorted(set(factors) - set(DEFAULT_WEIGHT_FACTORS))
        if unknown:
            raise ValidationError({"weight_factors": f"Unknown weight(s): {', '.join(unknown)}."})
        if any(
            isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < math.inf for v in factors.values()
        ):
            raise ValidationError({"weight_factors": "Weight factors are finite numbers of 0 or more."})

    def effective_weight_factors(self) -> dict[str, float]:
        return {**DEFAULT_WEIGHT_FACTORS, **(self.weight_factors or {})}


class HostStatus(models.TextChoices):
    UP = "up", "Up"
    MAINTENANCE = "maintenance", "Maintenance"
    PREPARING_FOR_MAINTENANCE = "preparing_for_maintenance", "Preparing for maintenance"
    NON_OPERATIONAL = "non_operational", "Non operational"
    DOWN = "down", "Down"


class Host(models.Model):
    """A KVM hypervisor. Its topology comes from the driver (capabilities), never typed by hand."""

    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="hosts")
    name = models.CharField(max_length=120, unique=True)
    uri = models.CharField(
        "Hypervisor URI",
        max_length=255,
        unique=True,
        help_text="sim://NAME for a simulated host, qemu+tcp://HOST/system or qemu+ssh://… for libvirt.",
        validators=[validate_host_uri],
    )
    status = models.CharField(max_length=32, choices=HostStatus.choices, default=HostStatus.UP, db_index=True)
    cpu_model = models.CharField(max_length=120, blank=True)
    cpu_flags = models.JSONField(default=list, blank=True)
    sockets = models.PositiveSmallIntegerField(default=1)
    cores_per_socket = models.PositiveSmallIntegerField(default=1)
    threads_per_core = models.PositiveSmallIntegerField(default=1)
    memory_mib = models.PositiveIntegerField(default=0, help_text="Physical memory (all NUMA nodes).")
    tsc_khz = models.PositiveIntegerField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    generation = models.PositiveBigIntegerField(
        default=0, editable=False, help_text="Counts the claims on the host (see scheduler.services.claim)."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        # Only claims change the generation, atomically (F() + 1): saving an instance read before a claim must
        # not write its old value back.
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields if not f.primary_key and f.name != "generation"
            ]
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("host-detail", args=[self.pk])

    @property
    def supports_numa(self) -> bool:
        return bool(self.numa_nodes.all())


class HostCpu(models.Model):
    """One logical CPU (thread) of a host; ``core`` is a host-global core id shared by sibling threads."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="cpus")
    cpu_id = models.PositiveIntegerField()
    socket = models.PositiveSmallIntegerField()
    core = models.PositiveIntegerField()
    numa_node = models.PositiveSmallIntegerField(null=True, blank=True)
    online = models.BooleanField(default=True)

    class Meta:
        ordering = ["host", "cpu_id"]
        constraints = [models.UniqueConstraint(fields=["host", "cpu_id"], name="unique_host_cpu")]

    def __str__(self) -> str:
        return f"{self.host} pCPU {self.cpu_id}"


class HostNumaNode(models.Model):
    """A host NUMA node; its CPUs are the host CPUs naming this index. ``memory_mib`` includes hugepage pools."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="numa_nodes")
    index = models.PositiveSmallIntegerField()
    memory_mib = models.PositiveIntegerField()
    distances = models.JSONField(default=dict, blank=True, help_text="Node index -> relative distance.")

    class Meta:
        ordering = ["host", "index"]
        constraints = [models.UniqueConstraint(fields=["host", "index"], name="unique_host_numa_node")]

    def __str__(self) -> str:
        return f"{self.host} node {self.index}"


class HugePagePool(models.Model):
    """Static hugepages of one size reserved on a NUMA node (``node_index`` None on a host without NUMA)."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="hugepage_pools")
    node_index = models.PositiveSmallIntegerField(null=True, blank=True)
    size_kib = models.PositiveIntegerField()
    total = models.PositiveIntegerField()

    class Meta:
        ordering = ["host", "node_index", "size_kib"]
        constraints = [
            models.UniqueConstraint(fields=["host", "node_index", "size_kib"], name="unique_hugepage_pool"),
        ]

    def __str__(self) -> str:
        return f"{self.host} node {self.node_index}: {self.total} x {self.size_kib} KiB"
