from django.apps import AppConfig


class AffinityConfig(AppConfig):
    name = "hpadmin.affinity"
    label = "affinity"
    verbose_name = "Affinity"

    def ready(self) -> None:
        from . import managed, signals  # noqa: F401  (their receivers)
