"""The Add Permission dialog, the quota dialog and the filter of the permissions list."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from hpadmin.access.models import Grant
from hpadmin.access.policy import Access
from hpadmin.access.roles import Role
from hpadmin.access.services import may_grant, refusal
from hpadmin.utilities.lists import ListFilterForm, with_any
from hpadmin.vms.models import Quota
from hpadmin.webadmin.inventory.forms import DialogFields


class GrantFilterForm(ListFilterForm):
    role = forms.ChoiceField(choices=with_any(Role.choices, "Any role"), required=False)
    search_fields = ("user__username__icontains", "group__name__icontains")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["q"].widget.attrs["placeholder"] = "User or group…"

    def apply(self, queryset: QuerySet, data: dict) -> QuerySet:
        return queryset.filter(role=data["role"]) if data.get("role") else queryset


class UserFilterForm(ListFilterForm):
    search_fields = ("username__icontains", "email__icontains")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["q"].widget.attrs["placeholder"] = "User name or e-mail…"


class GrantForm(DialogFields, forms.ModelForm):
    """oVirt's Add Permission: a user or a group, a role, and where (neither cluster nor VM: the system)."""

    class Meta:
        model = Grant
        fields = ["user", "group", "role", "cluster", "vm"]
        help_texts = {"cluster": "Leave cluster and VM empty to grant the role on the whole system."}

    def __init__(self, *args, access: Access, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.access = access
        self.fields["user"].queryset = get_user_model().objects.filter(is_active=True).order_by("username")
        self.fields["vm"].queryset = self.fields["vm"].queryset.order_by("name")

    def clean(self) -> dict:
        # Whether the user may grant it comes before the model's rules: a refusal for a duplicate would tell of
        # grants they cannot see.
        cleaned = super().clean()
        grant = Grant(**{name: cleaned.get(name) for name in self._meta.fields})
        if not self.errors and not may_grant(self.access, grant):
            raise forms.ValidationError({"role": forms.ValidationError(refusal(grant), code="not_granter")})
        return cleaned

    def _post_clean(self) -> None:
        if not self.has_error("role", code="not_granter"):
            super()._post_clean()


class QuotaForm(DialogFields, forms.ModelForm):
    class Meta:
        model = Quota
        fields = ["max_vms", "max_vcpus", "max_memory_mib"]
