"""The Celery app: configured from Django settings (``CELERY_*``), tasks autodiscovered per app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hpadmin.settings")

app = Celery("hpadmin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
