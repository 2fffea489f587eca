from django import forms
from django.contrib import admin

from .models import AffinityGroup, AffinityLabel


class StagingAdminForm(forms.ModelForm):
    """Hands the chosen members to ``clean()`` (as the API does), so its rules judge the new choice."""

    member_fields: tuple[str, ...] = ()

    def clean(self):
        data = super().clean()
        self.instance.stage_members(**{name: data[name] for name in self.member_fields if name in data})
        return data


class AffinityGroupAdminForm(StagingAdminForm):
    member_fields = ("vms", "hosts", "vm_labels", "host_labels")


class AffinityLabelAdminForm(StagingAdminForm):
    member_fields = ("vms", "hosts")


@admin.register(AffinityGroup)
class AffinityGroupAdmin(admin.ModelAdmin):
    """Groups hpadmin manages are shown, never changed or deleted here: hpadmin keeps them current itself."""

    form = AffinityGroupAdminForm
    list_display = ["name", "cluster", "priority", "vm_rule", "vm_enforcing", "host_rule", "host_enforcing", "managed"]
    list_filter = ["cluster", "managed", "vm_rule", "host_rule"]
    list_select_related = ["cluster"]
    search_fields = ["name"]
    filter_horizontal = AffinityGroupAdminForm.member_fields
    readonly_fields = ["managed", "managed_reasons"]

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and not (obj and obj.managed)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and not (obj and obj.managed)

    def delete_queryset(self, request, queryset) -> None:
        super().delete_queryset(request, queryset.filter(managed=False))  # the bulk action asks for no object


@admin.register(AffinityLabel)
class AffinityLabelAdmin(admin.ModelAdmin):
    form = AffinityLabelAdminForm
    list_display = ["name", "description"]
    search_fields = ["name"]
    filter_horizontal = AffinityLabelAdminForm.member_fields
