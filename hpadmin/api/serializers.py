"""API representations. The rules are the models' own ``clean()``, reached through ``ValidatedModelSerializer``."""

from __future__ import annotations

import copy
import math

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models, transaction
from django.db.backends.base.operations import BaseDatabaseOperations
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.settings import api_settings

from hpadmin.hypervisor.base import get_driver
from hpadmin.inventory.models import Cluster, Host, HostCpu, HostNumaNode, HugePagePool
from hpadmin.inventory.services import add_host, default_uri
from hpadmin.operations.models import Event, MigrationJob
from hpadmin.vms.models import MigrationMode, Pool, Template, VirtualMachine, VmConfig
from hpadmin.vms.numa import TUNE_MODES, parse_numa_nodes
from hpadmin.vms.profiles import prepare_new
from scheduler.core.cpuset import MAX_CPU
from scheduler.models import Allocation

# Linux numbers at most 1024 NUMA nodes (NODES_SHIFT = 10).
MAX_NUMA_NODE = 1023
MAX_INT = BaseDatabaseOperations.integer_field_ranges["IntegerField"][1]


def detail_url(basename: str) -> serializers.HyperlinkedIdentityField:
    return serializers.HyperlinkedIdentityField(view_name=f"api:{basename}-detail")


class FiniteFloatField(serializers.FloatField):
    """A float that JSON can carry: NaN and infinity are refused."""

    default_error_messages = {"not_finite": "Give a finite number."}

    def to_internal_value(self, data) -> float:
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("not_finite")
        return value


class ValidatedModelSerializer(serializers.ModelSerializer):
    """A ModelSerializer whose rules are the model's: ``validate()`` builds the object as it would be saved and
    runs its ``full_clean()``, whose errors come back as field errors (``error_paths`` puts the errors of model
    fields the API shows under another name where the client sent them). Integer fields take only what the
    column holds on every supported database, whatever the one in use would accept."""

    error_paths: dict[str, tuple[str, ...]] = {}

    def build_standard_field(self, field_name, model_field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        portable = BaseDatabaseOperations.integer_field_ranges.get(model_field.get_internal_type())
        if portable is not None and issubclass(field_class, serializers.IntegerField) and not kwargs.get("read_only"):
            low, high = portable
            kwargs["min_value"] = max(kwargs.get("min_value", low), low)
            kwargs["max_value"] = min(kwargs.get("max_value", high), high)
        return field_class, kwargs

    def m2m_names(self) -> set[str]:
        return {f.name for f in self.Meta.model._meta.many_to_many}

    def build(self, attrs: dict) -> models.Model:
        """The object as it would be saved: a copy of the instance (so a refused change leaves it alone) or a new
        one, with ``attrs`` applied except many-to-many values, which are set once the object is saved."""
        obj = copy.copy(self.instance) if self.instance is not None else self.Meta.model()
        m2m = self.m2m_names()
        for name, value in attrs.items():
            if name not in m2m:
                setattr(obj, name, value)
        return obj

    def validate(self, attrs: dict) -> dict:
        try:
            self.build(attrs).full_clean(validate_unique=False)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(self.field_errors(exc)) from None
        return attrs

    def field_errors(self, exc: DjangoValidationError) -> dict:
        errors: dict = {}
        for name, messages in exc.message_dict.items():
            default = api_settings.NON_FIELD_ERRORS_KEY if name == NON_FIELD_ERRORS else name
            path = self.error_paths.get(name, (default,))
            target = errors
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target.setdefault(path[-1], []).extend(messages)
        return errors

    @transaction.atomic
    def create(self, validated_data: dict) -> models.Model:
        return self._save(self.build(validated_data), validated_data)

    @transaction.atomic
    def update(self, instance: models.Model, validated_data: dict) -> models.Model:
        return self._save(self.build(validated_data), validated_data)

    def _save(self, obj: models.Model, attrs: dict) -> models.Model:
        obj.save()
        for name in self.m2m_names() & attrs.keys():
            getattr(obj, name).set(attrs[name])
        return obj


class ErrorSerializer(serializers.Serializer):
    """A refused action: a message, and messages per field (or per VM) when there are any."""

    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


# -- inventory --------------------------------------------------------------------------------------------------


class ClusterSerializer(ValidatedModelSerializer):
    url = detail_url("cluster")
    cpu_level_flags = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, help_text="CPU flags every host must offer."
    )
    weight_factors = serializers.DictField(
        child=FiniteFloatField(min_value=0),
        required=False,
        help_text="Scheduling weight name -> factor (lower accumulated weight wins); unnamed weights keep defaults.",
    )

    class Meta:
        model = Cluster
        fields = [
            "id",
            "url",
            "name",
            "description",
            "cpu_level_flags",
            "threads_as_cores",
            "migration_policy",
            "weight_factors",
            "auto_migrate_hp",
        ]


class HostCpuSerializer(serializers.ModelSerializer):
    class Meta:
        model = HostCpu
        fields = ["cpu_id", "socket", "core", "numa_node", "online"]


class HostNumaNodeSerializer(serializers.ModelSerializer):
    cpus = serializers.SerializerMethodField(help_text="Host CPU ids of the node.")

    class Meta:
        model = HostNumaNode
        fields = ["index", "memory_mib", "distances", "cpus"]

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_cpus(self, node: HostNumaNode) -> list[int]:
        return [cpu.cpu_id for cpu in node.host.cpus.all() if cpu.numa_node == node.index]


class HugePagePoolSerializer(serializers.ModelSerializer):
    class Meta:
        model = HugePagePool
        fields = ["node_index", "size_kib", "total"]


class AllocationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Allocation
        fields = [
            "id",
            "vm",
            "state",
            "job",
            "vcpus",
            "exclusive_cpus",
            "shared_cpus",
            "memory_mib",
            "hugepages",
            "numa_mapping",
            "cpu_pinning",
            "topology",
            "emulator_cpus",
            "iothread_cpus",
            "created_at",
        ]


class HostSerializer(serializers.ModelSerializer):
    """A host with its topology (NUMA nodes, CPUs, hugepage pools) and what VMs hold on it."""

    url = detail_url("host")
    supports_numa = serializers.BooleanField(read_only=True)
    numa_nodes = HostNumaNodeSerializer(many=True, read_only=True)
    cpus = HostCpuSerializer(many=True, read_only=True)
    hugepage_pools = HugePagePoolSerializer(many=True, read_only=True)
    allocations = AllocationSerializer(many=True, read_only=True)

    class Meta:
        model = Host
        fields = [
            "id",
            "url",
            "name",
            "cluster",
            "uri",
            "status",
            "cpu_model",
            "cpu_flags",
            "sockets",
            "cores_per_socket",
            "threads_per_core",
            "memory_mib",
            "tsc_khz",
            "refreshed_at",
            "supports_numa",
            "numa_nodes",
            "cpus",
            "hugepage_pools",
            "allocations",
        ]
        read_only_fields = fields


class HostCreateSerializer(serializers.ModelSerializer):
    """Register a host: its topology is read from its hypervisor, so only where it is gets typed."""

    uri = serializers.CharField(
        max_length=255,
        help_text="sim://NAME?sockets=2&nodes=2… for a simulated host, qemu+tcp://HOST/system for libvirt; "
        "a bare name gets the configured driver's scheme.",
    )

    class Meta:
        model = Host
        fields = ["cluster", "name", "uri"]

    def validate_uri(self, value: str) -> str:
        uri = default_uri(value)
        try:
            get_driver(uri)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        if len(uri) > Host._meta.get_field("uri").max_length:
            raise serializers.ValidationError(f"{uri} is longer than {Host._meta.get_field('uri').max_length}.")
        if Host.objects.filter(uri=uri).exists():
            raise serializers.ValidationError(f"Host {uri} is already registered.")
        return uri

    def create(self, validated_data: dict) -> Host:
        try:
            return add_host(validated_data["cluster"], validated_data["name"], validated_data["uri"])
        except ValueError as exc:
            raise serializers.ValidationError({"uri": [str(exc)]}) from None


# -- VMs, templates and pools -----------------------------------------------------------------------------------


class VNumaNodeListSerializer(serializers.ListSerializer):
    def to_representation(self, data) -> list:
        return super().to_representation([node.to_json() for node in parse_numa_nodes(data)])


class VNumaNodeSerializer(serializers.Serializer):
    """A virtual NUMA node: its vCPUs and memory, and the host nodes it is pinned to."""

    index = serializers.IntegerField(min_value=0, max_value=MAX_NUMA_NODE)
    vcpus = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=MAX_CPU))
    memory_mib = serializers.IntegerField(min_value=1, max_value=MAX_INT)
    tune_mode = serializers.ChoiceField(choices=TUNE_MODES, default="strict")
    pinned_to = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=MAX_NUMA_NODE),
        default=list,
        help_text="Host NUMA nodes on every placement host.",
    )
    pinned_to_by_host = serializers.DictField(
        child=serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=MAX_NUMA_NODE)),
        default=dict,
        help_text="Host id -> host NUMA nodes, for placement hosts whose layout differs.",
    )

    class Meta:
        list_serializer_class = VNumaNodeListSerializer


class PlacementPolicySerializer(serializers.Serializer):
    """oVirt's placement_policy: the migration mode (affinity) and the hosts the VM starts running on."""

    affinity = serializers.ChoiceField(
        choices=MigrationMode.choices,
        source="migration_mode",
        required=False,
        help_text="migratable: manual and automatic; user_migratable: manual only; pinned: never migrated.",
    )
    hosts = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Host.objects.all(), source="placement_hosts", required=False
    )


CONFIG_FIELDS = [
    "id",
    "url",
    "name",
    "description",
    "cluster",
    "optimized_for",
    "memory_mib",
    "sockets",
    "cores",
    "threads",
    "vcpus",
    "placement_policy",
    "cpu_passthrough",
    "migration_policy",
    "max_downtime_ms",
    "auto_converge",
    "compression",
    "cpu_pinning_policy",
    "cpu_pinning",
    "io_threads",
    "emulator_pinning",
    "numa_nodes",
    "hugepage_kib",
    "high_availability",
    "ha_priority",
    "headless",
    "usb_enabled",
    "soundcard_enabled",
    "smartcard_enabled",
    "memory_balloon",
    "multi_queues",
    "virtio_rng",
    "watchdog",
]


class VmConfigSerializer(ValidatedModelSerializer):
    """The configuration VMs, templates and pools share. A new one gets its defaults as in the UI: from the
    configuration it is made from, else from its "Optimized for" profile; the fields the client sent win."""

    vcpus = serializers.IntegerField(read_only=True)
    placement_policy = PlacementPolicySerializer(source="*", required=False)
    numa_nodes = VNumaNodeSerializer(many=True, required=False)

    error_paths = {"migration_mode": ("placement_policy", "affinity"), "placement_hosts": ("placement_policy", "hosts")}
    create_only_fields: tuple[str, ...] = ("cluster",)

    def get_fields(self) -> dict:
        fields = super().get_fields()
        if self.instance is not None:
            for name in self.create_only_fields:
                fields[name].read_only = True
        return fields

    def source_config(self, attrs: dict) -> VmConfig | None:
        """The template or pool a new object inherits its configuration (placement hosts included) from."""
        return None

    def validate(self, attrs: dict) -> dict:
        source = self.source_config(attrs) if self.instance is None else None
        if source is not None and "placement_hosts" not in attrs:
            attrs = {**attrs, "placement_hosts": list(source.placement_hosts.all())}
        return super().validate(attrs)

    def build(self, attrs: dict) -> VmConfig:
        if self.instance is not None:
            obj = super().build(attrs)
        else:
            obj = self.Meta.model()
            m2m = self.m2m_names()
            prepare_new(obj, {k: v for k, v in attrs.items() if k not in m2m}, source=self.source_config(attrs))
        if "placement_hosts" in attrs:
            obj.stage_placement_hosts(attrs["placement_hosts"])
        return obj


class TemplateSerializer(VmConfigSerializer):
    url = detail_url("template")

    class Meta:
        model = Template
        fields = CONFIG_FIELDS


class PoolSerializer(VmConfigSerializer):
    url = detail_url("pool")
    create_only_fields = ("cluster", "template")

    class Meta:
        model = Pool
        fields = [*CONFIG_FIELDS, "template", "size"]
        extra_kwargs = {"cluster": {"required": False, "help_text": "Default: the template's cluster."}}

    def source_config(self, attrs: dict) -> VmConfig | None:
        return attrs.get("template")


class VirtualMachineSerializer(VmConfigSerializer):
    url = detail_url("vm")
    create_only_fields = ("cluster", "template", "pool")

    class Meta:
        model = VirtualMachine
        fields = [
            *CONFIG_FIELDS,
            "uuid",
            "template",
            "pool",
            "owner",
            "status",
            "host",
            "cpu_flags_at_start",
            "created_at",
        ]
        read_only_fields = ["uuid", "status", "host", "cpu_flags_at_start", "created_at"]
        extra_kwargs = {"cluster": {"required": False, "help_text": "Default: the template's or pool's cluster."}}

    def source_config(self, attrs: dict) -> VmConfig | None:
        return attrs.get("pool") or attrs.get("template")


# -- operations -------------------------------------------------------------------------------------------------


class MigrationJobSerializer(serializers.ModelSerializer):
    url = detail_url("job")
    duration_s = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = MigrationJob
        fields = [
            "id",
            "url",
            "vm",
            "source",
            "destination",
            "requested_destination",
            "requested_by",
            "reason",
            "reason_text",
            "mode",
            "force",
            "state",
            "phase",
            "progress",
            "data_total_mib",
            "data_remaining_mib",
            "dirty_rate_mibps",
            "transferred_mib",
            "downtime_ms",
            "attempt",
            "tried_hosts",
            "suspended_settings",
            "error",
            "cancel_requested",
            "created_at",
            "started_at",
            "finished_at",
            "duration_s",
        ]
        read_only_fields = fields


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "time", "user", "severity", "code", "message", "cluster", "host", "vm", "job"]
        read_only_fields = fields


class JobReferenceSerializer(serializers.ModelSerializer):
    """The answer to a long action: where to follow the job it started."""

    job = detail_url("job")

    class Meta:
        model = MigrationJob
        fields = ["job", "id", "state"]
        read_only_fields = fields


class MigrateSerializer(serializers.Serializer):
    host = serializers.PrimaryKeyRelatedField(
        queryset=Host.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="Destination host; empty: the scheduler chooses the best one.",
    )
    force = serializers.BooleanField(
        default=False, help_text='Needed for VMs whose migration mode is "manual only" (user_migratable).'
    )
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class CandidatesQuerySerializer(serializers.Serializer):
    host = serializers.PrimaryKeyRelatedField(
        queryset=Host.objects.all(), required=False, help_text="Judge only this host."
    )


class RejectionSerializer(serializers.Serializer):
    filter = serializers.CharField()
    reason = serializers.CharField()


class HostVerdictSerializer(serializers.Serializer):
    """The scheduler's verdict on one host: eligible with its rank and score, or every filter's refusal."""

    host = serializers.IntegerField()
    host_name = serializers.CharField()
    eligible = serializers.BooleanField()
    rank = serializers.IntegerField(allow_null=True)
    score = serializers.FloatField(allow_null=True)
    rejections = RejectionSerializer(many=True)

    def to_representation(self, verdict) -> dict:
        # Plain dicts: the dialog's question covers every host of the cluster, possibly a thousand of them.
        return {
            "host": verdict.host.pk,
            "host_name": verdict.host.name,
            "eligible": verdict.eligible,
            "rank": verdict.rank,
            "score": verdict.score,
            "rejections": [{"filter": name, "reason": reason} for name, reason in verdict.rejections],
        }
