"""Concurrent scheduling never hands out a pCPU or a hugepage twice (PostgreSQL row locks; SQLite serializes)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from hpadmin.operations.models import MigrationJob
from hpadmin.operations.services import migrate_vms, start_vm
from scheduler import services as scheduling
from scheduler.models import Allocation
from scheduler.services import NoHostError
from tests.factories import make_cluster, make_host, make_vm
from tests.operations.invariants import assert_consistent, assert_nothing_held_twice
from tests.operations.test_worker import wait_for, workers  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db(transaction=True)

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row-lock concurrency is shown on PostgreSQL (DATABASE_URL)"
)


@postgres_only
def test_many_decisions_at_once_never_overcommit():
    cluster = make_cluster()
    # Three small hosts: 8 pCPUs and 6 x 1 GiB pages each; 24 VMs want 2 pCPUs and 2 GiB each: 12 fit.
    hosts = [make_host(cluster, numa_nodes=1, cores=4, threads=2, memory_mib=16384, hp1g=6) for _ in range(3)]
    vms = [
        make_vm(
            cluster,
            optimized_for="high_performance",
            cpu_pinning_policy="dedicated",
            cores=1,
            threads=2,
            memory_mib=2048,
            hugepage_kib=1048576,
        )
        for _ in range(24)
    ]
    barrier = threading.Barrier(len(vms))
    outcomes: list[str] = []

    def place(vm):
        try:
            barrier.wait()
            scheduling.claim(vm, action="start")
            outcomes.append("claimed")
        except NoHostError:
            outcomes.append("no host")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=place, args=(vm,)) for vm in vms]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert Counter(outcomes) == {"claimed": 9, "no host": 15}  # pages run out first: 3 hosts x 3 VMs
    assert_nothing_held_twice(hosts)


@postgres_only
def test_fifty_vms_migrate_at_once_with_several_workers(workers):  # noqa: F811
    cluster = make_cluster()
    # Five hosts with room for 16 such VMs each; 50 VMs start on the first four, the fifth is empty.
    hosts = [make_host(cluster, numa_nodes=2, cores=8, threads=2, memory_mib=262144, hp1g=48) for _ in range(5)]
    vms = []
    for i in range(50):
        vm = make_vm(
            cluster,
            optimized_for="high_performance",
            cpu_pinning_policy="dedicated",
            cores=1,
            threads=2,
            memory_mib=1024,
            hugepage_kib=1048576,
        )
        vms.append(start_vm(vm, host=hosts[i % 4]))
    running = [workers(speed=200.0) for _ in range(3)]
    jobs = migrate_vms(vms, force=True)
    wait_for(
        lambda: not MigrationJob.objects.filter(pk__in=[j.pk for j in jobs]).active().exists(),
        240,
        "every job to end",
        [w.log for w in running],
    )
    states = Counter(MigrationJob.objects.filter(pk__in=[j.pk for j in jobs]).values_list("state", flat=True))
    assert states == {"succeeded": 50}, states
    assert not Allocation.objects.filter(state="pending").exists()
    assert Allocation.objects.filter(state="active").count() == 50
    assert_consistent()
