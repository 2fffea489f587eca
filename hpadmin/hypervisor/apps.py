from django.apps import AppConfig


class HypervisorConfig(AppConfig):
    name = "hpadmin.hypervisor"
    label = "hypervisor"
