"""VMs, templates and pools: one configuration (``VmConfig``) that all three carry and hand down."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

from hpadmin.inventory.models import Cluster, DegradedPolicy, Host, MigrationPolicy
from scheduler.core.cpuset import PinningSyntaxError, format_cpuset, parse_cpuset, parse_pinning

from .numa import VNumaNode, complete_nodes, parse_numa_nodes, resize_nodes


class OptimizedFor(models.TextChoices):
    DESKTOP = "desktop", "Desktop"
    SERVER = "server", "Server"
    HIGH_PERFORMANCE = "high_performance", "High Performance"


class MigrationMode(models.TextChoices):
    MIGRATABLE = "migratable", "Allow manual and automatic migration"
    USER_MIGRATABLE = "user_migratable", "Allow manual migration only"
    PINNED = "pinned", "Do not allow migration"


class CpuPinningPolicy(models.TextChoices):
    NONE = "none", "None"
    MANUAL = "manual", "Manual"
    RESIZE_AND_PIN_NUMA = "resize_and_pin_numa", "Resize and Pin NUMA"
    DEDICATED = "dedicated", "Dedicated"
    ISOLATE_THREADS = "isolate_threads", "Isolate Threads"


DYNAMIC_PINNING_POLICIES = frozenset(
    {CpuPinningPolicy.DEDICATED, CpuPinningPolicy.ISOLATE_THREADS, CpuPinningPolicy.RESIZE_AND_PIN_NUMA}
)


MAX_VCPUS = 710


class HugePageSize(models.IntegerChoices):
    SIZE_2M = 2048, "2 MiB"
    SIZE_1G = 1048576, "1 GiB"


class InheritableBool(models.TextChoices):
    INHERIT = "inherit", "Inherit from cluster setting"
    ON = "on", "On"
    OFF = "off", "Off"


class Watchdog(models.TextChoices):
    NONE = "none", "No watchdog"
    I6300ESB = "i6300esb", "i6300esb"


class SuspendableSetting(models.TextChoices):
    """Settings a migration may leave out on a host that cannot honour them, listed in this order wherever they
    are recorded. The guest-visible shape (vCPUs and their topology, vNUMA node count, memory size, CPU model
    and flags) never changes in a live migration, so it is never among them."""

    IO_EMULATOR_PINNING = "io_emulator_pinning", "IO and emulator thread pinning"
    NUMA_PINNING = "numa_pinning", "NUMA pinning"
    HUGEPAGES = "hugepages", "Hugepages"
    CPU_PINNING = "cpu_pinning", "CPU pinning"


# A VM, template or pool may keep to its cluster's policy ("").
VM_DEGRADED_POLICY_CHOICES = [("", "Cluster default"), *DegradedPolicy.choices]


class VmConfig(models.Model):
    """The configuration a VM, a Template and a Pool share. Single-object rules live in ``clean()``.

    vNUMA nodes are stored with the configuration (``numa_nodes``, see ``hpadmin.vms.numa``) because they are
    always read, validated and copied together with it. Placement hosts are a many-to-many relation: forms and
    serializers hand the chosen hosts to ``stage_placement_hosts()`` before ``full_clean()`` so the rules that
    involve them see the new choice.
    """

    name = models.CharField(max_length=120)
    description = models.CharField(max_length=255, blank=True)
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="%(class)ss")
    optimized_for = models.CharField(
        "Optimized for", max_length=20, choices=OptimizedFor.choices, default=OptimizedFor.SERVER
    )

    # System
    memory_mib = models.PositiveIntegerField("Memory size (MiB)", default=1024, validators=[MinValueValidator(1)])
    sockets = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1), MaxValueValidator(16)])
    cores = models.PositiveSmallIntegerField(
        "Cores per socket", default=1, validators=[MinValueValidator(1), MaxValueValidator(254)]
    )
    threads = models.PositiveSmallIntegerField(
        "Threads per core", default=1, validators=[MinValueValidator(1), MaxValueValidator(8)]
    )

    # Host
    placement_hosts = models.ManyToManyField(
        Host, blank=True, related_name="placed_%(class)ss", verbose_name="Start running on specific hosts"
    )
    migration_mode = models.CharField(max_length=20, choices=MigrationMode.choices, default=MigrationMode.MIGRATABLE)
    degraded_policy = models.CharField(
        "When no host fits the whole configuration",
        max_length=8,
        choices=VM_DEGRADED_POLICY_CHOICES,
        default="",
        blank=True,
        help_text="Suspend: the VM may move to a host without the settings that host cannot honour (restored once "
        "a fitting host is free) and its owner and the admins are told. Automatic moves follow it too.",
    )
    cpu_passthrough = models.BooleanField("Pass-through host CPU", default=False)
    use_tsc_frequency = models.BooleanField(
        "Use TSC frequency",
        default=False,
        help_text="The guest gets the TSC frequency of the host it starts on and migrates only to hosts with the "
        "same TSC frequency (within 250 ppm).",
    )
    migration_policy = models.CharField(
        max_length=32, choices=MigrationPolicy.choices, blank=True, help_text="Empty: the cluster's policy."
    )
    max_downtime_ms = models.PositiveIntegerField(
        "Custom migration downtime (ms)", null=True, blank=True, validators=[MinValueValidator(1)]
    )
    auto_converge = models.CharField(max_length=8, choices=InheritableBool.choices, default=InheritableBool.INHERIT)
    compression = models.CharField(max_length=8, choices=InheritableBool.choices, default=InheritableBool.INHERIT)

    # Resource allocation
    cpu_pinning_policy = models.CharField(
        "CPU pinning policy", max_length=24, choices=CpuPinningPolicy.choices, default=CpuPinningPolicy.NONE
    )
    cpu_pinning = models.CharField(
        "CPU pinning topology", max_length=1000, blank=True, help_text="vCPU#pCPUs joined by _, e.g. 0#1_1#2-4,^3"
    )
    io_threads = models.PositiveSmallIntegerField("I/O threads", default=0, validators=[MaxValueValidator(64)])
    emulator_pinning = models.CharField(
        "Emulator and I/O thread pinning",
        max_length=200,
        blank=True,
        help_text="pCPUs for QEMU's emulator and I/O threads, e.g. 0-1. Empty: chosen by the scheduler.",
    )

    # NUMA and hugepages
    numa_nodes = models.JSONField("vNUMA nodes", default=list, blank=True)
    hugepage_kib = models.PositiveIntegerField("Hugepage size", null=True, blank=True, choices=HugePageSize.choices)

    # High availability
    high_availability = models.BooleanField("Highly available", default=False)
    ha_priority = models.PositiveSmallIntegerField(
        "Priority", default=1, validators=[MaxValueValidator(100)], help_text="0 (low) to 100 (high)."
    )

    # Devices
    headless = models.BooleanField(default=False)
    usb_enabled = models.BooleanField("USB", default=True)
    soundcard_enabled = models.BooleanField("Sound card", default=False)
    memory_balloon = models.BooleanField("Memory balloon device", default=True)
    virtio_rng = models.BooleanField("VirtIO-RNG", default=False)
    watchdog = models.CharField(max_length=16, choices=Watchdog.choices, default=Watchdog.NONE)

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    # -- derived values ------------------------------------------------------------------------------------------

    @property
    def vcpus(self) -> int:
        return self.sockets * self.cores * self.threads

    @property
    def is_high_performance(self) -> bool:
        return self.optimized_for == OptimizedFor.HIGH_PERFORMANCE

    def vnuma(self) -> list[VNumaNode]:
        """The vNUMA nodes as typed values (``numa_nodes`` must be valid, as ``clean()`` ensures)."""
        return parse_numa_nodes(self.numa_nodes)

    def vnuma_cells(self, topology: Sequence[int] | None = None) -> list[VNumaNode]:
        """The vNUMA nodes the guest runs with: the ones the scheduler places and the domain XML declares.

        Under Resize and Pin NUMA they follow the size the VM gets on its host (``topology``: sockets, cores,
        threads; none before it has one); otherwise they are the configured nodes, each vCPU and all the memory
        included (``numa.complete_nodes``)."""
        if self.cpu_pinning_policy == CpuPinningPolicy.RESIZE_AND_PIN_NUMA:
            return resize_nodes(topology, self.memory_mib, self.hugepage_kib) if topology else []
        return complete_nodes(self.vnuma(), vcpus=self.vcpus, memory_mib=self.memory_mib)

    def has_pinning_settings(self) -> bool:
        """Manual CPU pinning, pass-through host CPU or a pinned vNUMA node: what makes a VM host-bound."""
        if self.cpu_pinning_policy != CpuPinningPolicy.NONE or self.cpu_passthrough:
            return True
        try:
            return any(node.is_pinned for node in self.vnuma())
        except ValueError:
            return False

    def manual_pinning(self) -> dict[int, frozenset[int]]:
        return parse_pinning(self.cpu_pinning) if self.cpu_pinning_policy == CpuPinningPolicy.MANUAL else {}

    # -- placement hosts -----------------------------------------------------------------------------------------

    def _save(self, *args, **kwargs) -> None:
        if self._state.adding:
            super().save(*args, **kwargs)
            return
        update_fields = kwargs.pop("update_fields", None)
        if update_fields is None:
            update_fields = {f.name for f in self._meta.concrete_fields if not f.primary_key} - RUNTIME_FIELDS
        with transaction.atomic():
            row = (
                VirtualMachine.objects.select_for_update()
                .filter(pk=self.pk)
                .values("status", "next_run", *COLD_FIELDS)
                .first()
            )
            if row is not None:
                running, pending = row["status"] != VmStatus.DOWN, dict(row["next_run"])
                for name in set(COLD_FIELDS) & set(update_fields):
                    pending.pop(name, None)
                    if running and getattr(self, name) != row[name]:
                        pending[name] = getattr(self, name)
                        setattr(self, name, row[name])
                self.next_run = pending
                update_fields = {*update_fields, "next_run"}
            super().save(*args, update_fields=update_fields, **kwargs)

    def apply_next_run(self) -> None:
        """Apply, in memory, the changes that wait for the next start (only a VM's running guest defers any)."""

    def stage_placement_hosts(self, hosts: Iterable[Host]) -> None:
        """Make ``clean()`` judge these hosts instead of the stored ones (forms and serializers call this)."""
        self._staged_placement_hosts = list(hosts)

    def placement_host_list(self) -> list[Host]:
        staged = getattr(self, "_staged_placement_hosts", None)
        if staged is not None:
            return staged
        return list(self.placement_hosts.all()) if self.pk else []

    # -- validation ----------------------------------------------------------------------------------------------

    def clean(self) -> None:
        super().clean()
        errors: dict[str, list[str]] = {}

        def error(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        if self.sockets and self.cores and self.threads and self.vcpus > MAX_VCPUS:
            error("sockets", f"{self.vcpus} vCPUs are too many: a VM has at most {MAX_VCPUS} (QEMU's q35 limit).")
        self._clean_cpu_pinning(error)
        nodes = self._clean_numa_nodes(error)
        self._clean_hugepages(nodes, error)
        self._clean_placement(nodes, error)
        if self.emulator_pinning.strip():
            try:
                parse_cpuset(self.emulator_pinning)
            except PinningSyntaxError as exc:
                error("emulator_pinning", f"Invalid CPU set {exc}.")
        if errors:
            raise ValidationError(errors)

    def _clean_cpu_pinning(self, error) -> None:
        text = self.cpu_pinning.strip()
        if self.cpu_pinning_policy != CpuPinningPolicy.MANUAL:
            if text:
                error("cpu_pinning", "A CPU pinning topology is only used with the Manual pinning policy.")
            return
        if not text:
            error("cpu_pinning", "The Manual pinning policy needs a CPU pinning topology, e.g. 0#2_1#3.")
            return
        try:
            pins = parse_pinning(text)
        except PinningSyntaxError as exc:
            error("cpu_pinning", f"Invalid CPU pinning {exc}.")
            return
        missing = sorted(v for v in pins if v >= self.vcpus)
        if missing:
            error(
                "cpu_pinning",
                f"vCPU {', '.join(map(str, missing))} does not exist: the VM has {self.vcpus} vCPUs "
                f"(0-{self.vcpus - 1}).",
            )
        self._clean_pinned_pcpus(pins, error)

    def _clean_pinned_pcpus(self, pins: dict[int, frozenset[int]], error) -> None:
        """Manual pinning is used as written wherever the VM runs, so each host it starts on (its placement
        hosts) must have every pinned pCPU."""
        wanted = frozenset().union(*pins.values())
        for host in self.placement_host_list():
            cpus = {cpu.cpu_id for cpu in host.cpus.all()}
            if not cpus:
                continue  # not reported yet: the scheduler refuses the host until it is
            missing = sorted(wanted - cpus)
            if missing:
                many = len(missing) > 1
                error(
                    "cpu_pinning",
                    f"pCPU{'s' if many else ''} {format_cpuset(missing)} {'do' if many else 'does'} not exist on "
                    f"host {host.name} (it has pCPUs {format_cpuset(cpus)}).",
                )

    def _clean_numa_nodes(self, error) -> list[VNumaNode]:
        try:
            nodes = parse_numa_nodes(self.numa_nodes)
        except ValueError as exc:
            error("numa_nodes", str(exc))
            return []
        if not nodes:
            return nodes
        indexes = [n.index for n in nodes]
        if sorted(indexes) != list(range(len(nodes))):
            error("numa_nodes", f"vNUMA node indexes must run 0-{len(nodes) - 1} without gaps or repeats.")
        if len(nodes) > self.vcpus:
            error("numa_nodes", f"{len(nodes)} vNUMA nodes need at least as many vCPUs; the VM has {self.vcpus}.")
        seen: dict[int, int] = {}
        for node in nodes:
            for vcpu in node.vcpus:
                if vcpu >= self.vcpus:
                    error("numa_nodes", f"vNUMA node {node.index} names vCPU {vcpu}; the VM has {self.vcpus} vCPUs.")
                elif vcpu in seen:
                    error("numa_nodes", f"vCPU {vcpu} is in vNUMA nodes {seen[vcpu]} and {node.index}.")
                else:
                    seen[vcpu] = node.index
        total = sum(n.memory_mib for n in nodes)
        if total > self.memory_mib:
            error("numa_nodes", f"The vNUMA nodes hold {total} MiB, more than the VM's {self.memory_mib} MiB.")
        # As oVirt's NumaValidator: libvirt's 'preferred' names one host node, so it serves one vNUMA node only.
        if len(nodes) > 1 and any(n.tune_mode == "preferred" for n in nodes):
            error(
                "numa_nodes",
                f"Preferred NUMA tune mode is allowed for a single vNUMA node only; the VM has {len(nodes)}.",
            )
        for node in nodes:
            if node.tune_mode == "preferred" and any(len(p) > 1 for p in node.all_pinnings()):
                error("numa_nodes", f"vNUMA node {node.index} in preferred mode can be pinned to one host node only.")
        if self.cpu_pinning_policy == CpuPinningPolicy.DEDICATED and any(n.is_pinned for n in nodes):
            error(
                "numa_nodes",
                "Dedicated CPU pinning chooses the NUMA nodes itself; remove the vNUMA pinning or pick another policy.",
            )
        return nodes

    def _clean_hugepages(self, nodes: Sequence[VNumaNode], error) -> None:
        if not self.hugepage_kib:
            return
        page_mib = self.hugepage_kib / 1024
        if (self.memory_mib * 1024) % self.hugepage_kib:
            error("hugepage_kib", f"{self.memory_mib} MiB of memory is not a whole number of {page_mib:g} MiB pages.")
        bad = [str(n.index) for n in nodes if (n.memory_mib * 1024) % self.hugepage_kib]
        if bad:
            error(
                "hugepage_kib",
                f"The memory of vNUMA node(s) {', '.join(bad)} is not a whole number of {page_mib:g} MiB pages.",
            )

    def _clean_placement(self, nodes: Sequence[VNumaNode], error) -> None:
        hosts = self.placement_host_list()
        if self.cluster_id is not None:
            foreign = [h.name for h in hosts if h.cluster_id != self.cluster_id]
            if foreign:
                error("placement_hosts", f"Not in the VM's cluster: {', '.join(foreign)}.")
        if self.migration_mode == MigrationMode.PINNED and not hosts:
            error("placement_hosts", "'Do not allow migration' needs at least one host to start running on.")
        pinned = [n for n in nodes if n.is_pinned]
        if not pinned:
            return
        if not hosts:
            error("numa_nodes", "NUMA pinning needs the VM to be pinned to at least one host (Start running on).")
            return
        host_ids = {h.pk for h in hosts}
        stray = sorted({hid for n in nodes for hid in n.pinned_to_by_host} - host_ids)
        if stray:
            error("numa_nodes", f"NUMA pinning names host id(s) {', '.join(map(str, stray))} not in the host list.")
        for host in hosts:
            # A host whose own pinning leaves every vNUMA node unpinned runs the VM unbound, as the scheduler does.
            pinned_here = [n for n in pinned if n.pinning_for(host.pk)]
            if not pinned_here:
                continue
            host_nodes = {n.index: n for n in host.numa_nodes.all()}
            if not host_nodes:
                error("numa_nodes", f"Host {host.name} does not support NUMA; it cannot take NUMA pinning.")
                continue
            for node in pinned_here:
                targets = node.pinning_for(host.pk)
                missing = sorted(set(targets) - set(host_nodes))
                if missing:
                    error(
                        "numa_nodes",
                        f"vNUMA node {node.index} is pinned to host node {', '.join(map(str, missing))}, "
                        f"which {host.name} does not have (it has {len(host_nodes)}: 0-{len(host_nodes) - 1}).",
                    )
                elif node.tune_mode == "strict":
                    largest = max(host_nodes[t].memory_mib for t in targets)
                    if node.memory_mib > largest:
                        error(
                            "numa_nodes",
                            f"vNUMA node {node.index} needs {node.memory_mib} MiB in strict mode; host node "
                            f"{', '.join(map(str, targets))} of {host.name} has only {largest} MiB.",
                        )

    # -- copying -------------------------------------------------------------------------------------------------

    @classmethod
    def config_field_names(cls) -> list[str]:
        """The configuration fields (not identity): what a template hands down to its VMs and pools."""
        return [
            f.name
            for f in VmConfig._meta.get_fields()
            if f.concrete and not f.many_to_many and f.name not in {"id", "name", "description"}
        ]

    def config_values(self) -> dict:
        return {name: getattr(self, name) for name in self.config_field_names()}


class Template(VmConfig):
    """A VM configuration to create VMs and pools from."""

    class Meta(VmConfig.Meta):
        constraints = [models.UniqueConstraint(fields=["name"], name="unique_template_name")]

    def get_absolute_url(self) -> str:
        return reverse("template-detail", args=[self.pk])


class Pool(VmConfig):
    """A set of like VMs made from a template; the pool's configuration is what its VMs get."""

    template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="pools")
    size = models.PositiveIntegerField(default=1, validators=[MaxValueValidator(1000)])

    class Meta(VmConfig.Meta):
        constraints = [models.UniqueConstraint(fields=["name"], name="unique_pool_name")]

    def get_absolute_url(self) -> str:
        return reverse("pool-detail", args=[self.pk])

    def clean(self) -> None:
        super().clean()
        if self.template_id and self.cluster_id and self.template.cluster_id != self.cluster_id:
            raise ValidationError({"template": "The template belongs to another cluster."})


class VmStatus(models.TextChoices):
    DOWN = "down", "Down"
    STARTING = "starting", "Powering up"
    UP = "up", "Up"
    MIGRATING = "migrating", "Migrating"
    STOPPING = "stopping", "Powering down"


# What a running guest cannot change: edits of these wait in ``next_run`` for the VM's next start (oVirt's
# next-run configuration), so live migrations and the scheduler keep to what the guest runs with.
COLD_FIELDS = (
    "sockets",
    "cores",
    "threads",
    "memory_mib",
    "cpu_passthrough",
    "use_tsc_frequency",
    "cpu_pinning_policy",
    "cpu_pinning",
    "emulator_pinning",
    "io_threads",
    "numa_nodes",
    "hugepage_kib",
    "headless",
    "memory_balloon",
    "usb_enabled",
    "soundcard_enabled",
    "virtio_rng",
    "watchdog",
)
# Written by the operations layer only (``move()`` and updates), never by an edit that loaded them earlier.
RUNTIME_FIELDS = frozenset(
    {
        "status",
        "host",
        "status_changed_at",
        "drift",
        "cpu_flags_at_start",
        "tsc_khz_at_start",
        "suspended_settings",
        "degraded_since",
    }
)


# What a quota counts.
QUOTA_FIELDS = frozenset({"owner", "sockets", "cores", "threads", "memory_mib"})


class VirtualMachine(VmConfig):
    """A guest. ``host`` is where it runs; what it holds there is its active Allocation."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    template = models.ForeignKey(Template, on_delete=models.SET_NULL, null=True, blank=True, related_name="vms")
    pool = models.ForeignKey(Pool, on_delete=models.SET_NULL, null=True, blank=True, related_name="vms")
    status = models.CharField(max_length=16, choices=VmStatus.choices, default=VmStatus.DOWN, db_index=True)
    host = models.ForeignKey(Host, on_delete=models.PROTECT, null=True, blank=True, related_name="vms")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="vms"
    )
    cpu_flags_at_start = models.JSONField(default=list, blank=True, help_text="Host CPU flags the VM started with.")
    tsc_khz_at_start = models.PositiveIntegerField(
        null=True, blank=True, help_text="TSC frequency (kHz) of the host the VM started on; a migration keeps it."
    )
    status_changed_at = models.DateTimeField(null=True, blank=True)
    drift = models.CharField(
        max_length=255, blank=True, help_text="What the hypervisors report that disagrees with this record."
    )
    next_run = models.JSONField(
        default=dict, blank=True, help_text="Changes that wait for the next start: field name -> value."
    )
    suspended_settings = models.JSONField(
        default=list,
        blank=True,
        help_text='What its current host cannot honour: [{"setting": name, "reason": text}] in SuspendableSetting '
        "order; empty when it runs with its whole configuration.",
    )
    degraded_since = models.DateTimeField(null=True, blank=True, help_text="When its settings were suspended.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(VmConfig.Meta):
        verbose_name = "virtual machine"
        constraints = [models.UniqueConstraint(fields=["name"], name="unique_vm_name")]

    def save(self, *args, **kwargs) -> None:
        """Save an edit. The runtime fields are left as the operations layer set them; while the guest runs,
        changes to its cold fields wait in ``next_run`` and the running values stay. A VM whose owner has a
        quota is saved under the quota's row lock and checked again there: two saves at once cannot both pass."""
        fields = kwargs.get("update_fields")
        if self.owner_id and (fields is None or QUOTA_FIELDS & set(fields)):
            with transaction.atomic():
                if Quota.objects.select_for_update().filter(user_id=self.owner_id).exists():
                    self.check_quota()
                self._save(*args, **kwargs)
            return
        self._save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("vm-detail", args=[self.pk])

    def apply_next_run(self) -> None:
        """The configuration the VM will have at its next start, in memory (what an edit starts from)."""
        for name, value in self.next_run.items():
            setattr(self, name, value)

    @property
    def degraded(self) -> bool:
        """Running without some of its settings (see ``suspended_settings``)."""
        return bool(self.suspended_settings)

    def suspended_labels(self) -> list[tuple[str, str]]:
        """The suspended settings as an admin reads them: (label, reason)."""
        labels = dict(SuspendableSetting.choices)
        return [
            (labels.get(item["setting"], item["setting"]), item.get("reason", "")) for item in self.suspended_settings
        ]

    def allows_degraded(self) -> bool:
        """Whether, when no host fits its whole configuration, the VM may move with settings suspended: its own
        policy, or its cluster's when it keeps to the cluster default."""
        return (self.degraded_policy or self.cluster.degraded_policy) == DegradedPolicy.SUSPEND

    def automatic_migration_refusal(self) -> str:
        """Why automation (load balancing, a system's evacuation) may not move this VM, or "" when it may: its
        mode must allow automatic migration, and an HP VM or one with pinning settings moves automatically only
        where its cluster allows automatic migration of High Performance VMs."""
        if self.migration_mode != MigrationMode.MIGRATABLE:
            return f'its migration mode is "{self.get_migration_mode_display()}"'
        if (self.is_high_performance or self.has_pinning_settings()) and not self.cluster.auto_migrate_hp:
            return f"automatic migration of High Performance and pinned VMs is off in cluster {self.cluster.name}"
        return ""

    @staticmethod
    def started_on(host: Host) -> dict:
        """The fields a start records: the host, and the CPU flags and TSC frequency the guest was given there
        (a migration must find them again)."""
        return {"host": host, "cpu_flags_at_start": sorted(host.cpu_flags), "tsc_khz_at_start": host.tsc_khz}

    def move(self, expected: str | Iterable[str], new: str, **fields) -> bool:
        """Compare-and-set of the status: False, and nothing written, when the VM is no longer ``expected``."""
        states = [expected] if isinstance(expected, str) else list(expected)
        fields = {"status": new, "status_changed_at": timezone.now(), **fields}
        won = bool(VirtualMachine.objects.filter(pk=self.pk, status__in=states).update(**fields))
        if won:
            for name, value in fields.items():
                setattr(self, name, value)
        return won

    def clean(self) -> None:
        super().clean()
        if self.host_id and self.cluster_id and self.host.cluster_id != self.cluster_id:
            raise ValidationError({"host": "Host is not in the selected cluster."})
        if self.pool_id and self.cluster_id and self.pool.cluster_id != self.cluster_id:
            raise ValidationError({"pool": "The pool belongs to another cluster."})
        # A new VM is made from a template of its own cluster; stopped, it may move to another one later.
        if self._state.adding and self.template_id and self.cluster_id and self.template.cluster_id != self.cluster_id:
            raise ValidationError({"template": "The template belongs to another cluster."})
        self.check_quota()

    def check_quota(self) -> None:
        """The owner's VMs, this one included, stay within the owner's quota (an owner without one has none)."""
        quota = Quota.objects.filter(user_id=self.owner_id).first() if self.owner_id else None
        if quota is None:
            return
        others = VirtualMachine.objects.filter(owner_id=self.owner_id).exclude(pk=self.pk)
        shapes = list(others.values_list("sockets", "cores", "threads", "memory_mib"))
        held = {
            "VMs": (len(shapes) + 1, quota.max_vms),
            "vCPUs": (sum(s * c * t for s, c, t, _ in shapes) + self.vcpus, quota.max_vcpus),
            "MiB of memory": (sum(m for *_, m in shapes) + self.memory_mib, quota.max_memory_mib),
        }
        over = [f"{total} {what} (the quota allows {limit})" for what, (total, limit) in held.items() if total > limit]
        if over:
            owner = self.owner.get_username()
            raise ValidationError(f"Over {owner}'s quota: {owner}'s VMs would hold {', '.join(over)}.")


class Quota(models.Model):
    """What one user's VMs may hold together (oVirt's quota, per user): VMs, vCPUs and memory. The portal's
    "Create VM" and every other change to a VM the user owns stay within it."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota")
    max_vms = models.PositiveIntegerField("VMs", default=2)
    max_vcpus = models.PositiveIntegerField("vCPUs", default=8)
    max_memory_mib = models.PositiveIntegerField("Memory (MiB)", default=16384)

    def __str__(self) -> str:
        return f"quota of {self.user.get_username()}"
