from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "hpadmin.inventory"
    label = "inventory"
