from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "hpadmin.api"
    label = "api"
