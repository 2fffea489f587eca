"""Filter forms of the job and event lists."""

from __future__ import annotations

from django import forms

from hpadmin.operations.models import JobState, MigrationReason, Severity
from hpadmin.utilities.lists import ListFilterForm, with_any


class JobFilterForm(ListFilterForm):
    state = forms.ChoiceField(
        choices=with_any([("active", "In progress"), *JobState.choices], "Any state"), required=False
    )
    reason = forms.ChoiceField(choices=with_any(MigrationReason.choices, "Any reason"), required=False)
    search_fields = ("vm__name__icontains", "source__name__icontains", "destination__name__icontains")

    def apply(self, queryset, data):
        if data.get("state") == "active":
            queryset = queryset.active()
        elif data.get("state"):
            queryset = queryset.filter(state=data["state"])
        if data.get("reason"):
            queryset = queryset.filter(reason=data["reason"])
        return queryset


class EventFilterForm(ListFilterForm):
    severity = forms.ChoiceField(choices=with_any(Severity.choices, "Any severity"), required=False)
    search_fields = ("message__icontains",)

    def apply(self, queryset, data):
        return queryset.filter(severity=data["severity"]) if data.get("severity") else queryset
