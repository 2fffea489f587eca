"""Fixtures of the UI tests: a small HP cluster, an admin and a read-only user."""

import pytest
from django.contrib.auth import get_user_model

from hpadmin.access.models import Grant
from hpadmin.access.roles import Role
from tests.factories import make_cluster, make_host, make_vm

HTMX = {"HX-Request": "true"}


@pytest.fixture
def cluster(db):
    return make_cluster("hp")


@pytest.fixture
def hosts(cluster):
    """Two NUMA hosts of different layouts, one host without NUMA and one in maintenance."""
    return {
        "two": make_host(cluster, "two-nodes", numa_nodes=2, hp1g=8),
        "four": make_host(cluster, "four-nodes", numa_nodes=4, sockets=4, cores=2, hp1g=8),
        "flat": make_host(cluster, "no-numa", numa_nodes=0, sockets=1),
        "down": make_host(cluster, "in-maintenance", numa_nodes=2, status="maintenance"),
    }


@pytest.fixture
def hp_vm(cluster, hosts):
    """An HP VM with two vNUMA nodes, pinned to hosts 'two' and 'four'."""
    nodes = [
        {"index": 0, "vcpus": [0, 1], "memory_mib": 2048, "tune_mode": "strict", "pinned_to": [0]},
        {"index": 1, "vcpus": [2, 3], "memory_mib": 2048, "tune_mode": "strict", "pinned_to": [1]},
    ]
    return make_vm(
        cluster,
        hosts=[hosts["two"], hosts["four"]],
        name="hp-vm",
        optimized_for="high_performance",
        sockets=2,
        cores=2,
        memory_mib=4096,
        hugepage_kib=1048576,
        numa_nodes=nodes,
    )


@pytest.fixture
def reader(db):
    """A read-only admin: Viewer on the whole system."""
    user = get_user_model().objects.create_user("reader", password="x")
    Grant.objects.create(user=user, role=Role.VIEWER)
    return user


@pytest.fixture
def reader_client(client, reader):
    client.force_login(reader)
    return client
