"""Manual and automatic live migration through the services and the engine, on simulated hosts."""

import socket
import threading
import time

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from hpadmin.hypervisor.models import FaultKind, SimulatedDomain, SimulatedFault
from hpadmin.hypervisor.simulated import SimulatedDriver
from hpadmin.operations import engine, tasks, watchdog
from hpadmin.operations.errors import OperationError
from hpadmin.operations.models import Event, JobState, MigrationJob
from hpadmin.operations.services import (
    cancel_migration,
    migrate_vms,
    migration_candidates,
    migration_plan,
)
from hpadmin.operations.tasks import dispatch_pending
from hpadmin.utilities.processes import process_id
from scheduler.models import Allocation
from tests.factories import make_cluster, make_host, make_vm, start_hp_vm

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster():
    return make_cluster("c1")


@pytest.fixture
def hosts(cluster):
    """Three like hosts: 2 NUMA nodes x 4 cores x 2 threads, 2 MiB pages."""
    return [make_host(cluster, name=f"h{i}", numa_nodes=2, cores=4, threads=2, hp2m=2048) for i in (1, 2, 3)]


def running_vm(cluster, host, **values):
    return start_hp_vm(cluster, host, **values)


def fault(host, kind, times=0):
    SimulatedFault.objects.create(host_uri=host.uri, kind=kind, times=times)


def active(vm):
    return Allocation.objects.get(vm=vm, state="active")


def run(vms, captured, **kwargs):
    """Ask for the migrations and run their jobs (eager Celery), returning the finished jobs."""
    with captured(execute=True):
        jobs = migrate_vms(vms, **kwargs)
    return [MigrationJob.objects.get(pk=j.pk) for j in jobs]


# -- validation -------------------------------------------------------------------------------------------------


def test_do_not_migrate_vm_is_refused(cluster, hosts):
    vm = running_vm(cluster, hosts[0], migration_mode="pinned", hosts=[hosts[0]])
    with pytest.raises(OperationError) as exc:
        migrate_vms([vm], force=True)
    assert "pinned to host" in exc.value.message and exc.value.status == 409
    assert exc.value.errors == {vm.name: [exc.value.message]}


def test_manual_only_needs_force(cluster, hosts, django_capture_on_commit_callbacks):
    vm = running_vm(cluster, hosts[0])
    assert vm.migration_mode == "user_migratable"
    with pytest.raises(OperationError) as exc:
        migrate_vms([vm])
    assert "allows manual migration only" in exc.value.message and "force" in exc.value.message
    (job,) = run([vm], django_capture_on_commit_callbacks, force=True)
    assert job.state == JobState.SUCCEEDED


def test_highly_available_manual_only_vm_migrates(cluster, hosts, django_capture_on_commit_callbacks):
    vm = running_vm(cluster, hosts[0], high_availability=True)
    (job,) = run([vm], django_capture_on_commit_callbacks, force=True)
    assert job.state == JobState.SUCCEEDED


def test_vm_not_running_or_already_migrating(cluster, hosts):
    down = make_vm(cluster)
    with pytest.raises(OperationError, match="it is not running") as exc:
        migrate_vms([down], force=True)
    assert exc.value.status == 409
    vm = running_vm(cluster, hosts[0])
    MigrationJob.objects.create(vm=vm, source=hosts[0], mode="automatic", state=JobState.MIGRATING)
    with pytest.raises(OperationError, match="a migration is already in progress"):
        migrate_vms([vm], force=True)


def test_destination_checks(cluster, hosts):
    vm = running_vm(cluster, hosts[0])
    with pytest.raises(OperationError, match="source and destination are the same"):
        migrate_vms([vm], hosts[0], force=True)
    elsewhere = make_host(make_cluster(), name="elsewhere")
    with pytest.raises(OperationError, match="in another cluster"):
        migrate_vms([vm], elsewhere, force=True)
    hosts[1].status = "maintenance"
    hosts[1].save()
    with pytest.raises(OperationError, match="h2: the host is maintenance, not up") as exc:
        migrate_vms([vm], hosts[1], force=True)
    assert exc.value.status == 409


def test_explicit_destination_failing_filters_lists_every_reason(cluster, hosts):
    vm = running_vm(cluster, hosts[0], cpu_passthrough=True)
    small = make_host(cluster, name="small", numa_nodes=1, cores=2, threads=1, flags="sse4_2")
    with pytest.raises(OperationError) as exc:
        migrate_vms([vm], small, force=True)
    message = exc.value.message
    assert "does not satisfy the scheduling constraints" in message
    for name in ("CpuLevel", "CpuTopology", "HugePages"):
        assert name in message
    assert not MigrationJob.objects.exists()


def test_several_vms_move_those_that_can_and_report_the_others(cluster, hosts):
    good = running_vm(cluster, hosts[0], name="good")
    pinned = running_vm(cluster, hosts[0], name="pinned", migration_mode="pinned", hosts=[hosts[0]])
    down = make_vm(cluster, name="down")
    busy = running_vm(cluster, hosts[1], name="busy")
    MigrationJob.objects.create(vm=busy, source=hosts[1], mode="automatic", state=JobState.MIGRATING)
    jobs = migrate_vms([down, good, busy, pinned], force=True)
    assert [job.vm for job in jobs] == [good] and MigrationJob.objects.filter(vm=good).count() == 1
    why = {s.vm.name: s.message for s in jobs.skipped}
    assert why == {
        "pinned": "Cannot migrate VM pinned: VM pinned is pinned to host: its migration mode does not allow migration.",
        "down": "Cannot migrate VM down: it is not running.",
        "busy": "Cannot migrate VM busy: a migration is already in progress.",
    }
    assert not MigrationJob.objects.filter(vm__in=[pinned, down]).exists()


def test_when_no_vm_can_move_the_refusal_gives_every_reason(cluster, hosts):
    down = make_vm(cluster, name="down")
    pinned = running_vm(cluster, hosts[0], name="pinned", migration_mode="pinned", hosts=[hosts[0]])
    with pytest.raises(OperationError) as exc:
        migrate_vms([down, pinned], force=True)
    assert set(exc.value.errors) == {"down", "pinned"} and exc.value.status == 409
    assert "it is not running" in exc.value.message and "pinned to host" in exc.value.message
    assert not MigrationJob.objects.exists()


def test_one_request_moves_vms_of_one_cluster_the_one_most_of_them_are_in(cluster, hosts):
    other = make_cluster("b-other")
    other_host = make_host(other, name="o1", numa_nodes=2, cores=4, threads=2, hp2m=2048)
    make_host(other, name="o2", numa_nodes=2, cores=4, threads=2, hp2m=2048)
    a = running_vm(cluster, hosts[0], name="a", cores=1)
    b = running_vm(cluster, hosts[1], name="b", cores=1)
    stray = running_vm(other, other_host, name="stray", cores=1)
    jobs = migrate_vms([stray, a, b], force=True)
    assert sorted(job.vm.name for job in jobs) == ["a", "b"]
    [skipped] = jobs.skipped
    assert skipped.vm == stray
    assert skipped.message == (
        "Cannot migrate VM stray: it is in cluster b-other and the other VMs are in c1; "
        "VMs migrate within their cluster, so migrate it on its own."
    )


def test_a_tie_between_clusters_goes_to_the_cluster_first_by_name_whatever_the_order(cluster, hosts):
    other = make_cluster("b-other")
    other_host = make_host(other, name="o1", numa_nodes=2, cores=4, threads=2, hp2m=2048)
    here = running_vm(cluster, hosts[0], name="here", cores=1)
    there = running_vm(other, other_host, name="there", cores=1)
    for order in ([here, there], [there, here]):
        movable, skipped = migration_plan(order, force=True)
        assert movable == [there] and [s.vm for s in skipped] == [here]


def test_the_plan_the_dialog_shows_is_what_the_request_does(cluster, hosts):
    good = running_vm(cluster, hosts[0], name="good")
    down = make_vm(cluster, name="down")
    movable, skipped = migration_plan([good, down], force=True)
    jobs = migrate_vms([good, down], force=True)
    assert [job.vm for job in jobs] == movable == [good]
    assert [(s.vm, s.message) for s in jobs.skipped] == [(s.vm, s.message) for s in skipped]


def test_candidates_show_verdict_per_host(cluster, hosts):
    vm = running_vm(cluster, hosts[0])
    verdicts = {v.host.name: v for v in migration_candidates(vm)}
    assert verdicts["h1"].rejections == (("Migration", "it currently runs the VM"),)
    assert verdicts["h2"].eligible and verdicts["h3"].eligible
    assert {verdicts["h2"].rank, verdicts["h3"].rank} == {1, 2}


# -- outcomes ---------------------------------------------------------------------------------------------------


def test_success_moves_the_allocation_with_fresh_pinning(cluster, hosts, django_capture_on_commit_callbacks):
    other = running_vm(cluster, hosts[1])  # holds pCPUs on h2, so the migrated VM is re-pinned around them
    vm = running_vm(cluster, hosts[0])
    (job,) = run([vm], django_capture_on_commit_callbacks, destination=hosts[1], force=True, reason_text="patching")
    vm.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and job.progress == 100.0 and job.downtime_ms > 0
    assert vm.host == hosts[1] and vm.status == "up"
    allocation = active(vm)
    assert allocation.host == hosts[1]
    assert not set(allocation.exclusive_cpus) & set(active(other).exclusive_cpus)
    assert Allocation.objects.filter(vm=vm).count() == 1
    assert SimulatedDomain.objects.get(name=vm.name).host_uri == hosts[1].uri
    pins = SimulatedDriver().applied_pinning(hosts[1].uri, vm.name)["vcpus"]
    assert {c for cpus in pins.values() for c in cpus} <= set(allocation.exclusive_cpus)
    codes = list(Event.objects.filter(job=job).order_by("pk").values_list("code", "message"))
    assert codes[0][0] == "vm_migration_start" and "Reason: patching" in codes[0][1]
    assert codes[-1][0] == "vm_migration_done" and "Actual downtime" in codes[-1][1]


def test_state_passes_through_migrating(cluster, hosts, django_capture_on_commit_callbacks, monkeypatch):
    seen = []
    original = SimulatedDriver.migrate

    def spy(self, src, dst, spec, options, progress):
        seen.append(MigrationJob.objects.get().state)
        return original(self, src, dst, spec, options, progress)

    monkeypatch.setattr(SimulatedDriver, "migrate", spy)
    vm = running_vm(cluster, hosts[0])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        (job,) = migrate_vms([vm], force=True)
    assert MigrationJob.objects.get().state == JobState.PENDING
    with django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()
    assert seen == [JobState.MIGRATING]
    assert MigrationJob.objects.get().state == JobState.SUCCEEDED


def test_destination_refuses_explicit_no_retry(cluster, hosts, django_capture_on_commit_callbacks):
    vm = running_vm(cluster, hosts[0])
    before = active(vm)
    fault(hosts[1], FaultKind.REFUSE_INCOMING)
    (job,) = run([vm], django_capture_on_commit_callbacks, destination=hosts[1], force=True)
    vm.refresh_from_db()
    assert job.state == JobState.FAILED and "refused the migration" in job.error
    assert job.attempt == 1 and job.tried_hosts == [hosts[1].pk]
    assert vm.host == hosts[0] and vm.status == "up"
    after = active(vm)
    assert (after.pk, after.exclusive_cpus, after.cpu_pinning) == (before.pk, before.exclusive_cpus, before.cpu_pinning)
    assert not Allocation.objects.filter(state="pending").exists()
    assert SimulatedDomain.objects.get(name=vm.name).host_uri == hosts[0].uri
    assert Event.objects.filter(job=job, code="vm_migration_failed", severity="error").exists()


def test_failure_mid_copy_retries_on_the_next_host(cluster, hosts, django_capture_on_commit_callbacks):
    vm = running_vm(cluster, hosts[0])
    first_choice = migration_candidates(vm)[0].host
    fault(first_choice, FaultKind.FAIL_MIDWAY, times=1)
    (job,) = run([vm], django_capture_on_commit_callbacks, force=True)
    vm.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and job.attempt == 2
    assert job.tried_hosts == [first_choice.pk] and vm.host not in (first_choice, hosts[0])
    rerun = Event.objects.get(job=job, code="vm_migration_trying_rerun")
    assert "Trying to migrate to another Host" in rerun.message and "connection was reset" in rerun.message


def test_automatic_retries_are_bounded(cluster, hosts, django_capture_on_commit_callbacks):
    extra = [make_host(cluster, name=f"x{i}", numa_nodes=2, cores=4, threads=2, hp2m=2048) for i in range(3)]
    vm = running_vm(cluster, hosts[0])
    for host in [*hosts[1:], *extra]:
        fault(host, FaultKind.REFUSE_INCOMING)
    (job,) = run([vm], django_capture_on_commit_callbacks, force=True)
    assert job.state == JobState.FAILED and job.attempt == engine.MAX_ATTEMPTS == len(job.tried_hosts)
    assert active(vm).host == hosts[0]


def test_no_host_left(cluster, hosts, django_capture_on_commit_callbacks):
    vm = running_vm(cluster, hosts[0], hugepage_kib=None, memory_mib=2048)
    for host in hosts[1:]:
        host.status = "non_operational"
        host.save()
    (job,) = run([vm], django_capture_on_commit_callbacks, force=True)
    assert job.state == JobState.FAILED and job.error.startswith("No available host was found to migrate VM")


def test_cancel_pending_job(cluster, hosts, settings):
    settings.HPADMIN_MAX_MIGRATIONS_PER_HOST = 0  # nothing may start
    vm = running_vm(cluster, hosts[0])
    (job,) = migrate_vms([vm], force=True)
    cancel_migration(job)
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    with pytest.raises(OperationError, match="already ended"):
        cancel_migration(job)


@pytest.mark.django_db(transaction=True)
def test_cancel_aborts_a_running_migration(settings):
    settings.HPADMIN_SIMULATION_SPEED = 2  # 4 GiB over 1100 MiB/s takes about two seconds
    cluster = make_cluster()
    hosts = [make_host(cluster, name=f"t{i}", numa_nodes=2, cores=4, threads=2, hp2m=2048) for i in (1, 2)]
    vm = running_vm(cluster, hosts[0], memory_mib=4096)
    from hpadmin import celery_app

    celery_app.conf.CELERY_TASK_ALWAYS_EAGER = False  # run the job ourselves, in a thread, to cancel it meanwhile
    job = MigrationJob.objects.create(vm=vm, source=hosts[0], mode="automatic", force=True, state="scheduling")

    def run_job():
        try:
            engine.run_job(job.pk)
        finally:
            connections.close_all()  # the thread's own connection, so the test database can be dropped

    worker = threading.Thread(target=run_job)
    worker.start()
    deadline = time.monotonic() + 10
    while MigrationJob.objects.get(pk=job.pk).state != JobState.MIGRATING and time.monotonic() < deadline:
        time.sleep(0.05)
    cancel_migration(job)
    worker.join(15)
    job.refresh_from_db()
    vm.refresh_from_db()
    assert job.state == JobState.CANCELLED and "cancelled by the user" in job.error
    assert vm.host == hosts[0] and active(vm).host == hosts[0]
    assert not Allocation.objects.filter(state="pending").exists()


# -- limits and policies ----------------------------------------------------------------------------------------


def dispatch(captured) -> None:
    with captured(execute=True):
        dispatch_pending()


def test_limits_keep_jobs_waiting_in_order(cluster, hosts, settings, monkeypatch, django_capture_on_commit_callbacks):
    settings.HPADMIN_MAX_MIGRATIONS_PER_HOST = 1
    settings.HPADMIN_MAX_MIGRATIONS_PER_CLUSTER = 2
    started = []
    monkeypatch.setattr("hpadmin.operations.tasks.run_migration.delay", started.append)
    vms = [running_vm(cluster, hosts[0], cores=1, threads=1, memory_mib=512) for _ in range(3)]
    vms.append(running_vm(cluster, hosts[1], cores=1, threads=1, memory_mib=512))
    vms.append(running_vm(cluster, hosts[2], cores=1, threads=1, memory_mib=512))
    jobs = migrate_vms(vms, force=True)
    dispatch(django_capture_on_commit_callbacks)
    # One outgoing from h1 (the oldest), one from h2; the cluster limit of two holds back h3's.
    assert started == [jobs[0].pk, jobs[3].pk]
    assert MigrationJob.objects.filter(state="pending").count() == 3
    MigrationJob.objects.filter(pk=jobs[0].pk).update(state=JobState.SUCCEEDED)
    dispatch(django_capture_on_commit_callbacks)
    assert started[2:] == [jobs[1].pk]


def test_incoming_limit_for_explicit_destination(
    cluster, hosts, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.HPADMIN_MAX_MIGRATIONS_PER_HOST = 1
    started = []
    monkeypatch.setattr("hpadmin.operations.tasks.run_migration.delay", started.append)
    a = running_vm(cluster, hosts[0], cores=1, threads=1, memory_mib=512)
    b = running_vm(cluster, hosts[1], cores=1, threads=1, memory_mib=512)
    jobs = migrate_vms([a], hosts[2], force=True) + migrate_vms([b], hosts[2], force=True)
    dispatch(django_capture_on_commit_callbacks)
    assert started == [jobs[0].pk]


@pytest.mark.parametrize(
    ("policy", "vm_values", "expected"),
    [
        ("minimal_downtime", {}, dict(max_downtime_ms=500, auto_converge=True, post_copy=False, compression=False)),
        ("post_copy", {}, dict(post_copy=True, auto_converge=False)),
        ("suspend_workload", {}, dict(max_downtime_ms=5000, compression=True)),
        (
            "minimal_downtime",
            {"max_downtime_ms": 80, "auto_converge": "off", "compression": "on"},
            dict(max_downtime_ms=80, auto_converge=False, compression=True),
        ),
    ],
)
def test_policies_map_to_driver_options(cluster, policy, vm_values, expected):
    from hpadmin.operations.policies import migration_options

    cluster.migration_policy = policy
    cluster.save()
    vm = make_vm(cluster, hugepage_kib=None, **vm_values)
    options = migration_options(vm).driver
    assert {k: getattr(options, k) for k in expected} == expected


def test_vm_policy_overrides_cluster(cluster):
    from hpadmin.operations.policies import migration_options

    vm = make_vm(cluster, migration_policy="post_copy")
    assert migration_options(vm).policy == "post_copy"


def test_post_copy_with_hugepages_falls_back_with_a_warning(cluster, hosts, django_capture_on_commit_callbacks):
    vm = running_vm(cluster, hosts[0], migration_policy="post_copy")
    fault(hosts[0], FaultKind.NEVER_CONVERGE)
    (job,) = run([vm], django_capture_on_commit_callbacks, force=True)
    assert job.state == JobState.SUCCEEDED  # saved by auto-converge instead
    warning = Event.objects.get(job=job, code="vm_migration_policy_fallback")
    assert warning.severity == "warning" and "backed by hugepages" in warning.message


def test_post_copy_saves_a_never_converging_vm(cluster, hosts, django_capture_on_commit_callbacks):
    vm = running_vm(cluster, hosts[0], hugepage_kib=None, migration_policy="post_copy")
    fault(hosts[0], FaultKind.NEVER_CONVERGE)
    (job,) = run([vm], django_capture_on_commit_callbacks, force=True)
    assert job.state == JobState.SUCCEEDED and job.downtime_ms == 20.0


# -- recovery ---------------------------------------------------------------------------------------------------


def orphan(vm, source, destination, claim_host):
    """A job left in 'migrating' by a worker process that no longer exists, with its pending claim."""
    job = MigrationJob.objects.create(
        vm=vm,
        source=source,
        destination=destination,
        mode="automatic",
        force=True,
        state=JobState.MIGRATING,
        worker=f"{socket.gethostname()}:999999",
    )
    claim = active(vm)
    claim.pk, claim.state, claim.host, claim.job = None, "pending", claim_host, job
    claim.save()
    return job


def test_recovery_finds_the_vm_on_the_destination(cluster, hosts):
    vm = running_vm(cluster, hosts[0])
    job = orphan(vm, hosts[0], hosts[1], hosts[1])
    SimulatedDomain.objects.filter(name=vm.name).update(host_uri=hosts[1].uri)  # the copy had finished
    assert watchdog.run() == [job.pk]
    job.refresh_from_db()
    vm.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and vm.host == hosts[1]
    assert list(Allocation.objects.filter(vm=vm).values_list("host", "state")) == [(hosts[1].pk, "active")]


def test_recovery_finds_the_vm_on_the_source(cluster, hosts):
    vm = running_vm(cluster, hosts[0])
    before = active(vm)
    job = orphan(vm, hosts[0], hosts[1], hosts[1])
    assert watchdog.run() == [job.pk]
    job.refresh_from_db()
    assert job.state == JobState.FAILED and "still runs on h1" in job.error
    assert list(Allocation.objects.filter(vm=vm).values_list("pk", "state")) == [(before.pk, "active")]


def test_recovery_leaves_jobs_of_live_workers_alone(cluster, hosts):
    vm = running_vm(cluster, hosts[0])
    job = orphan(vm, hosts[0], hosts[1], hosts[1])
    MigrationJob.objects.filter(pk=job.pk).update(worker=process_id())
    assert watchdog.run() == []


# -- cost ---------------------------------------------------------------------------------------------------------


def test_a_successful_job_costs_few_round_trips(cluster, hosts, monkeypatch, django_capture_on_commit_callbacks):
    """The worker's part of a job, less the simulated hypervisor's own rows and the transaction statements."""
    vm = running_vm(cluster, hosts[0])
    monkeypatch.setattr("hpadmin.operations.tasks.run_migration.delay", lambda pk: None)
    with django_capture_on_commit_callbacks(execute=True):
        (job,) = migrate_vms([vm], force=True)  # admitted, not yet run
    with CaptureQueriesContext(connection) as queries:
        tasks.run_migration(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    own = [
        q["sql"]
        for q in queries.captured_queries
        if "hypervisor_simulated" not in q["sql"]
        and q["sql"].split()[0] not in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK")
    ]
    assert len(own) <= 15, "\n".join(own)


def test_a_destination_receiving_as_many_migrations_as_allowed_is_passed_over(
    cluster, hosts, settings, django_capture_on_commit_callbacks
):
    settings.HPADMIN_MAX_MIGRATIONS_PER_HOST = 1
    vm = running_vm(cluster, hosts[0])
    other = running_vm(cluster, hosts[2])
    busy = MigrationJob.objects.create(vm=other, source=hosts[2], mode="automatic", state=JobState.MIGRATING)
    claim = active(other)
    claim.pk, claim.state, claim.host, claim.job = None, "pending", hosts[1], busy  # h2 receives one already
    claim.save()
    (refused,) = run([vm], django_capture_on_commit_callbacks, destination=hosts[1], force=True)
    assert refused.state == JobState.FAILED
    assert "it already receives as many migrations at once as allowed" in refused.error
    (job,) = run([vm], django_capture_on_commit_callbacks, force=True)
    assert job.state == JobState.SUCCEEDED and job.destination == hosts[2]
