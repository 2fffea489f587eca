"""Every list answers in a constant number of queries, however many rows it shows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hpadmin.operations.models import Event, MigrationJob
from scheduler.models import Allocation
from tests.factories import make_cluster, make_host, make_pool, make_template, make_vm

pytestmark = pytest.mark.django_db


def add_clusters(n, cluster, host):
    for _ in range(n):
        make_cluster()


def add_hosts(n, cluster, host):
    for _ in range(n):
        other = make_host(cluster, numa_nodes=2, cores=2, threads=1)
        Allocation.objects.create(vm=make_vm(cluster), host=other, state="active", vcpus=1, exclusive_cpus=[0])


def add_vms(n, cluster, host):
    template = make_template(cluster)
    for _ in range(n):
        make_vm(cluster, hosts=[host], source=template, template=template)


def add_templates(n, cluster, host):
    for _ in range(n):
        make_template(cluster, hosts=[host])


def add_pools(n, cluster, host):
    template = make_template(cluster)
    for _ in range(n):
        make_pool(template)


def add_jobs(n, cluster, host):
    for _ in range(n):
        MigrationJob.objects.create(vm=make_vm(cluster), source=host, mode="automatic")


def add_events(n, cluster, host):
    for _ in range(n):
        Event.objects.create(code="vm_started", message="VM started.", cluster=cluster, host=host)


@pytest.mark.parametrize(
    ("path", "add"),
    [
        ("/api/v1/clusters/", add_clusters),
        ("/api/v1/hosts/", add_hosts),
        ("/api/v1/vms/", add_vms),
        ("/api/v1/templates/", add_templates),
        ("/api/v1/pools/", add_pools),
        ("/api/v1/jobs/", add_jobs),
        ("/api/v1/events/", add_events),
    ],
)
def test_list_query_count_does_not_grow_with_rows(api, django_assert_num_queries, path, add):
    cluster = make_cluster()
    host = make_host(cluster)
    add(3, cluster, host)
    with CaptureQueriesContext(connection) as few:
        r = api.get(path)
    assert r.status_code == 200 and r.json()["count"] >= 3
    add(27, cluster, host)
    with django_assert_num_queries(len(few.captured_queries)):
        r = api.get(path)
    assert r.json()["count"] >= 30 and len(r.json()["results"]) >= 30
