"""What the tests of grants, quotas and their pages share: two clusters, a VM in each, users."""

import pytest
from django.contrib.auth import get_user_model

from hpadmin.access.models import Grant
from hpadmin.access.roles import Role
from tests.factories import make_cluster, make_host, make_vm


def make_user(name: str, **values):
    return get_user_model().objects.create_user(name, password="pw-1234-pw", **values)


@pytest.fixture
def a(db):
    cluster = make_cluster("a")
    make_host(cluster, name="a-host")
    return cluster


@pytest.fixture
def b(db):
    cluster = make_cluster("b")
    make_host(cluster, name="b-host")
    return cluster


@pytest.fixture
def a_vm(a):
    return make_vm(a, name="a-vm")


@pytest.fixture
def b_vm(b):
    return make_vm(b, name="b-vm")


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def cadmin(a):
    """ClusterAdmin on cluster a."""
    user = make_user("cadmin")
    Grant.objects.create(user=user, role=Role.CLUSTER_ADMIN, cluster=a)
    return user
