"""Lists: sorting, filtering, pagination, what a VM row shows, and a query count that does not grow with rows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from hpadmin.operations.events import record
from hpadmin.operations.models import MigrationJob
from tests.factories import make_host, make_pool, make_template, make_vm

pytestmark = pytest.mark.django_db


def add_rows(kind: str, cluster, n: int) -> None:
    """``n`` more rows of a list, each with what its row shows (hosts hold allocations, VMs run)."""
    from hpadmin.operations.services import start_vm

    for _ in range(n):
        if kind == "host":
            host = make_host(cluster, numa_nodes=1, cores=2, threads=1)
            vm = make_vm(cluster, hosts=[host], migration_mode="pinned", cpu_pinning_policy="dedicated")
            start_vm(vm)
        elif kind == "vm":
            vm = start_vm(make_vm(cluster, optimized_for="high_performance", memory_mib=512))
            MigrationJob.objects.create(vm=vm, source=vm.host, mode="automatic")
        elif kind in ("template", "pool"):
            template = make_template(cluster)
            if kind == "pool":
                make_pool(template)
        elif kind == "job":
            vm = start_vm(make_vm(cluster, memory_mib=512))
            MigrationJob.objects.create(vm=vm, source=vm.host, mode="automatic", state="succeeded")
        elif kind == "event":
            record("test", "Something happened.", vm=make_vm(cluster))
        elif kind == "cluster":
            make_host(cluster.__class__.objects.create(name=f"c-{cluster.__class__.objects.count()}"))


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("vm", "vm-list"),
        ("host", "host-list"),
        ("template", "template-list"),
        ("pool", "pool-list"),
        ("job", "job-list"),
        ("event", "event-list"),
        ("cluster", "cluster-list"),
    ],
)
def test_query_count_is_the_same_for_3_and_30_rows(admin_client, cluster, django_assert_num_queries, kind, url):
    make_host(cluster, numa_nodes=2)
    add_rows(kind, cluster, 3)
    with CaptureQueriesContext(connection) as few:
        response = admin_client.get(reverse(url))
    assert response.status_code == 200
    add_rows(kind, cluster, 27)
    with django_assert_num_queries(len(few)):
        response = admin_client.get(reverse(url))
    assert response.status_code == 200


def test_vm_rows_show_migration_mode_and_hp_settings_at_a_glance(admin_client, hp_vm):
    row = admin_client.get(reverse("vm-list")).content.decode()
    assert "Manual only" in row and 'title="Migration mode: Allow manual migration only"' in row
    for badge in (">HP<", "2 vNUMA, pinned", "1 GiB pages", "host CPU"):
        assert badge in row


def test_sort_filter_and_paginate_vms(admin_client, cluster):
    for i in range(55):
        make_vm(cluster, name=f"vm-{i:02d}", memory_mib=1024 + i, optimized_for="desktop" if i % 5 else "server")
    first = admin_client.get(reverse("vm-list") + "?sort=-memory").context["rows"]
    assert [vm.name for vm in first[:2]] == ["vm-54", "vm-53"] and len(first) == 50
    second = admin_client.get(reverse("vm-list") + "?sort=-memory&page=2").context["rows"]
    assert [vm.name for vm in second] == [f"vm-{i:02d}" for i in range(4, -1, -1)]
    servers = admin_client.get(reverse("vm-list") + "?optimized_for=server").context["page"]
    assert servers.paginator.count == 11
    found = admin_client.get(reverse("vm-list") + "?q=vm-1").context["page"]
    assert found.paginator.count == 10
    ignored = admin_client.get(reverse("vm-list") + "?sort=password&status=nonsense").context
    assert ignored["sort"] == "name" and ignored["page"].paginator.count == 55


def test_sort_links_keep_filters_and_toggle_direction(admin_client, cluster):
    make_vm(cluster)
    content = admin_client.get(reverse("vm-list") + "?optimized_for=server&sort=memory").content.decode()
    assert "?optimized_for=server&amp;sort=-memory" in content
    assert "?optimized_for=server&amp;sort=name" in content


def test_host_list_filters_by_numa(admin_client, hosts):
    names = lambda query: {h.name for h in admin_client.get(reverse("host-list") + query).context["rows"]}  # noqa: E731
    assert names("?numa=no") == {"no-numa"}
    assert names("?numa=yes&status=up") == {"two-nodes", "four-nodes"}
