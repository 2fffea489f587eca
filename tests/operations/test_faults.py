"""Faults end settled: a driver raising the unexpected, an unreachable task queue, a job whose worker lives
but stalls, a process that died between claiming and starting a VM. Each leaves an event that says what
happened, and the invariants hold afterwards."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from hpadmin import celery_app
from hpadmin.hypervisor.models import FaultKind, SimulatedDomain, SimulatedFault
from hpadmin.hypervisor.simulated import SimulatedDriver
from hpadmin.operations import watchdog
from hpadmin.operations.engine import settle
from hpadmin.operations.errors import QUEUE_UNREACHABLE, OperationError
from hpadmin.operations.models import Event, JobState, MigrationJob
from hpadmin.operations.services import migrate_vms, start_vm
from hpadmin.operations.specs import domain_spec
from hpadmin.vms.models import VmStatus
from scheduler import services as scheduling
from scheduler.models import Allocation
from tests.factories import make_cluster, make_host, make_vm
from tests.operations.invariants import assert_consistent
from tests.operations.test_worker import wait_for, workers  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hosts():
    cluster = make_cluster()
    return [make_host(cluster, numa_nodes=2, cores=4, threads=2, hp2m=2048) for _ in range(2)]


def up_vm(host, **values):
    vm = make_vm(host.cluster, cpu_pinning_policy="dedicated", cores=2, threads=1, memory_mib=2048, **values)
    return start_vm(vm, host=host)


def broken(*_args, **_kwargs):
    raise RuntimeError("the driver lost its mind")


def test_an_unexpected_driver_error_fails_the_job_and_leaves_the_vm_where_it_runs(
    hosts, monkeypatch, django_capture_on_commit_callbacks
):
    vm = up_vm(hosts[0])
    monkeypatch.setattr(SimulatedDriver, "migrate", broken)
    with django_capture_on_commit_callbacks(execute=True):
        (job,) = migrate_vms([vm], hosts[1], force=True)
    job.refresh_from_db()
    vm.refresh_from_db()
    assert job.state == JobState.FAILED
    assert "unexpected error: the driver lost its mind" in job.error and "still runs on" in job.error
    assert vm.status == VmStatus.UP and vm.host == hosts[0]
    assert Event.objects.filter(job=job, code="vm_migration_failed", severity="error").exists()
    assert_consistent()


def test_an_unexpected_driver_error_at_start_gives_everything_back(hosts, monkeypatch):
    vm = make_vm(hosts[0].cluster, cpu_pinning_policy="dedicated", cores=2, threads=1, memory_mib=2048)
    monkeypatch.setattr(SimulatedDriver, "start", broken)
    with pytest.raises(OperationError) as refused:
        start_vm(vm)
    assert refused.value.status == 502 and "the driver lost its mind" in refused.value.message
    vm.refresh_from_db()
    assert vm.status == VmStatus.DOWN and not Allocation.objects.filter(vm=vm).exists()
    assert Event.objects.filter(vm=vm, code="vm_start_failed").exists()
    assert_consistent()


@pytest.fixture
def broker_down(monkeypatch):
    """The configured broker stops answering (a wrong CELERY_BROKER_URL, a dead Redis)."""
    wrong = "redis://127.0.0.1:9/0"
    before = celery_app.conf.broker_url
    monkeypatch.setenv("CELERY_BROKER_URL", wrong)  # Celery reads the variable before its settings
    celery_app.conf.update(CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL=wrong)
    forget_connections()
    yield
    celery_app.conf.update(CELERY_BROKER_URL=before)
    forget_connections()


def forget_connections() -> None:
    """Drop the app's connection and producer pools, so the next publish connects to the configured URL."""
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def test_an_unreachable_task_queue_answers_503_and_changes_nothing(hosts, broker_down, admin_user, admin_client):
    vm = up_vm(hosts[0])
    api = APIClient()
    api.force_authenticate(admin_user)
    r = api.post(f"/api/v1/vms/{vm.pk}/migrate/", {"force": True}, format="json")
    assert r.status_code == 503 and r.json()["detail"] == QUEUE_UNREACHABLE
    job = MigrationJob.objects.get(vm=vm)
    assert job.state == JobState.FAILED and job.error == QUEUE_UNREACHABLE
    assert Event.objects.filter(job=job, code="vm_migration_failed").exists()
    # The dialog says the same, and the VM can be asked again once the queue is back.
    page = admin_client.post(reverse("vm-migrate"), {"vm": [vm.pk]}, headers={"HX-Request": "true"})
    assert QUEUE_UNREACHABLE.encode() in page.content
    vm.refresh_from_db()
    assert vm.status == VmStatus.UP and vm.host == hosts[0]
    assert_consistent()


@pytest.mark.broker
def test_a_stalled_job_of_a_live_worker_is_aborted_and_settled(hosts, workers, settings):  # noqa: F811
    vm = up_vm(hosts[0])
    SimulatedFault.objects.create(host_uri=hosts[0].uri, kind=FaultKind.STALL, times=1)
    worker = workers()
    (job,) = migrate_vms([vm], hosts[1], force=True)
    wait_for(lambda: SimulatedDomain.objects.get(name=vm.name).state == "migrating", 60, "the copy", [worker.log])
    settings.HPADMIN_JOB_STALL_TIMEOUT = 1
    MigrationJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=5))
    assert watchdog.run() == [job.pk]
    job.refresh_from_db()
    assert job.state == JobState.FAILED and "made no progress" in job.error and "still runs on" in job.error
    assert Event.objects.get(job=job, code="vm_migration_failed").message == job.error
    # The stuck copy was aborted too: the guest runs on its source, as the database says.
    wait_for(lambda: SimulatedDomain.objects.get(name=vm.name).state == "running", 30, "the abort", [worker.log])
    assert_consistent()


def test_a_start_whose_process_died_after_the_claim_is_settled(hosts):
    vm = make_vm(hosts[0].cluster, cpu_pinning_policy="dedicated", cores=2, threads=1, memory_mib=2048)
    assert vm.move(VmStatus.DOWN, VmStatus.STARTING)
    scheduling.claim(vm, action="start", destination=hosts[0])  # ... and then the process died
    assert watchdog.run() == []  # too recent to tell
    vm.refresh_from_db()
    assert vm.status == VmStatus.STARTING
    Allocation.objects.filter(vm=vm).update(created_at=timezone.now() - timedelta(hours=1))
    type(vm).objects.filter(pk=vm.pk).update(status_changed_at=timezone.now() - timedelta(hours=1))
    watchdog.run()
    vm.refresh_from_db()
    assert vm.status == VmStatus.DOWN and not Allocation.objects.filter(vm=vm).exists()
    assert "its start did not complete" in Event.objects.get(vm=vm, code="vm_state_recovered").message
    assert start_vm(vm).status == VmStatus.UP  # and the next start works
    assert_consistent()


def test_a_start_that_ran_the_guest_before_its_process_died_is_recorded_as_up(hosts):
    vm = make_vm(hosts[0].cluster, cpu_pinning_policy="dedicated", cores=2, threads=1, memory_mib=2048)
    assert vm.move(VmStatus.DOWN, VmStatus.STARTING)
    claim = scheduling.claim(vm, action="start", destination=hosts[1])
    SimulatedDriver().start(hosts[1].uri, domain_spec(vm, claim))  # the guest runs; the process died here
    type(vm).objects.filter(pk=vm.pk).update(status_changed_at=timezone.now() - timedelta(hours=1))
    watchdog.run()
    vm.refresh_from_db()
    assert vm.status == VmStatus.UP and vm.host == hosts[1]
    assert Allocation.objects.get(vm=vm).state == "active"
    # What a start records, so that its migrations keep the guest's CPU flags and TSC frequency.
    assert vm.cpu_flags_at_start == sorted(hosts[1].cpu_flags) and vm.tsc_khz_at_start == hosts[1].tsc_khz
    assert_consistent()


@pytest.mark.broker
def test_a_copy_whose_job_was_settled_meanwhile_is_aborted(hosts, workers):  # noqa: F811
    vm = make_vm(hosts[0].cluster, cpu_pinning_policy="dedicated", cores=2, threads=1, memory_mib=4096)
    vm = start_vm(vm, host=hosts[0])
    worker = workers(speed=1.0)  # 4 GiB at 1100 MiB/s: the copy takes seconds
    (job,) = migrate_vms([vm], hosts[1], force=True)
    wait_for(lambda: SimulatedDomain.objects.get(name=vm.name).state == "migrating", 60, "the copy", [worker.log])
    assert settle(job.pk, "Given up by an admin's tool.") == JobState.FAILED
    # The worker sees at its next progress report that the job is no longer its own, and stops the copy.
    wait_for(lambda: SimulatedDomain.objects.get(name=vm.name).state == "running", 30, "the abort", [worker.log])
    assert SimulatedDomain.objects.get(name=vm.name).host_uri == hosts[0].uri
    assert_consistent()
