"""``manage.py check --deploy`` generates the OpenAPI schema as it is served, with ``schema.SCHEMA_SETTINGS``:
drf-spectacular's own check (switched off in the settings) would use its defaults and warn about enum names
the served schema settles."""

from __future__ import annotations

from django.core.checks import register
from drf_spectacular import checks
from drf_spectacular.settings import patched_settings

from .schema import SCHEMA_SETTINGS


@register(deploy=True)
def served_schema_check(app_configs, **kwargs):
    with patched_settings({**SCHEMA_SETTINGS, "ENABLE_DJANGO_DEPLOY_CHECK": True}):
        return checks.schema_check(app_configs, **kwargs)
