"""Migration jobs per second through the broker and real worker processes, with a zero-time simulated driver:
the engine's own overhead (validation, dispatch, scheduling, claims, bookkeeping, events); and the database
round trips of one job, counted in process: the request's, and the worker's (its own statements, its
transaction statements, and those of the simulated hypervisor, which stands for a remote host).

Runs on a fresh SQLite database in a temporary folder with the embedded file-system broker, unless
DATABASE_URL / CELERY_BROKER_URL say otherwise (then it writes to that database).
Usage: .venv/bin/python benchmarks/bench_jobs.py [JOBS] [WORKERS]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HPADMIN_VAR_DIR", tempfile.mkdtemp(prefix="hpadmin-bench-"))
os.environ.update(
    DJANGO_SETTINGS_MODULE="hpadmin.settings",
    HPADMIN_SIMULATION_SPEED="1e12",  # a migration takes no time: what remains is the engine
    HPADMIN_MAX_MIGRATIONS_PER_HOST="1000",
    HPADMIN_MAX_MIGRATIONS_PER_CLUSTER="1000",
)

import django  # noqa: E402

django.setup()

from unittest import mock  # noqa: E402

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from hpadmin.operations import tasks  # noqa: E402
from hpadmin.operations.models import MigrationJob  # noqa: E402
from hpadmin.operations.services import migrate_vms, start_vm  # noqa: E402
from tests.factories import make_cluster, make_host, make_vm  # noqa: E402

TRANSACTION = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK")


def round_trips(hosts, cluster) -> str:
    """One job's statements: the request (validation, the job row, dispatch) and the worker's run."""
    vm = start_vm(make_vm(cluster, name=f"{cluster.name}-probe", cores=1, memory_mib=512), host=hosts[0])
    with mock.patch.object(tasks.run_migration, "delay", lambda pk: None):
        with CaptureQueriesContext(connection) as request:
            (job,) = migrate_vms([vm], force=True)
    with CaptureQueriesContext(connection) as worker:
        tasks.run_migration(job.pk)
    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    statements = [q["sql"] for q in worker.captured_queries]
    simulated = sum("hypervisor_simulated" in sql for sql in statements)
    transaction = sum(sql.split()[0] in TRANSACTION for sql in statements)
    return (
        f"round trips of one job: request {len(request.captured_queries)}, worker {len(statements)} = "
        f"{len(statements) - simulated - transaction} engine statements + {transaction} transaction statements "
        f"+ {simulated} of the simulated hypervisor"
    )


def main(jobs: int, worker_count: int) -> None:
    call_command("migrate", verbosity=0)
    cluster = make_cluster(f"bench-{os.getpid()}")
    # Names of their own: on PostgreSQL the benchmark writes to a database that may hold an earlier run's.
    hosts = [
        make_host(cluster, f"{cluster.name}-h{i}", numa_nodes=2, cores=16, threads=2, memory_mib=1 << 20)
        for i in range(8)
    ]
    trips = round_trips(hosts, cluster)
    vms = [
        start_vm(make_vm(cluster, name=f"{cluster.name}-vm{i}", cores=1, memory_mib=512), host=hosts[i % 7])
        for i in range(jobs)
    ]
    env = {**os.environ}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "hpadmin",
                "worker",
                "--pool=prefork",
                "--concurrency=2",
                "--loglevel=warning",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"bench{i}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for i in range(worker_count)
    ]
    try:
        time.sleep(3)  # let the workers connect before the clock starts
        start = time.perf_counter()
        created = migrate_vms(vms, force=True)
        ids = [j.pk for j in created]
        while MigrationJob.objects.filter(pk__in=ids).active().exists():
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
    done = MigrationJob.objects.filter(pk__in=ids, state="succeeded").count()
    database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    broker = settings.CELERY_BROKER_URL.split(":")[0]
    print(
        f"{done}/{jobs} jobs succeeded in {elapsed:.2f} s with {worker_count} workers x 2 processes "
        f"({database}, {broker} broker): {done / elapsed:.1f} jobs/s, {1000 * elapsed / done:.1f} ms per job"
    )
    print(trips)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200, int(sys.argv[2]) if len(sys.argv) > 2 else 2)
