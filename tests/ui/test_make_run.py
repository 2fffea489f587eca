"""What `make run` serves a new user: DEBUG stays off, so a missing page says "Not Found" instead of listing
every URL pattern, and the pages still get their static files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_does_not_switch_debug_on():
    recipe = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "scripts/run-local" in recipe and "DEBUG" not in recipe


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def served(tmp_path):
    """scripts/run-local on a fresh embedded set-up (DEBUG unset, as `make run` leaves it) on a free port."""
    address = f"127.0.0.1:{free_port()}"
    unset = {"DEBUG", "DATABASE_URL", "CELERY_BROKER_URL"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(HPADMIN_VAR_DIR=str(tmp_path), HPADMIN_ADDRESS=address)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    log = tmp_path / "run-local.log"
    process = subprocess.Popen(
        ["scripts/run-local"], cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(address.split(":"), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"run-local did not serve {address}:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
        yield f"http://{address}"
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the script, its worker and its web server: nothing to keep
        process.wait(10)


def test_run_local_serves_a_plain_404_and_the_static_files(served):
    status, body = fetch(f"{served}/no-such-page/")
    assert status == 404
    assert "Not Found" in body and "URLconf" not in body and "api/" not in body
    status, script = fetch(f"{served}/static/js/hpadmin.js")
    assert status == 200 and "hpadmin: dialogs" in script
