"""Filter forms of the affinity lists, and the New/Edit dialogs of groups and labels.

The rules are the models' ``clean()``: the dialogs hand the chosen members to ``stage_members()`` first, so that
it judges the new choice, and its errors land next to the fields they name.
"""

from __future__ import annotations

import json

from django import forms
from django.db.models import QuerySet

from hpadmin.affinity.models import AffinityGroup, AffinityLabel
from hpadmin.inventory.models import Cluster, Host
from hpadmin.utilities.lists import ListFilterForm
from hpadmin.vms.models import VirtualMachine


class AffinityGroupFilterForm(ListFilterForm):
    cluster = forms.ModelChoiceField(Cluster.objects.all(), required=False, empty_label="Any cluster")
    managed = forms.ChoiceField(
        choices=[("", "Managed or not"), ("yes", "Managed by hpadmin"), ("no", "Written by admins")], required=False
    )
    search_fields = ("name__icontains", "description__icontains")

    def apply(self, queryset: QuerySet, data: dict) -> QuerySet:
        if data.get("cluster"):
            queryset = queryset.filter(cluster=data["cluster"])
        if data.get("managed"):
            queryset = queryset.filter(managed=data["managed"] == "yes")
        return queryset


class AffinityLabelFilterForm(ListFilterForm):
    search_fields = ("name__icontains", "description__icontains")


class MemberChoiceField(forms.ModelMultipleChoiceField):
    """VMs or hosts by name, with their cluster where the choice spans clusters (labels)."""

    def __init__(self, *args, with_cluster: bool = False, **kwargs) -> None:
        self.with_cluster = with_cluster
        super().__init__(*args, **kwargs)

    def label_from_instance(self, obj) -> str:
        return f"{obj.name} ({obj.cluster.name})" if self.with_cluster else obj.name


class AffinityDialogForm(forms.ModelForm):
    """Bootstrap's look, and the members handed to the model's ``clean()`` before it runs."""

    member_fields: tuple[str, ...] = ()

    def __init__(self, *args, url: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput):
                widget.attrs.update({"class": "form-check-input", "role": "switch"})
            elif isinstance(widget, forms.SelectMultiple):
                widget.attrs.update({"class": "form-select", "size": 6})
            elif isinstance(widget, forms.Select):
                widget.attrs["class"] = "form-select"
            else:
                widget.attrs["class"] = "form-control"

    def clean(self):
        data = super().clean()
        self.instance.stage_members(**{name: data[name] for name in self.member_fields if name in data})
        return data


class AffinityGroupForm(AffinityDialogForm):
    """New or Edit group. Members are VMs and hosts of the group's cluster: choosing another cluster re-renders the
    dialog with that cluster's (``_changed=cluster``). A group keeps its cluster once created, as in the API."""

    member_fields = ("vms", "hosts", "vm_labels", "host_labels")

    class Meta:
        model = AffinityGroup
        fields = [
            "name",
            "description",
            "cluster",
            "priority",
            "vm_rule",
            "vm_enforcing",
            "host_rule",
            "host_enforcing",
            "vms",
            "hosts",
            "vm_labels",
            "host_labels",
        ]
        field_classes = {"vms": MemberChoiceField, "hosts": MemberChoiceField}
        labels = {"host_labels": "Host labels"}
        help_texts = {
            "vm_labels": "Their VMs in the group's cluster count as members.",
            "host_labels": "Their hosts in the group's cluster count as members.",
        }

    def __init__(self, *args, url: str, **kwargs) -> None:
        super().__init__(*args, url=url, **kwargs)
        cluster = self.chosen_cluster()
        self.fields["vms"].queryset = VirtualMachine.objects.filter(cluster_id=cluster).order_by("name")
        self.fields["hosts"].queryset = Host.objects.filter(cluster_id=cluster).order_by("name")
        if cluster is None:
            for name in ("vms", "hosts"):
                self.fields[name].help_text = "Choose a cluster first."
        if self.instance.pk:
            self.fields["cluster"].disabled = True
            self.fields["cluster"].help_text = "A group stays in the cluster it was created in."
        else:
            self.fields["cluster"].widget.attrs.update(
                {
                    "hx-get": url,
                    "hx-include": "closest form",
                    "hx-target": "#affinity-group-fields",
                    "hx-trigger": "change",
                    "hx-vals": json.dumps({"_changed": "cluster"}),
                }
            )

    def setting_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name not in self.member_fields]

    def member_bound_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.member_fields]

    def chosen_cluster(self) -> int | None:
        """The cluster whose VMs and hosts the dialog offers: the group's, else the one chosen."""
        if self.instance.pk:
            return self.instance.cluster_id
        value = self.data.get(self.add_prefix("cluster")) if self.is_bound else self.initial.get("cluster")
        value = getattr(value, "pk", value)
        return int(value) if str(value or "").isdigit() else None

    @classmethod
    def refreshed(cls, data, *, instance: AffinityGroup, url: str) -> AffinityGroupForm:
        """An unbound dialog showing what the admin chose so far (``data``), after another cluster was chosen:
        members of the old cluster drop out of the choices."""
        initial = {name: data.getlist(name) for name in cls.member_fields}
        initial.update({name: data[name] for name in cls._meta.fields if name in data and name not in initial})
        initial.update({name: name in data for name in ("vm_enforcing", "host_enforcing")})  # a checkbox
        return cls(instance=instance, initial=initial, url=url)


class AffinityLabelForm(AffinityDialogForm):
    """New or Edit label: VMs and hosts of any cluster."""

    member_fields = ("vms", "hosts")

    class Meta:
        model = AffinityLabel
        fields = ["name", "description", "vms", "hosts"]
        field_classes = {"vms": MemberChoiceField, "hosts": MemberChoiceField}

    def __init__(self, *args, url: str, **kwargs) -> None:
        super().__init__(*args, url=url, **kwargs)
        self.fields["vms"].queryset = VirtualMachine.objects.select_related("cluster").order_by("name")
        self.fields["hosts"].queryset = Host.objects.select_related("cluster").order_by("name")
        for name in ("vms", "hosts"):
            self.fields[name].with_cluster = True
