"""Settings read the environment, with embedded defaults when it is silent."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def settings_in(env: dict) -> dict:
    code = (
        "import json, django; from django.conf import settings; django.setup();"
        "db = settings.DATABASES['default'];"
        "print(json.dumps({'db': db['ENGINE'], 'name': str(db['NAME']),"
        "'broker': settings.CELERY_BROKER_URL, 'driver': settings.HPADMIN_DRIVER, 'debug': settings.DEBUG,"
        "'hosts': settings.ALLOWED_HOSTS, 'key': settings.SECRET_KEY}))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "DEBUG"}}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "DJANGO_SETTINGS_MODULE": "hpadmin.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )

    return json.loads(out.stdout)


def test_embedded_defaults(tmp_path):
    s = settings_in({"HPADMIN_VAR_DIR": str(tmp_path)})
    assert s["db"] == "django.db.backends.sqlite3" and s["name"] == str(tmp_path / "hpadmin.sqlite3")
    assert s["broker"] == "filesystem://" and (tmp_path / "broker" / "queue").is_dir()
    assert s["driver"] == "simulated" and s["debug"] is False


def test_environment_overrides(tmp_path):
    s = settings_in(
        {
            "HPADMIN_VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://u@db.example:5432/hp",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/3",
            "HPADMIN_DRIVER": "libvirt",
            "DEBUG": "true",
            "ALLOWED_HOSTS": "admin.example, api.example",
            "SECRET_KEY": "s3cret",
        }
    )
    assert s["db"] == "django.db.backends.postgresql" and s["name"] == "hp"
    assert s["broker"] == "redis://127.0.0.1:6379/3" and s["driver"] == "libvirt" and s["debug"] is True
    assert s["hosts"] == ["admin.example", "api.example"] and s["key"] == "s3cret"
