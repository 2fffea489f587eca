"""Migrations carried out by real Celery worker processes through the configured broker (the file-system
broker on the embedded defaults, Redis in CI), including a worker killed in the middle of a job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from hpadmin import celery_app
from hpadmin.hypervisor.models import SimulatedDomain
from hpadmin.operations.models import Event, JobState, MigrationJob
from hpadmin.operations.services import migrate_vms, start_vm
from scheduler.models import Allocation
from tests.factories import make_cluster, make_host, make_vm
from tests.operations.invariants import assert_consistent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.broker]
ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """A real `celery worker` process on the test database; stopped by PID."""

    def __init__(self, name: str, speed: float, log: Path) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "HPADMIN_SIMULATION_SPEED": str(speed),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        }
        self.log = log
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "hpadmin",
                "worker",
                "--pool=prefork",
                "--concurrency=2",
                "--loglevel=info",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"{name}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, as a crash would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def workers(tmp_path):
    celery_app.conf.update(CELERY_TASK_ALWAYS_EAGER=False)  # jobs go through the broker to the workers
    started: list[Worker] = []

    def start(speed: float = 1000.0) -> Worker:
        worker = Worker(f"w{len(started)}-{os.getpid()}", speed, tmp_path / f"worker{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for(predicate, timeout: float, what: str, logs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    tails = "\n".join(log.read_text()[-3000:] for log in logs if log.exists())
    pytest.fail(f"timed out waiting for {what}\n{tails}")


@pytest.fixture
def pair():
    cluster = make_cluster()
    hosts = [make_host(cluster, name=f"wk{i}-{os.getpid()}", numa_nodes=2, cores=4, threads=2, hp1g=16) for i in (1, 2)]
    return cluster, hosts


def hp_vm(cluster, host, memory_mib=4096):
    vm = make_vm(
        cluster,
        optimized_for="high_performance",
        cpu_pinning_policy="dedicated",
        cores=2,
        threads=2,
        memory_mib=memory_mib,
        hugepage_kib=1048576,
    )
    return start_vm(vm, host=host)


def test_migration_through_the_broker_and_a_worker(pair, workers, tmp_path):
    cluster, (h1, h2) = pair
    vm = hp_vm(cluster, h1)
    worker = workers()
    (job,) = migrate_vms([vm], force=True)
    wait_for(
        lambda: MigrationJob.objects.get(pk=job.pk).state in (JobState.SUCCEEDED, JobState.FAILED),
        60,
        "the job to finish",
        [worker.log],
    )
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.worker.split(":")[1] != str(os.getpid())  # another process ran it
    allocation = Allocation.objects.get(vm=vm)
    assert allocation.host == h2 and allocation.state == "active"
    assert SimulatedDomain.objects.get(name=vm.name).host_uri == h2.uri


def test_a_killed_worker_leaves_the_job_to_the_next_one(pair, workers, tmp_path):
    cluster, (h1, h2) = pair
    vm = hp_vm(cluster, h1, memory_mib=16384)  # 16 GiB at 1100 MiB/s, slowed: the copy takes about a minute
    before = Allocation.objects.get(vm=vm, state="active")
    first = workers(speed=0.25)
    (job,) = migrate_vms([vm], force=True)
    wait_for(
        lambda: MigrationJob.objects.get(pk=job.pk).state == JobState.MIGRATING,
        60,
        "the migration to start",
        [first.log],
    )
    assert Allocation.objects.filter(vm=vm, state="pending", host=h2).exists()
    first.kill()
    job.refresh_from_db()
    assert job.state == JobState.MIGRATING  # nobody is left to finish it

    second = workers()
    wait_for(
        lambda: MigrationJob.objects.get(pk=job.pk).state == JobState.FAILED,
        60,
        "the next worker to reconcile the job",
        [second.log],
    )
    job.refresh_from_db()
    vm.refresh_from_db()
    assert "still runs on" in job.error and vm.host == h1 and vm.status == "up"
    (after,) = Allocation.objects.filter(vm=vm)
    assert (after.pk, after.host, after.exclusive_cpus) == (before.pk, h1, before.exclusive_cpus)
    source = SimulatedDomain.objects.get(name=vm.name)
    assert (source.host_uri, source.state, source.migrating_to) == (h1.uri, "running", "")  # the copy died too
    assert Event.objects.filter(job=job, code="vm_migration_failed").exists()
    assert_consistent()
