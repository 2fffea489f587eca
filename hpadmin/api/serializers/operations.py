"""Migrations, events and the scheduler's verdicts: the actions that outlast a request, and what they report."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from hpadmin.inventory.models import Host
from hpadmin.operations.models import Evacuation, Event, MigrationJob
from hpadmin.vms.models import SuspendableSetting

from .base import VisiblePrimaryKeyRelatedField, detail_url
from .vms import SuspendedSettingSerializer

SETTING_LABELS = dict(SuspendableSetting.choices)


class MigrationJobSerializer(serializers.ModelSerializer):
    url = detail_url("job")
    duration_s = serializers.FloatField(read_only=True, allow_null=True)
    suspended_settings = SuspendedSettingSerializer(
        many=True, read_only=True, help_text="What the destination cannot honour; empty: the whole configuration."
    )

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
            "allow_degraded",
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
    host = VisiblePrimaryKeyRelatedField(
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
    allow_degraded = serializers.BooleanField(
        default=False,
        help_text="Needed for a ``host`` that fits the VM only with some settings suspended (see "
        "``migration-candidates``); without ``host`` the VM's policy decides.",
    )
    affinity_closure = serializers.BooleanField(
        default=False,
        help_text="Also migrate the VMs in positive enforcing affinity with this one (and running on its host), "
        "all to one host (oVirt's migrate_vms_in_affinity_closure).",
    )


class CandidatesQuerySerializer(serializers.Serializer):
    host = VisiblePrimaryKeyRelatedField(queryset=Host.objects.all(), required=False, help_text="Judge only this host.")


class RejectionSerializer(serializers.Serializer):
    filter = serializers.CharField()
    reason = serializers.CharField()


class HostVerdictSerializer(serializers.Serializer):
    """The scheduler's verdict on one host: eligible with its rank and score, or every filter's refusal. An
    eligible host that fits the VM only with settings suspended lists them in ``suspended`` (its
    ``rejections`` are then those of the whole configuration), and ranks after every host that fits it whole."""

    host = serializers.IntegerField()
    host_name = serializers.CharField()
    eligible = serializers.BooleanField()
    rank = serializers.IntegerField(allow_null=True)
    score = serializers.FloatField(allow_null=True)
    rejections = RejectionSerializer(many=True)
    suspended = SuspendedSettingSerializer(many=True, help_text="Empty when the host fits the whole configuration.")

    def to_representation(self, verdict) -> dict:
        # Plain dicts: the dialog's question covers every host of the cluster, possibly a thousand of them.
        return {
            "host": verdict.host.pk,
            "host_name": verdict.host.name,
            "eligible": verdict.eligible,
            "rank": verdict.rank,
            "score": verdict.score,
            "rejections": [{"filter": name, "reason": reason} for name, reason in verdict.rejections],
            "suspended": [
                {"setting": name, "label": SETTING_LABELS.get(name, name), "reason": reason}
                for name, reason in verdict.suspended
            ],
        }


# -- host maintenance ------------------------------------------------------------------------------------------------


class EvacuationProgressSerializer(serializers.Serializer):
    """How far a host's evacuation is: VMs moved off it, of those it had to move."""

    id = serializers.IntegerField(help_text="The evacuation.")
    initiator = serializers.CharField(help_text="user (a maintenance) or system (a non-operational host's VMs).")
    moved = serializers.IntegerField()
    total = serializers.IntegerField()
    error = serializers.CharField(help_text="The VMs that could not move, and why; empty while all goes well.")


class EvacuationMoveSerializer(serializers.ModelSerializer):
    """One VM's move in an evacuation: the host the plan sends it to, and its migration job."""

    job = detail_url("job")
    vm_name = serializers.CharField(source="vm.name", read_only=True)
    host = serializers.PrimaryKeyRelatedField(source="requested_destination", read_only=True, allow_null=True)
    host_name = serializers.CharField(
        source="requested_destination.name", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = MigrationJob
        fields = ["job", "id", "vm", "vm_name", "host", "host_name", "state"]
        read_only_fields = fields


class EvacuationSerializer(serializers.ModelSerializer):
    """A host's maintenance in progress: how many of its VMs have moved, each VM's planned move and its job, and
    what could not move."""

    progress = serializers.SerializerMethodField()
    moves = EvacuationMoveSerializer(source="jobs", many=True, read_only=True)

    class Meta:
        model = Evacuation
        fields = [
            "id",
            "host",
            "initiator",
            "requested_by",
            "reason",
            "state",
            "progress",
            "error",
            "moves",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(
        serializers.DictField(child=serializers.IntegerField(), help_text="moved: VMs moved off the host; total.")
    )
    def get_progress(self, evacuation: Evacuation) -> dict[str, int]:
        moved, total = evacuation.progress()
        return {"moved": moved, "total": total}


class MaintenanceSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=255, required=False, allow_blank=True, default="", help_text="Why; the event log keeps it."
    )


class PlannedMoveSerializer(serializers.Serializer):
    vm = serializers.IntegerField()
    vm_name = serializers.CharField()
    host = serializers.IntegerField(help_text="The destination the plan chose.")
    host_name = serializers.CharField()
    suspended = serializers.ListField(
        child=serializers.CharField(), help_text="The settings the VM runs without there (empty: it fits whole)."
    )


class PlannedStaySerializer(serializers.Serializer):
    vm = serializers.IntegerField()
    vm_name = serializers.CharField()
    reason = serializers.CharField()


class VmReferenceSerializer(serializers.Serializer):
    vm = serializers.IntegerField()
    vm_name = serializers.CharField()


class MaintenancePreviewSerializer(serializers.Serializer):
    """What a maintenance of the host would do now, planned and not carried out: where each VM would go, the
    VMs that would stay and why, the HP and pinned VMs that may run slower where they go (and what any VM runs
    without there); or, when a running
    "Do not allow migration" VM blocks it, oVirt's message naming them."""

    blocked = serializers.BooleanField()
    message = serializers.CharField(help_text="Why the maintenance is refused; empty when it is not.")
    blocking = VmReferenceSerializer(many=True, help_text='The running "Do not allow migration" VMs.')
    moves = PlannedMoveSerializer(many=True)
    stays = PlannedStaySerializer(many=True)
    slower = VmReferenceSerializer(many=True, help_text="HP and pinned VMs that will be migrated and may run slower.")
    exact = serializers.BooleanField(help_text="False when the plan comes from the heuristic (a large host).")

    def to_representation(self, preview) -> dict:
        def ref(vm) -> dict:
            return {"vm": vm.pk, "vm_name": vm.name}

        suspended = {vm.pk: labels for vm, _, labels in preview.degraded}

        return {
            "blocked": bool(preview.blocking),
            "message": preview.message,
            "blocking": [ref(vm) for vm in preview.blocking],
            "moves": [
                {**ref(vm), "host": host.pk, "host_name": host.name, "suspended": suspended.get(vm.pk, [])}
                for vm, host in preview.moves
            ],
            "stays": [{**ref(vm), "reason": reason} for vm, reason in preview.stays],
            "slower": [ref(vm) for vm in preview.slower],
            "exact": preview.exact,
        }
