"""Filter forms of the cluster and host lists, and the host dialogs: New, Edit and Maintenance."""

from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from hpadmin.inventory.models import Cluster, Host, HostStatus
from hpadmin.inventory.services import default_uri
from hpadmin.utilities.lists import ListFilterForm, with_any


class ClusterFilterForm(ListFilterForm):
    search_fields = ("name__icontains", "description__icontains")


class SearchForm(forms.Form):
    """The search box: part of a name. Django's CharField refuses a NUL byte, which no name holds and PostgreSQL
    refuses in a query."""

    q = forms.CharField(required=False, label="Search")


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


class DialogFields:
    """Bootstrap's look for a dialog's fields."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs.setdefault(
                "class", "form-select" if isinstance(field.widget, forms.Select) else "form-control"
            )


class HostForm(DialogFields, forms.ModelForm):
    """New host: where it is; its topology is read from its hypervisor. The URI's rules are the model's."""

    class Meta:
        model = Host
        fields = ["name", "cluster", "uri"]
        help_texts = {
            "uri": "sim://NAME?sockets=2&nodes=2… for a simulated host, qemu+tcp://HOST/system or qemu+ssh://… "
            "for libvirt; a bare name gets the configured driver's scheme."
        }

    def clean_uri(self) -> str:
        return default_uri(self.cleaned_data["uri"].strip())


class HostEditForm(DialogFields, forms.ModelForm):
    """Edit host: its name, its fence command, and its cluster while it is in maintenance (``Host.clean()``)."""

    class Meta:
        model = Host
        fields = ["name", "cluster", "fence_command"]

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.status != HostStatus.MAINTENANCE:
            self.fields["cluster"].disabled = True
            self.fields["cluster"].help_text = "A host changes cluster only in maintenance."
        if not user.is_superuser:  # the workers run it as a shell command, and it may hold a BMC password
            del self.fields["fence_command"]


class MaintenanceForm(DialogFields, forms.Form):
    reason = forms.CharField(
        max_length=255,
        required=False,
        help_text="Why the host goes into maintenance; the event log keeps it.",
    )
