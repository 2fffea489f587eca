from django.contrib import admin

from .models import Event, MigrationJob


@admin.register(MigrationJob)
class MigrationJobAdmin(admin.ModelAdmin):
    list_display = ["vm", "source", "destination", "state", "progress", "reason", "created_at"]
    list_filter = ["state", "reason", "mode"]
    list_select_related = ["vm", "source", "destination"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["time", "severity", "code", "message", "user"]
    list_filter = ["severity", "code"]
    search_fields = ["message"]
