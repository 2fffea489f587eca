"""Fixtures of the portal tests: a cluster with two hosts that take HP VMs and one that takes them only with
hugepages suspended, and the users of the portal."""

import pytest
from django.contrib.auth import get_user_model

from hpadmin.access.models import Grant
from tests.factories import make_cluster, make_host

HTMX = {"HX-Request": "true"}


@pytest.fixture
def cluster(db):
    return make_cluster("c1")


@pytest.fixture
def hosts(cluster):
    return {
        "one": make_host(cluster, "h-one", numa_nodes=2, hp2m=2048),
        "two": make_host(cluster, "h-two", numa_nodes=2, hp2m=2048),
        "small": make_host(cluster, "h-no-hugepages", numa_nodes=2),
    }


def make_user(name: str, **values):
    return get_user_model().objects.create_user(name, password="pw-portal-1234", **values)


@pytest.fixture
def alice(db):
    """A portal user: owns VMs, holds no admin role."""
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def grant(user, role: str, **scope) -> Grant:
    return Grant.objects.create(user=user, role=role, **scope)
