"""Clusters and hosts. A host's topology is read from its hypervisor, so the API shows it and takes only where
the host is."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from hpadmin.hypervisor.registry import validate_host_uri
from hpadmin.inventory.models import Cluster, Host, HostCpu, HostNumaNode, HugePagePool
from hpadmin.inventory.services import add_host, default_uri, update_host
from scheduler.models import Allocation

from .base import FiniteFloatField, ValidatedModelSerializer, VisiblePrimaryKeyRelatedField, detail_url
from .operations import EvacuationProgressSerializer


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
            "scheduling_policy",
            "high_utilization",
            "low_utilization",
            "over_utilization_minutes",
            "degraded_policy",
            "manage_hp_affinity",
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
            "suspended_settings",
            "created_at",
        ]


FENCE_COMMAND_SUPERUSER = "Only a superuser may set the fence command: the workers run it as a shell command."


class HostSerializer(ValidatedModelSerializer):
    """A host with its topology (NUMA nodes, CPUs, hugepage pools) and what VMs hold on it, and while it is
    preparing for maintenance how far its evacuation is. Of its settings its name, its fence command and (in
    maintenance, ``Host.clean()``) its cluster are written here; admins alone see the fence command (it often
    carries the BMC's password)."""

    url = detail_url("host")
    supports_numa = serializers.BooleanField(read_only=True)
    numa_nodes = HostNumaNodeSerializer(many=True, read_only=True)
    cpus = HostCpuSerializer(many=True, read_only=True)
    hugepage_pools = HugePagePoolSerializer(many=True, read_only=True)
    allocations = AllocationSerializer(many=True, read_only=True)
    evacuation = serializers.SerializerMethodField(
        help_text="While the host is preparing for maintenance (or the system moves its VMs away): how far it is."
    )

    class Meta:
        model = Host
        fields = [
            "id",
            "url",
            "name",
            "cluster",
            "uri",
            "status",
            "status_reason",
            "evacuation",
            "last_seen_at",
            "fence_command",
            "cpu_load_percent",
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
        read_only_fields = [name for name in fields if name not in ("name", "cluster", "fence_command")]

    def _superuser(self) -> bool:
        request = self.context.get("request")
        return bool(getattr(getattr(request, "user", None), "is_superuser", False))

    def to_representation(self, instance: Host) -> dict:
        data = super().to_representation(instance)
        if not self._superuser():
            del data["fence_command"]  # it may hold its BMC's password
        return data

    def validate_fence_command(self, value: str) -> str:
        if value != getattr(self.instance, "fence_command", "") and not self._superuser():
            raise serializers.ValidationError(FENCE_COMMAND_SUPERUSER)
        return value

    @extend_schema_field(EvacuationProgressSerializer(allow_null=True))
    def get_evacuation(self, host: Host) -> dict | None:
        running = host.running_evacuations  # prefetched by the view, with what has moved
        if not running:
            return None
        evacuation = running[0]
        moved, total = evacuation.progress()
        return {
            "id": evacuation.pk,
            "initiator": evacuation.initiator,
            "moved": moved,
            "total": total,
            "error": evacuation.error,
        }

    def update(self, instance: Host, validated_data: dict) -> Host:
        # Only what was sent is written: the host's status and topology change under other processes meanwhile.
        for name, value in validated_data.items():
            setattr(instance, name, value)
        try:
            return update_host(instance, validated_data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(self.field_errors(exc)) from None


class HostCreateSerializer(serializers.ModelSerializer):
    """Register a host: its topology is read from its hypervisor, so only where it is gets typed."""

    serializer_related_field = VisiblePrimaryKeyRelatedField
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
            validate_host_uri(uri)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        if len(uri) > Host._meta.get_field("uri").max_length:
            raise serializers.ValidationError(f"{uri} is longer than {Host._meta.get_field('uri').max_length}.")
        if Host.objects.filter(uri=uri).exists():
            raise serializers.ValidationError(f"Host {uri} is already registered.")
        return uri

    def create(self, validated_data: dict) -> Host:
        try:
            return add_host(validated_data["cluster"], validated_data["name"], validated_data["uri"])
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from None
