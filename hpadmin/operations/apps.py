from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "hpadmin.operations"
    label = "operations"

    def ready(self) -> None:
        # Beat tasks outside ``tasks`` (their modules use the services, which use ``tasks``) and receivers.
        from . import balancing, enforcer, ha, logins, maintenance, restoring  # noqa: F401
