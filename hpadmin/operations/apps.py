from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "hpadmin.operations"
    label = "operations"
