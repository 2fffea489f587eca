from django.contrib import admin

from .models import Grant


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    list_display = ["role", "user", "group", "cluster", "vm", "granted_by", "created_at"]
    list_filter = ["role"]
    raw_id_fields = ["vm"]
