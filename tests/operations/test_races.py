"""Two admins click at once: parallel requests on one VM, released together by a barrier, on PostgreSQL with
real workers. Each race has one winner, clear 409s for the others and no 500, and the invariants hold."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from rest_framework.test import APIClient

from hpadmin.inventory.models import Host
from hpadmin.operations import tasks, watchdog
from hpadmin.operations.errors import OperationError
from hpadmin.operations.maintenance import activate_host, advance_evacuations, start_maintenance
from hpadmin.operations.models import Evacuation, JobState, MigrationJob
from hpadmin.operations.services import cancel_migration, migrate_vms, start_vm
from hpadmin.vms.models import VirtualMachine, VmStatus
from tests.factories import make_cluster, make_host, make_vm
from tests.operations.invariants import assert_consistent
from tests.operations.test_worker import wait_for, workers  # noqa: F401 - the fixture

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="races are shown on PostgreSQL (DATABASE_URL)"),
]


def race(*calls):
    """Run ``calls`` at once, each in a thread with its own connection; their results (or exceptions) in order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            results[i] = call()
        except Exception as exc:
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


@pytest.fixture
def admin(db):
    return get_user_model().objects.create_user("racer", password="pw-racer-1234", is_staff=True)


def post(user, url: str, data=None):
    """A request from its own client (its own admin session), answering (status, body)."""

    def call():
        client = APIClient()
        client.force_authenticate(user)
        r = client.post(url, data or {}, format="json")
        return r.status_code, r.json()

    return call


@pytest.fixture
def hosts():
    cluster = make_cluster()
    return [make_host(cluster, numa_nodes=2, cores=4, threads=2, hp2m=4096) for _ in range(3)]


def up_vm(host, memory_mib=2048):
    vm = make_vm(host.cluster, cpu_pinning_policy="dedicated", cores=2, threads=1, memory_mib=memory_mib)
    return start_vm(vm, host=host)


def settled(logs=()) -> None:
    wait_for(lambda: not MigrationJob.objects.active().exists(), 120, "every job to end", logs)


def test_parallel_migrations_of_one_vm_make_one_job(hosts, admin, workers):  # noqa: F811
    vm = up_vm(hosts[0], memory_mib=4096)
    worker = workers(speed=1.0)  # the copy takes seconds: the losers find it in progress
    results = race(*[post(admin, f"/api/v1/vms/{vm.pk}/migrate/", {"force": True})] * 6)
    assert Counter(code for code, _ in results) == {202: 1, 409: 5}, results
    assert all("a migration is already in progress" in body["detail"] for code, body in results if code == 409)
    assert MigrationJob.objects.filter(vm=vm).count() == 1
    settled([worker.log])
    assert MigrationJob.objects.get(vm=vm).state == JobState.SUCCEEDED
    assert_consistent()


def test_parallel_starts_of_one_vm_run_it_once(hosts, admin):
    vm = make_vm(hosts[0].cluster, cpu_pinning_policy="dedicated", cores=2, threads=1, memory_mib=2048)
    results = race(*[post(admin, f"/api/v1/vms/{vm.pk}/start/")] * 5)
    assert Counter(code for code, _ in results) == {200: 1, 409: 4}, results
    assert all("Cannot run VM" in body["detail"] for code, body in results if code == 409)
    assert_consistent()


def test_stop_racing_a_migration_never_leaves_the_guest_running_behind_the_database(hosts, admin, workers):  # noqa: F811
    vm = up_vm(hosts[0], memory_mib=4096)
    worker = workers(speed=1.0)
    stop, migrate = race(
        post(admin, f"/api/v1/vms/{vm.pk}/stop/"), post(admin, f"/api/v1/vms/{vm.pk}/migrate/", {"force": True})
    )
    assert stop[0] in (200, 409) and migrate[0] in (202, 409), (stop, migrate)
    assert (stop[0], migrate[0]) != (409, 409)
    settled([worker.log])
    vm.refresh_from_db()
    if stop[0] == 200:  # the stop won, or cancelled the migration and waited for it
        assert vm.status == VmStatus.DOWN
    assert_consistent()


def test_stop_racing_a_start(hosts, admin):
    vm = up_vm(hosts[0])
    stop, start = race(post(admin, f"/api/v1/vms/{vm.pk}/stop/"), post(admin, f"/api/v1/vms/{vm.pk}/start/"))
    assert stop[0] == 200, stop
    assert start[0] in (200, 409), start  # refused while up or stopping; a start after the stop runs it again
    vm.refresh_from_db()
    assert vm.status == (VmStatus.UP if start[0] == 200 else VmStatus.DOWN)
    assert_consistent()


def test_cancel_racing_dispatch(hosts, workers):  # noqa: F811
    vm = up_vm(hosts[0], memory_mib=4096)
    worker = workers(speed=1.0)
    job = MigrationJob.objects.create(vm=vm, source=hosts[0], mode="automatic", force=True)
    cancelled, dispatched = race(lambda: cancel_migration(job), tasks.dispatch_pending)
    assert not isinstance(dispatched, Exception), dispatched
    assert not isinstance(cancelled, Exception) or isinstance(cancelled, OperationError), cancelled
    settled([worker.log])
    job.refresh_from_db()
    # Cancelled before it started, or started and then aborted by the cancel: never a second outcome.
    assert job.state in (JobState.CANCELLED, JobState.SUCCEEDED), job.error
    if dispatched == []:
        assert job.state == JobState.CANCELLED
    assert_consistent()


def test_the_watchdog_leaves_a_running_job_alone(hosts, workers):  # noqa: F811
    vm = up_vm(hosts[0], memory_mib=4096)
    worker = workers(speed=1.0)
    (job,) = migrate_vms([vm], hosts[1], force=True)
    wait_for(lambda: MigrationJob.objects.get(pk=job.pk).state == JobState.MIGRATING, 60, "the copy", [worker.log])
    rounds = race(*[watchdog.run] * 4)
    assert rounds == [[]] * 4
    settled([worker.log])
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert_consistent()


def test_two_admins_put_one_host_into_maintenance_at_once(hosts, admin, workers):  # noqa: F811
    vms = [up_vm(hosts[0]) for _ in range(2)]
    worker = workers(speed=1.0)
    results = race(*[lambda: start_maintenance(hosts[0], user=admin)] * 2)
    assert sorted(type(r).__name__ for r in results) == ["Evacuation", "OperationError"], results
    refused = next(r for r in results if isinstance(r, OperationError))
    assert refused.status == 409 and "preparing for maintenance" in refused.message
    wait_for(lambda: Host.objects.get(pk=hosts[0].pk).status == "maintenance", 120, "maintenance", [worker.log])
    assert all(VirtualMachine.objects.get(pk=vm.pk).host_id != hosts[0].pk for vm in vms)
    assert Evacuation.objects.get().state == "done"
    assert_consistent()


def test_maintenance_racing_a_migration_of_one_of_its_vms(hosts, admin, workers):  # noqa: F811
    vm, other = up_vm(hosts[0], memory_mib=4096), up_vm(hosts[0])
    worker = workers(speed=1.0)
    maintenance, migrate = race(
        lambda: start_maintenance(hosts[0], user=admin), post(admin, f"/api/v1/vms/{vm.pk}/migrate/", {"force": True})
    )
    assert not isinstance(maintenance, Exception), maintenance
    assert migrate[0] in (202, 409), migrate

    def in_maintenance() -> bool:
        advance_evacuations()  # beat's round: the user's migration may have ended last
        return Host.objects.get(pk=hosts[0].pk).status == "maintenance"

    wait_for(in_maintenance, 120, "maintenance", [worker.log])
    assert {VirtualMachine.objects.get(pk=v.pk).host_id for v in (vm, other)} <= {hosts[1].pk, hosts[2].pk}
    assert_consistent()


def test_activate_racing_the_evacuation_it_cancels(hosts, admin, workers):  # noqa: F811
    for _ in range(3):
        up_vm(hosts[0], memory_mib=4096)
    worker = workers(speed=1.0)
    start_maintenance(hosts[0], user=admin)
    activated, rounds = race(lambda: activate_host(hosts[0], user=admin), advance_evacuations)
    assert not isinstance(activated, Exception) and not isinstance(rounds, Exception), (activated, rounds)
    settled([worker.log])
    assert Host.objects.get(pk=hosts[0].pk).status == "up"
    assert Evacuation.objects.get().state == "cancelled"
    assert_consistent()
