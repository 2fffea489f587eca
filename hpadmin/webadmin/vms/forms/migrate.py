"""The Migrate dialog's form: the selected VMs, a destination (none: the scheduler chooses), the admin's
confirmation that a destination may take them with settings suspended, and whether their positive enforcing
affinity closure moves with them (oVirt 4.4)."""

from __future__ import annotations

from django import forms

from hpadmin.inventory.models import Host
from hpadmin.vms.models import VirtualMachine


class MigrateForm(forms.Form):
    vm = forms.ModelMultipleChoiceField(
        VirtualMachine.objects.select_related("cluster", "host").prefetch_related("placement_hosts").order_by("name"),
        widget=forms.MultipleHiddenInput,
        error_messages={"required": "Select at least one VM to migrate."},
    )
    destination = forms.ModelChoiceField(
        Host.objects.all(), required=False, empty_label="Select Host Automatically", widget=forms.RadioSelect
    )
    allow_degraded = forms.BooleanField(required=False)
    affinity_closure = forms.BooleanField(
        required=False, label="Migrate all VMs in positive enforcing affinity with the selected VMs."
    )
