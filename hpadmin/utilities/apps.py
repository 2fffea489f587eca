from django.apps import AppConfig


class UtilitiesConfig(AppConfig):
    """Installed only so that Django finds the shared template tags (``{% load hpadmin_ui %}``)."""

    name = "hpadmin.utilities"
    label = "utilities"
