from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "hpadmin.access"
    label = "access"
    verbose_name = "Roles and permissions"
    default_auto_field = "django.db.models.BigAutoField"
