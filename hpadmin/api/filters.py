"""Query-string filters for every list (django-filter); a bad value answers 400 with the field's error."""

from __future__ import annotations

import django_filters as filters
from django.db.models import Q, QuerySet

from hpadmin.access.models import Grant
from hpadmin.access.policy import CLUSTER_PATH
from hpadmin.access.shortcuts import access_of
from hpadmin.affinity.models import AffinityGroup, AffinityLabel
from hpadmin.inventory.models import Cluster, Host, HostStatus
from hpadmin.operations.models import Event, JobState, MigrationJob
from hpadmin.vms.models import MigrationMode, Pool, Template, VirtualMachine, VmStatus

NAME_LOOKUPS = ["exact", "icontains"]


class VisibleFilterSet(filters.FilterSet):
    """Filters by a related object (``?cluster=``, ``?host=``) accept only what the caller may see: an id out of
    view is refused as one that does not exist."""

    def __init__(self, *args, request=None, **kwargs) -> None:
        super().__init__(*args, request=request, **kwargs)
        if request is None:
            return
        for flt in self.filters.values():
            queryset = getattr(flt, "queryset", None)
            if queryset is not None and not callable(queryset) and queryset.model in CLUSTER_PATH:
                flt.queryset = access_of(request).scope(queryset)


class ClusterFilter(VisibleFilterSet):
    class Meta:
        model = Cluster
        fields = {"name": NAME_LOOKUPS, "auto_migrate_hp": ["exact"]}


class HostFilter(VisibleFilterSet):
    status = filters.MultipleChoiceFilter(choices=HostStatus.choices)

    class Meta:
        model = Host
        fields = {"name": NAME_LOOKUPS, "cluster": ["exact"]}


class VmConfigFilter(VisibleFilterSet):
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


class MigrationJobFilter(VisibleFilterSet):
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


class EventFilter(VisibleFilterSet):
    since = filters.IsoDateTimeFilter(field_name="time", lookup_expr="gte")
    until = filters.IsoDateTimeFilter(field_name="time", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["vm", "host", "cluster", "job", "user", "severity", "code"]


class AffinityGroupFilter(VisibleFilterSet):
    class Meta:
        model = AffinityGroup
        fields = {"name": NAME_LOOKUPS, "cluster": ["exact"], "managed": ["exact"]}


class AffinityLabelFilter(VisibleFilterSet):
    class Meta:
        model = AffinityLabel
        fields = {"name": NAME_LOOKUPS}


class GrantFilter(VisibleFilterSet):
    class Meta:
        model = Grant
        fields = ["role", "user", "group", "cluster", "vm"]
