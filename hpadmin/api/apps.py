from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "hpadmin.api"
    label = "api"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the schema's deploy check
