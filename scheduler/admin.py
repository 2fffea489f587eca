from django.contrib import admin

from .models import Allocation


@admin.register(Allocation)
class AllocationAdmin(admin.ModelAdmin):
    list_display = ["vm", "host", "state", "vcpus", "exclusive_cpus", "created_at"]
    list_filter = ["state"]
    list_select_related = ["vm", "host"]
