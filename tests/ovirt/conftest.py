"""A live hpadmin server, the inventory the oVirt scripts find on it and an ovirtsdk4 connection signed in as
oVirt's ``admin@internal``; and hpadmin's own API, through which each test checks what the SDK did."""

from __future__ import annotations

import ovirtsdk4
import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from tests.factories import make_cluster, make_host

PASSWORD = "sdk-test-password-1234"


@pytest.fixture
def admin(transactional_db):
    """The hpadmin user that oVirt's ``admin@internal`` maps to."""
    return get_user_model().objects.create_user("admin", password=PASSWORD, is_staff=True)


@pytest.fixture
def inventory(transactional_db):
    """hp-cluster with hp-a and hp-b alike: 2 NUMA nodes x 4 cores x 2 threads, 2048 pages of 2 MiB per node."""
    cluster = make_cluster(name="hp-cluster")
    hosts = [make_host(cluster, name=name, numa_nodes=2, cores=4, threads=2, hp2m=2048) for name in ("hp-a", "hp-b")]
    return cluster, hosts


@pytest.fixture
def api(admin) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=admin)
    return client


@pytest.fixture
def connect(live_server, admin):
    """Opens ovirtsdk4 connections to the live server as ``admin@internal``; they sign in on their first request."""
    opened: list[ovirtsdk4.Connection] = []

    def open_connection() -> ovirtsdk4.Connection:
        connection = ovirtsdk4.Connection(
            url=f"{live_server.url}/ovirt-engine/api",
            username="admin@internal",
            password=PASSWORD,
            insecure=True,
            timeout=60,  # a hung request fails its test instead of the run
        )
        opened.append(connection)
        return connection

    yield open_connection
    for connection in opened:
        connection.close(logout=False)  # the logout has its own test


@pytest.fixture
def connection(connect, inventory) -> ovirtsdk4.Connection:
    return connect()
