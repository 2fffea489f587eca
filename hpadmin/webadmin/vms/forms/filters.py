"""Filter forms of the VM, template and pool lists."""

from __future__ import annotations

from django import forms

from hpadmin.inventory.models import Cluster, Host
from hpadmin.utilities.lists import ListFilterForm, with_any
from hpadmin.vms.models import MigrationMode, OptimizedFor, VmStatus


class VmFilterForm(ListFilterForm):
    cluster = forms.ModelChoiceField(Cluster.objects.all(), required=False, empty_label="Any cluster")
    status = forms.ChoiceField(choices=with_any(VmStatus.choices, "Any status"), required=False)
    optimized_for = forms.ChoiceField(choices=with_any(OptimizedFor.choices, "Any type"), required=False)
    migration_mode = forms.ChoiceField(choices=with_any(MigrationMode.choices, "Any migration mode"), required=False)
    host = forms.ModelChoiceField(Host.objects.all(), required=False, widget=forms.HiddenInput)

    def apply(self, queryset, data):
        for name in ("cluster", "status", "optimized_for", "migration_mode", "host"):
            if data.get(name):
                queryset = queryset.filter(**{name: data[name]})
        return queryset


class ConfigFilterForm(ListFilterForm):
    cluster = forms.ModelChoiceField(Cluster.objects.all(), required=False, empty_label="Any cluster")
    optimized_for = forms.ChoiceField(choices=with_any(OptimizedFor.choices, "Any type"), required=False)

    def apply(self, queryset, data):
        for name in ("cluster", "optimized_for"):
            if data.get(name):
                queryset = queryset.filter(**{name: data[name]})
        return queryset
