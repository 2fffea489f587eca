"""The Migrate dialog's form: the selected VMs, a destination (none: the scheduler chooses) and the admin's
confirmation that a destination may take them with settings suspended."""

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
