"""API clients for each kind of caller, and a small cluster to work on."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from hpadmin.access.models import Grant
from hpadmin.access.roles import Role
from tests.factories import make_cluster, make_host


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_user("root", password="pw-root-1234", is_staff=True)


@pytest.fixture
def api(admin_user):
    """An admin authenticated by token."""
    return token_client(admin_user)


@pytest.fixture
def reader(db):
    """A read-only admin: Viewer on the whole system."""
    user = get_user_model().objects.create_user("viewer", password="pw-viewer-1234")
    Grant.objects.create(user=user, role=Role.VIEWER)
    return token_client(user)


@pytest.fixture
def anonymous():
    return APIClient()


@pytest.fixture
def cluster(db):
    return make_cluster("c1")


@pytest.fixture
def hosts(cluster):
    """Two like hosts: 2 NUMA nodes x 4 cores x 2 threads, 2 MiB pages."""
    return [make_host(cluster, name=f"h{i}", numa_nodes=2, cores=4, threads=2, hp2m=2048) for i in (1, 2)]
