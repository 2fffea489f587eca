from django.contrib import admin

from .models import Cluster, Host, HostCpu, HostNumaNode, HugePagePool


class HostCpuInline(admin.TabularInline):
    model = HostCpu
    extra = 0


class HostNumaNodeInline(admin.TabularInline):
    model = HostNumaNode
    extra = 0


class HugePagePoolInline(admin.TabularInline):
    model = HugePagePool
    extra = 0


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ["name", "threads_as_cores", "migration_policy", "auto_migrate_hp"]
    search_fields = ["name"]


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ["name", "cluster", "status", "cpu_model", "sockets", "cores_per_socket", "threads_per_core"]
    list_filter = ["status", "cluster"]
    search_fields = ["name", "uri"]
    inlines = [HostNumaNodeInline, HugePagePoolInline, HostCpuInline]
