"""VMs, templates and pools: one configuration they share, so one serializer whose subclasses differ only in where
a new object inherits its defaults from."""

from __future__ import annotations

from rest_framework import serializers

from hpadmin.inventory.models import Host
from hpadmin.vms.models import MigrationMode, Pool, SuspendableSetting, Template, VirtualMachine, VmConfig
from hpadmin.vms.numa import TUNE_MODES, parse_numa_nodes
from hpadmin.vms.profiles import prepare_new
from scheduler.core.cpuset import MAX_CPU

from .base import MAX_INT, MAX_NUMA_NODE, ValidatedModelSerializer, VisiblePrimaryKeyRelatedField, detail_url


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

    def to_internal_value(self, data) -> dict:
        node = super().to_internal_value(data)
        # Keys this serializer does not know go on to VmConfig.clean(), whose vNUMA check refuses them by name
        # (a serializer drops them without a word, and a client would think them applied).
        node.update({key: value for key, value in data.items() if key not in self.fields})
        return node


class PlacementPolicySerializer(serializers.Serializer):
    """oVirt's placement_policy: the migration mode (affinity) and the hosts the VM starts running on."""

    affinity = serializers.ChoiceField(
        choices=MigrationMode.choices,
        source="migration_mode",
        required=False,
        help_text="migratable: manual and automatic; user_migratable: manual only; pinned: never migrated.",
    )
    hosts = VisiblePrimaryKeyRelatedField(
        many=True, queryset=Host.objects.all(), source="placement_hosts", required=False
    )


class SuspendedSettingSerializer(serializers.Serializer):
    """A setting the VM's current host cannot honour, and why."""

    setting = serializers.ChoiceField(choices=SuspendableSetting.choices)
    label = serializers.SerializerMethodField()
    reason = serializers.CharField()

    def get_label(self, item: dict) -> str:
        return dict(SuspendableSetting.choices).get(item["setting"], item["setting"])


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
    "degraded_policy",
    "cpu_passthrough",
    "use_tsc_frequency",
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
    "memory_balloon",
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
    suspended_settings = SuspendedSettingSerializer(
        many=True, read_only=True, help_text="What the current host cannot honour; empty: the whole configuration."
    )

    class Meta:
        model = VirtualMachine
        read_only_fields = [
            "uuid",
            "status",
            "host",
            "drift",
            "next_run",
            "cpu_flags_at_start",
            "tsc_khz_at_start",
            "suspended_settings",
            "degraded_since",
            "created_at",
        ]
        fields = [*CONFIG_FIELDS, "template", "pool", "owner", *read_only_fields]
        extra_kwargs = {
            "cluster": {"required": False, "help_text": "Default: the template's or pool's cluster."},
            "owner": {
                "default": serializers.CreateOnlyDefault(serializers.CurrentUserDefault()),
                "help_text": "Holds UserVmManager on the VM; its VMs stay within its quota. Default: the creator.",
            },
        }

    def source_config(self, attrs: dict) -> VmConfig | None:
        return attrs.get("pool") or attrs.get("template")

    def build(self, attrs: dict) -> VmConfig:
        if self.instance is not None and self.instance.next_run:
            # An edit goes on from the changes that wait for the next start; the fields given replace them.
            self.instance.apply_next_run()
        return super().build(attrs)
