"""Production mode (DEBUG off, not embedded) refuses to start without a secret key of its own, and passes
``manage.py check --deploy`` with the documented environment; embedded runs keep a local key of their own."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What decides between embedded and production, and what production sets: none of it is inherited.
DECIDING = {
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "HPADMIN_EMBEDDED",
    "HPADMIN_TLS",
    "HPADMIN_BEHIND_PROXY",
    "HPADMIN_HSTS_SUBDOMAINS",
    "HPADMIN_HSTS_PRELOAD",
    "DJANGO_SETTINGS_MODULE",
}
SHOW = (
    "import json, django; from django.conf import settings; django.setup();"
    "print(json.dumps({'key': settings.SECRET_KEY, 'hosts': settings.ALLOWED_HOSTS,"
    "'origins': settings.CSRF_TRUSTED_ORIGINS, 'redirect': settings.SECURE_SSL_REDIRECT,"
    "'hsts': settings.SECURE_HSTS_SECONDS, 'proxy': settings.SECURE_PROXY_SSL_HEADER,"
    "'secure_cookies': [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE]}))"
)


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in DECIDING}
    return subprocess.run(
        args,
        env={**clean, "DJANGO_SETTINGS_MODULE": "hpadmin.settings", "HPADMIN_VAR_DIR": str(tmp_path), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_in(tmp_path: Path, **env: str) -> dict:
    out = run([sys.executable, "-c", SHOW], tmp_path, **env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def own_key() -> str:
    return secrets.token_urlsafe(50)


PRODUCTION = {"DEBUG": "0", "ALLOWED_HOSTS": "hpadmin.example.com"}


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    out = run([sys.executable, "-c", SHOW], tmp_path, **PRODUCTION)
    assert out.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set" in out.stderr
    assert "HPADMIN_EMBEDDED=1" in out.stderr  # says how a local run goes without one
    assert not (tmp_path / "secret-key").exists()


@pytest.mark.parametrize(
    "key", ["hpadmin-insecure-local-only", "django-insecure-3x@mpl3k3y-from-startproject-0123456789abcdef"]
)
def test_production_refuses_a_published_key(tmp_path, key):
    out = run([sys.executable, "-c", SHOW], tmp_path, SECRET_KEY=key, **PRODUCTION)
    assert out.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is a published default" in out.stderr


def test_even_embedded_runs_refuse_a_published_key(tmp_path):
    out = run([sys.executable, "-c", SHOW], tmp_path, SECRET_KEY="hpadmin-insecure-local-only", HPADMIN_EMBEDDED="1")
    assert out.returncode != 0 and "published default" in out.stderr


def test_production_starts_with_a_key_of_its_own(tmp_path):
    key = own_key()
    s = settings_in(tmp_path, SECRET_KEY=key, **PRODUCTION)
    assert s["key"] == key and s["hosts"] == ["hpadmin.example.com"]
    assert not (tmp_path / "secret-key").exists()


def test_embedded_runs_make_a_local_key_once_readable_by_its_owner_only(tmp_path):
    first = settings_in(tmp_path, HPADMIN_EMBEDDED="1")
    key_file = tmp_path / "secret-key"
    assert first["key"] == key_file.read_text().strip() and len(first["key"]) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert settings_in(tmp_path, HPADMIN_EMBEDDED="1")["key"] == first["key"]
    assert settings_in(tmp_path, DEBUG="1")["key"] == first["key"]  # DEBUG runs are local too


def test_processes_starting_together_share_one_local_key(tmp_path):
    clean = {k: v for k, v in os.environ.items() if k not in DECIDING}
    env = {**clean, "DJANGO_SETTINGS_MODULE": "hpadmin.settings", "HPADMIN_VAR_DIR": str(tmp_path)}
    env["HPADMIN_EMBEDDED"] = "1"
    procs = [
        subprocess.Popen([sys.executable, "-c", SHOW], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    keys = {json.loads(p.communicate(timeout=120)[0].splitlines()[-1])["key"] for p in procs}
    assert keys == {(tmp_path / "secret-key").read_text().strip()}
    assert list(tmp_path.glob("tmp*")) == []  # no key written aside is left behind


def test_allowed_hosts_default_to_this_machine_without_testserver(tmp_path):
    s = settings_in(tmp_path, HPADMIN_EMBEDDED="1")
    assert s["hosts"] == ["localhost", "127.0.0.1", "[::1]"]


def test_tls_and_proxy_settings(tmp_path):
    plain = settings_in(tmp_path, SECRET_KEY=own_key(), **PRODUCTION)
    assert plain["redirect"] is False and plain["hsts"] == 0 and plain["proxy"] is None
    assert plain["secure_cookies"] == [False, False] and plain["origins"] == []
    tls = settings_in(
        tmp_path,
        SECRET_KEY=own_key(),
        HPADMIN_TLS="1",
        HPADMIN_BEHIND_PROXY="1",
        CSRF_TRUSTED_ORIGINS="https://hpadmin.example.com",
        **PRODUCTION,
    )
    assert tls["redirect"] is True and tls["hsts"] == 365 * 24 * 3600
    assert tls["secure_cookies"] == [True, True]
    assert tls["proxy"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert tls["origins"] == ["https://hpadmin.example.com"]


def deploy_check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    return run(args, tmp_path, SECRET_KEY=own_key(), **PRODUCTION, **env)


def test_check_deploy_passes_with_the_documented_production_environment(tmp_path):
    out = deploy_check(tmp_path, HPADMIN_TLS="1", HPADMIN_BEHIND_PROXY="1")
    assert out.returncode == 0, out.stderr
    assert "System check identified no issues" in out.stdout


def test_check_deploy_without_tls_names_what_is_missing(tmp_path):
    out = deploy_check(tmp_path)
    assert out.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):  # HSTS, redirect, cookies
        assert check in out.stderr


def test_the_served_application_refuses_without_a_key_while_manage_py_runs_embedded(tmp_path):
    served = run([sys.executable, "-c", "import hpadmin.wsgi"], tmp_path, DEBUG="0")
    assert served.returncode != 0 and "SECRET_KEY is not set" in served.stderr
    command = run([sys.executable, "manage.py", "check"], tmp_path, DEBUG="0")
    assert command.returncode == 0, command.stderr
    assert (tmp_path / "secret-key").exists()
