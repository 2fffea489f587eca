"""Migrations, events and the scheduler's verdicts: the actions that outlast a request, and what they report."""

from __future__ import annotations

from rest_framework import serializers

from hpadmin.inventory.models import Host
from hpadmin.operations.models import Event, MigrationJob

from .base import detail_url


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
