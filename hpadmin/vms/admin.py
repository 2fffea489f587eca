from django import forms
from django.contrib import admin

from .models import Pool, Quota, Template, VirtualMachine


class VmConfigAdminForm(forms.ModelForm):
    """Hands the chosen placement hosts to ``clean()`` (as the dialog does), so its rules judge the new choice."""

    def clean(self):
        data = super().clean()
        if "placement_hosts" in data:
            self.instance.stage_placement_hosts(data["placement_hosts"])
        return data


class VmConfigAdmin(admin.ModelAdmin):
    form = VmConfigAdminForm
    list_display = ["name", "cluster", "optimized_for", "migration_mode", "cpu_pinning_policy"]
    list_filter = ["optimized_for", "migration_mode", "cpu_pinning_policy", "cluster"]
    search_fields = ["name"]
    filter_horizontal = ["placement_hosts"]


@admin.register(VirtualMachine)
class VirtualMachineAdmin(VmConfigAdmin):
    list_display = [*VmConfigAdmin.list_display, "status", "host"]
    list_filter = [*VmConfigAdmin.list_filter, "status"]
    list_select_related = ["cluster", "host"]


@admin.register(Template)
class TemplateAdmin(VmConfigAdmin):
    pass


@admin.register(Pool)
class PoolAdmin(VmConfigAdmin):
    list_display = [*VmConfigAdmin.list_display, "template", "size"]


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = ["user", "max_vms", "max_vcpus", "max_memory_mib"]
