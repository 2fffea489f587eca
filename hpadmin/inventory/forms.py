"""Filter forms of the inventory lists. A value that does not parse is ignored, as list filters should."""

from __future__ import annotations

from django import forms
from django.db.models import Q, QuerySet

from .models import Cluster, HostStatus


class ListFilterForm(forms.Form):
    """Base of every list filter: a name search; subclasses add choice filters and say how to apply them."""

    q = forms.CharField(required=False, label="Search", widget=forms.TextInput(attrs={"type": "search"}))
    search_fields: tuple[str, ...] = ("name__icontains",)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "filter-%s")  # the page may hold a dialog with fields of the same names
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
            field.widget.attrs.setdefault("class", f"{css} {css}-sm")
        self.fields["q"].widget.attrs.setdefault("placeholder", "Name contains…")

    def filter(self, queryset: QuerySet) -> QuerySet:
        self.is_valid()  # values that do not parse are simply missing from cleaned_data
        data = self.cleaned_data
        if data.get("q"):
            query = Q()
            for lookup in self.search_fields:
                query |= Q(**{lookup: data["q"]})
            queryset = queryset.filter(query)
        return self.apply(queryset, data)

    def apply(self, queryset: QuerySet, data: dict) -> QuerySet:
        return queryset


def with_any(choices, label: str = "Any"):
    return [("", label), *choices]


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
