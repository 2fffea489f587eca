"""The embedded admin's password file is readable by its owner only."""

from __future__ import annotations

import stat
from io import StringIO

import pytest

from hpadmin.operations.demo import ensure_admin

pytestmark = pytest.mark.django_db


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_password_file_is_made_readable_by_its_owner_only(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    out = StringIO()
    ensure_admin(out)
    secret = tmp_path / "admin-password.txt"
    assert mode(secret) == 0o600
    assert secret.read_text().strip() in out.getvalue()


def test_a_file_left_readable_by_others_is_narrowed(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    ensure_admin(StringIO())
    secret = tmp_path / "admin-password.txt"
    secret.chmod(0o644)
    ensure_admin(StringIO())
    assert mode(secret) == 0o600


def test_a_new_admin_replaces_a_stale_file(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    stale = tmp_path / "admin-password.txt"
    stale.write_text("old\n")
    stale.chmod(0o644)
    ensure_admin(StringIO())
    assert stale.read_text().strip() != "old" and mode(stale) == 0o600
