"""Host URIs reach libvirt, and some libvirt URI parameters run programs: only safe transports and parameters
are accepted, and a host that does not answer fails the request within the configured timeout."""

from __future__ import annotations

import socket
import time

import pytest

from hpadmin.inventory.models import Host

pytestmark = pytest.mark.django_db


def add(api, cluster, uri: str, name: str = "new"):
    return api.post("/api/v1/hosts/", {"cluster": cluster.pk, "name": name, "uri": uri}, format="json")


@pytest.mark.parametrize("parameter", ["command", "socket", "netcat", "proxy"])
def test_parameters_that_run_programs_are_refused(api, cluster, tmp_path, parameter):
    marker = tmp_path / "ran"
    program = tmp_path / "program"
    program.write_text(f"#!/bin/sh\ntouch {marker}\n")
    program.chmod(0o755)
    r = add(api, cluster, f"qemu+ssh://h1/system?{parameter}={program}")
    assert r.status_code == 400
    assert parameter in " ".join(r.json()["uri"])
    assert not marker.exists()
    assert not Host.objects.filter(name="new").exists()


@pytest.mark.parametrize(
    "uri",
    [
        "qemu+ext://h1/system",  # runs a program of its own
        "qemu+libssh2://h1/system",
        "xen:///system",
        "test:///default",  # libvirt's mock driver is for hpadmin's own tests
        "qemu://h1/system",  # remote without a named transport
        "qemu+tcp://h1/session",
    ],
)
def test_transports_hpadmin_does_not_support_are_refused(api, cluster, uri):
    r = add(api, cluster, uri)
    assert r.status_code == 400 and r.json()["uri"]
    assert not Host.objects.filter(name="new").exists()


def test_a_host_that_never_answers_fails_within_the_timeout(api, cluster, settings):
    settings.HPADMIN_LIBVIRT_TIMEOUT = 1.5
    with socket.socket() as silent:  # accepts connections (the kernel does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        r = add(api, cluster, f"qemu+tcp://127.0.0.1:{port}/system?no_verify=1")
        elapsed = time.monotonic() - started
    assert r.status_code == 502
    assert f"127.0.0.1:{port} did not answer within 1.5 s" in r.json()["detail"]
    assert elapsed < 5
    assert not Host.objects.filter(name="new").exists()
