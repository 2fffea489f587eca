"""Clusters and hosts with the topology their hypervisor reports (CPUs, NUMA nodes, hugepage pools)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from hpadmin.hypervisor.fencing import check_fence_command
from hpadmin.hypervisor.registry import validate_host_uri
from scheduler.core.model import DEFAULT_WEIGHT_FACTORS


class MigrationPolicy(models.TextChoices):
    """oVirt's migration policies; the driver options they map to live in operations.policies."""

    MINIMAL_DOWNTIME = "minimal_downtime", "Minimal downtime"
    POST_COPY = "post_copy", "Post-copy migration"
    SUSPEND_WORKLOAD = "suspend_workload", "Suspend workload if needed"


def default_weight_factors() -> dict[str, float]:
    return dict(DEFAULT_WEIGHT_FACTORS)


class SchedulingPolicy(models.TextChoices):
    NONE = "none", "None"
    EVENLY_DISTRIBUTED = "evenly_distributed", "Evenly distributed"
    POWER_SAVING = "power_saving", "Power saving"


class DegradedPolicy(models.TextChoices):
    """What happens when no host fits a VM's whole configuration (a VM may override its cluster's choice)."""

    REFUSE = "refuse", "Refuse the migration"
    SUSPEND = "suspend", "Suspend settings and notify"


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
    scheduling_policy = models.CharField(
        max_length=24,
        choices=SchedulingPolicy.choices,
        default=SchedulingPolicy.NONE,
        help_text="Load balancing: which VMs automation moves between the hosts, and when.",
    )
    high_utilization = models.PositiveSmallIntegerField(
        "High utilization (%)", default=80, help_text="A host's CPU load above this is over-utilized."
    )
    low_utilization = models.PositiveSmallIntegerField(
        "Low utilization (%)", default=20, help_text="Power saving empties hosts whose CPU load is below this."
    )
    over_utilization_minutes = models.PositiveSmallIntegerField(
        "Over-utilization duration (minutes)",
        default=2,
        help_text="How long a host's load must stay beyond a threshold before VMs are moved.",
    )
    affinity_changed_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When its affinity groups or their labels last changed."
    )
    manage_hp_affinity = models.BooleanField(
        "Affinity groups for High Performance VMs",
        default=True,
        help_text="hpadmin keeps affinity groups for the HP VMs of the cluster: a soft positive VM-to-host group "
        "for the specific hosts they start on, and a soft negative VM-to-VM group spreading the HP VMs that share "
        "those hosts, so that one host's failure or maintenance does not leave them competing for the same few.",
    )
    degraded_policy = models.CharField(
        "When no host fits a VM's whole configuration",
        max_length=8,
        choices=DegradedPolicy.choices,
        default=DegradedPolicy.REFUSE,
        help_text="Suspend: the VM moves to the best host anyway, without the settings that host cannot honour "
        "(restored once a fitting host is free), and its owner and the admins are told. Automatic moves "
        "(maintenance, balancing, HA) and the automatic choice of a destination follow it.",
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
        if self.high_utilization > 100:
            raise ValidationError({"high_utilization": "A CPU load is at most 100 %."})
        if self.low_utilization >= self.high_utilization:
            raise ValidationError({"low_utilization": "Low utilization must be below high utilization."})

    def effective_weight_factors(self) -> dict[str, float]:
        return {**DEFAULT_WEIGHT_FACTORS, **(self.weight_factors or {})}


class HostStatus(models.TextChoices):
    UP = "up", "Up"
    MAINTENANCE = "maintenance", "Maintenance"
    PREPARING_FOR_MAINTENANCE = "preparing_for_maintenance", "Preparing for maintenance"
    NON_OPERATIONAL = "non_operational", "Non operational"
    NON_RESPONSIVE = "non_responsive", "Non responsive"
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
    status_reason = models.CharField(
        max_length=500, blank=True, help_text="Why the host is non-operational, non-responsive or down."
    )
    last_seen_at = models.DateTimeField(null=True, blank=True, help_text="When the host last answered.")
    fence_command = models.CharField(
        max_length=500,
        blank=True,
        help_text="Shell command that powers the host off (its BMC, e.g. ipmitool … chassis power off), run "
        "before its highly available VMs restart elsewhere. Empty: an admin confirms the host is down.",
    )
    cpu_load_percent = models.FloatField(null=True, blank=True, help_text="The CPU load last read.")
    high_load_since = models.DateTimeField(null=True, blank=True)
    low_load_since = models.DateTimeField(null=True, blank=True)
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

    def clean(self) -> None:
        """A host changes cluster only in maintenance (it runs nothing then), and only when no VM, template or
        pool of its cluster is set to run on it (their hosts must be in their cluster). Its fence command is one line
        the shell can parse."""
        super().clean()
        if self.fence_command:
            try:
                check_fence_command(self.fence_command)
            except ValueError as exc:
                raise ValidationError({"fence_command": str(exc)}) from None
        saved = Host.objects.filter(pk=self.pk).values_list("cluster_id", "status").first() if self.pk else None
        if saved is None or self.cluster_id is None or saved[0] == self.cluster_id:
            return
        if saved[1] != HostStatus.MAINTENANCE:
            raise ValidationError(
                {
                    "cluster": f"Cannot change the cluster of Host {self.name} while it is "
                    f"{HostStatus(saved[1]).label.lower()}. Please switch Host to Maintenance mode first."
                }
            )
        if placed := self.placed_names():
            raise ValidationError(
                {
                    "cluster": f"The following VMs are set to run specifically only on this Host: "
                    f"{', '.join(placed)}. In order to change its cluster, you need to remove the association "
                    "between the VMs and the Host (Using Edit VM properties)."
                }
            )

    def placed_names(self) -> list[str]:
        """The VMs, templates and pools set to run on this host ("Specific host(s)"), by name."""
        return sorted(
            [
                *self.placed_virtualmachines.values_list("name", flat=True),
                *self.placed_templates.values_list("name", flat=True),
                *self.placed_pools.values_list("name", flat=True),
            ]
        )

    # Which actions a host's status allows (oVirt's): the services check them, the pages offer only these.
    @property
    def may_enter_maintenance(self) -> bool:
        return self.status in (HostStatus.UP, HostStatus.NON_OPERATIONAL)

    @property
    def may_be_activated(self) -> bool:
        return self.status in (HostStatus.MAINTENANCE, HostStatus.PREPARING_FOR_MAINTENANCE, HostStatus.NON_OPERATIONAL)

    @property
    def may_be_removed(self) -> bool:
        return self.status == HostStatus.MAINTENANCE

    def move(self, expected: str | Iterable[str], new: str, **fields) -> bool:
        """The one way a host changes status: a compare-and-set, False (nothing written) when another process
        changed it first."""
        states = [expected] if isinstance(expected, str) else list(expected)
        fields = {"status": new, **fields}
        won = bool(Host.objects.filter(pk=self.pk, status__in=states).update(**fields))
        if won:
            for name, value in fields.items():
                setattr(self, name, value)
        return won

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
