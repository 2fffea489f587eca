from django.contrib import admin

from .models import Pool, Template, VirtualMachine


class VmConfigAdmin(admin.ModelAdmin):
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
