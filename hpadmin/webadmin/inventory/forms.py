"""Filter forms of the cluster and host lists."""

from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from hpadmin.inventory.models import Cluster, HostStatus
from hpadmin.utilities.lists import ListFilterForm, with_any


class ClusterFilterForm(ListFilterForm):
    search_fields = ("name__icontains", "description__icontains")


class HostFilterForm(ListFilterForm):
    cluster = forms.ModelChoiceField(Cluster.objects.all(), required=False, empty_label="Any cluster")
    status = forms.ChoiceField(choices=with_any(HostStatus.choices, "Any status"), required=False)
    numa = forms.ChoiceField(
        label="NUMA",
        choices=[("", "NUMA or not"), ("yes", "With NUMA"), ("no", "Without NUMA")],
        required=False,
    )
    search_fields = ("name__icontains", "cpu_model__icontains")

    def apply(self, queryset: QuerySet, data: dict) -> QuerySet:
        if data.get("cluster"):
            queryset = queryset.filter(cluster=data["cluster"])
        if data.get("status"):
            queryset = queryset.filter(status=data["status"])
        if data.get("numa") == "yes":
            queryset = queryset.filter(numa_count__gt=0)
        elif data.get("numa") == "no":
            queryset = queryset.filter(numa_count=0)
        return queryset
