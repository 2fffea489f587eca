from django.apps import AppConfig


class VmsConfig(AppConfig):
    name = "hpadmin.vms"
    label = "vms"
