"""Query-string filters for every list (django-filter); a bad value answers 400 with the field's error."""

from __future__ import annotations

import django_filters as filters
from django.db.models import Q, QuerySet

from hpadmin.affinity.models import AffinityGroup, AffinityLabel
from hpadmin.inventory.models import Cluster, Host, HostStatus
from hpadmin.operations.models import Event, JobState, MigrationJob
from hpadmin.vms.models import MigrationMode, Pool, Template, VirtualMachine, VmStatus

NAME_LOOKUPS = ["exact", "icontains"]


class ClusterFilter(filters.FilterSet):
    class Meta:
        model = Cluster
        fields = {"name": NAME_LOOKUPS, "auto_migrate_hp": ["exact"]}


class HostFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=HostStatus.choices)

    class Meta:
        model = Host
        fields = {"name": NAME_LOOKUPS, "cluster": ["exact"]}


class VmConfigFilter(filters.FilterSet):
    affinity = filters.ChoiceFilter(field_name="migration_mode", choices=MigrationMode.choices)

    class Meta:
        fields = {
            "name": NAME_LOOKUPS,
            "cluster": ["exact"],
            "optimized_for": ["exact"],
            "cpu_pinning_policy": ["exact"],
            "high_availability": ["exact"],
        }


class TemplateFilter(VmConfigFilter):
    class Meta(VmConfigFilter.Meta):
        model = Template


class PoolFilter(VmConfigFilter):
    class Meta(VmConfigFilter.Meta):
        model = Pool
        fields = {**VmConfigFilter.Meta.fields, "template": ["exact"]}


class VirtualMachineFilter(VmConfigFilter):
    status = filters.MultipleChoiceFilter(choices=VmStatus.choices)

    class Meta(VmConfigFilter.Meta):
        model = VirtualMachine
        fields = {**VmConfigFilter.Meta.fields, "host": ["exact"], "template": ["exact"], "pool": ["exact"]}


class MigrationJobFilter(filters.FilterSet):
    host = filters.ModelChoiceFilter(
        queryset=Host.objects.all(), method="filter_host", label="Source or destination host"
    )
    cluster = filters.ModelChoiceFilter(queryset=Cluster.objects.all(), field_name="vm__cluster")
    state = filters.MultipleChoiceFilter(choices=JobState.choices)
    active = filters.BooleanFilter(method="filter_active", label="Pending, scheduling or migrating")

    class Meta:
        model = MigrationJob
        fields = ["vm", "source", "destination", "reason", "mode"]

    def filter_host(self, queryset: QuerySet, name: str, value: Host) -> QuerySet:
        return queryset.filter(Q(source=value) | Q(destination=value))

    def filter_active(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        if value:
            return queryset.active()
        return queryset.finished()


class EventFilter(filters.FilterSet):
    since = filters.IsoDateTimeFilter(field_name="time", lookup_expr="gte")
    until = filters.IsoDateTimeFilter(field_name="time", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["vm", "host", "cluster", "job", "user", "severity", "code"]


class AffinityGroupFilter(filters.FilterSet):
    class Meta:
        model = AffinityGroup
        fields = {"name": NAME_LOOKUPS, "cluster": ["exact"], "managed": ["exact"]}


class AffinityLabelFilter(filters.FilterSet):
    class Meta:
        model = AffinityLabel
        fields = {"name": NAME_LOOKUPS}
