"""A user's quota holds when their creations race: on PostgreSQL, parallel requests released together by a
barrier; exactly what the quota allows is created, the others are refused with the quota's message."""

from __future__ import annotations

from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from hpadmin.access.models import Grant
from hpadmin.vms.models import Quota, VirtualMachine
from tests.factories import make_cluster
from tests.operations.test_races import post, race

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="races are shown on PostgreSQL (DATABASE_URL)"),
]


def test_parallel_creations_stay_within_the_quota():
    cluster = make_cluster("portal")
    user = get_user_model().objects.create_user("creator", password="x")
    Grant.objects.create(user=user, role="VmCreator", cluster=cluster)
    Quota.objects.create(user=user, max_vms=2, max_vcpus=64, max_memory_mib=65536)
    calls = [post(user, "/api/v1/vms/", {"name": f"mine-{i}", "cluster": cluster.pk}) for i in range(6)]
    results = race(*calls)
    assert Counter(code for code, _ in results) == {201: 2, 400: 4}, results
    assert all("quota" in str(body) for code, body in results if code == 400)
    assert VirtualMachine.objects.filter(owner=user).count() == 2
