"""Load balancing on simulated hosts: each policy's trigger, one move per round per cluster, which VMs automation
may move, no pile-up, and what the resulting job, its events and the Jobs page say."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from hpadmin import celery_app
from hpadmin.hypervisor.models import FaultKind, SimulatedFault, SimulatedHostLoad
from hpadmin.hypervisor.registry import get_driver
from hpadmin.inventory.models import Host
from hpadmin.operations import balancing
from hpadmin.operations.models import Event, JobState, MigrationJob, MigrationReason
from hpadmin.operations.services import start_vm
from hpadmin.vms.models import VirtualMachine
from tests.factories import make_cluster, make_host, make_vm

pytestmark = pytest.mark.django_db


def cluster_with(policy, **values):
    """Three hosts of 8 CPUs; every 2-vCPU server VM keeps 1 CPU busy (12.5 %)."""
    cluster = make_cluster("c1", scheduling_policy=policy, **values)
    hosts = [make_host(cluster, name=f"h{i}", numa_nodes=1, cores=8, threads=1) for i in (1, 2, 3)]
    return cluster, hosts


def running(cluster, host, name, **values):
    values = {"optimized_for": "server", "cores": 2, "memory_mib": 1024, **values}
    return start_vm(make_vm(cluster, name=name, **values), host=host)


def extra_load(host, percent):
    SimulatedHostLoad.objects.update_or_create(host_uri=host.uri, defaults={"extra_percent": percent})


def beyond_since(host, minutes):
    """As if earlier rounds had seen the host beyond its threshold ``minutes`` ago."""
    earlier = timezone.now() - timedelta(minutes=minutes)
    Host.objects.filter(pk=host.pk, high_load_since__isnull=False).update(high_load_since=earlier)
    Host.objects.filter(pk=host.pk, low_load_since__isnull=False).update(low_load_since=earlier)


def balance(captured):
    """One beat round, its migrations run to their end (eager Celery); the jobs it asked for."""
    with captured(execute=True):
        jobs = balancing.run()
    return [MigrationJob.objects.get(pk=job.pk) for job in jobs]


@pytest.fixture
def overloaded(django_capture_on_commit_callbacks):
    """Evenly distributed: h1 runs a and b with 80 % extra load (100 %); h2 runs c (12.5 %); h3 is idle but has 50 %
    extra load. Counted in allocated vCPUs h3 would look emptiest; measured, h2 is."""
    cluster, (h1, h2, h3) = cluster_with("evenly_distributed")
    vms = [running(cluster, h1, "a"), running(cluster, h1, "b"), running(cluster, h2, "c")]
    extra_load(h1, 80)
    extra_load(h3, 50)
    assert balance(django_capture_on_commit_callbacks) == []  # the first reading starts the duration
    return cluster, (h1, h2, h3), vms


def test_a_host_over_high_utilization_for_the_duration_gives_one_vm_to_the_least_loaded_host(
    overloaded, django_capture_on_commit_callbacks
):
    cluster, (h1, h2, h3), (a, b, _) = overloaded
    beyond_since(h1, 3)

    (job,) = balance(django_capture_on_commit_callbacks)

    assert job.state == JobState.SUCCEEDED and job.vm in (a, b)
    assert (job.source, job.destination) == (h1, h2)
    assert job.reason == MigrationReason.BALANCING and job.requested_by is None and job.mode == "automatic"
    assert job.reason_text == "Host h1 is over-utilized: its CPU load of 100 % is above the high utilization of 80 %"
    assert VirtualMachine.objects.filter(host=h1).count() == 1
    start = Event.objects.get(code="vm_migration_start", job=job)
    assert f"Source: h1, Destination: h2, Initiated by system: Load balancing). Reason: {job.reason_text}" in (
        start.message
    )


def test_a_load_over_high_for_less_than_the_duration_moves_nothing(overloaded, django_capture_on_commit_callbacks):
    _, (h1, h2, h3), _ = overloaded
    first = Host.objects.get(pk=h1.pk).high_load_since
    assert balance(django_capture_on_commit_callbacks) == []
    h1.refresh_from_db()
    assert h1.cpu_load_percent == 100.0 and h1.high_load_since == first
    h2.refresh_from_db()
    assert h2.cpu_load_percent == 12.5 and h2.high_load_since is None and h2.low_load_since is not None


def test_a_host_back_under_high_starts_its_duration_again(overloaded, django_capture_on_commit_callbacks):
    _, (h1, _, _), _ = overloaded
    beyond_since(h1, 3)
    extra_load(h1, 0)
    assert balance(django_capture_on_commit_callbacks) == []
    assert Host.objects.get(pk=h1.pk).high_load_since is None


def test_one_move_per_round(overloaded, django_capture_on_commit_callbacks):
    """h1 stays over-utilized after the first move (80 % + 12.5 %): the next round moves the other VM."""
    _, (h1, _, _), _ = overloaded
    beyond_since(h1, 3)
    assert len(balance(django_capture_on_commit_callbacks)) == 1
    assert len(balance(django_capture_on_commit_callbacks)) == 1
    assert not VirtualMachine.objects.filter(host=h1).exists()


def test_the_duration_is_the_clusters(django_capture_on_commit_callbacks):
    cluster, (h1, h2, _) = cluster_with("evenly_distributed", over_utilization_minutes=0)
    running(cluster, h1, "a")
    extra_load(h1, 90)
    (job,) = balance(django_capture_on_commit_callbacks)
    assert job.source == h1


def test_power_saving_empties_a_host_under_low_utilization(django_capture_on_commit_callbacks):
    """h1 runs one VM (12.5 %, under 20 %): power saving moves it to the busy h2 (52.5 %, and 65 % with it), not to
    the idle h3 (10 %), which it would empty next."""
    cluster, (h1, h2, h3) = cluster_with("power_saving")
    vm = running(cluster, h1, "lonely")
    running(cluster, h2, "b")
    extra_load(h2, 40)
    extra_load(h3, 10)
    assert balance(django_capture_on_commit_callbacks) == []
    beyond_since(h1, 3)

    (job,) = balance(django_capture_on_commit_callbacks)

    assert (job.vm, job.source, job.destination, job.state) == (vm, h1, h2, JobState.SUCCEEDED)
    assert job.reason_text == (
        "Host h1 is under-utilized: its CPU load of 12 % is below the low utilization of 20 %, so power saving "
        "empties it"
    )


def test_evenly_distributed_does_not_consolidate(django_capture_on_commit_callbacks):
    cluster, (h1, h2, _) = cluster_with("evenly_distributed")
    running(cluster, h1, "lonely")
    extra_load(h2, 40)
    balance(django_capture_on_commit_callbacks)
    beyond_since(h1, 3)
    assert balance(django_capture_on_commit_callbacks) == []


def test_policy_none_moves_nothing_and_keeps_no_loads(overloaded, django_capture_on_commit_callbacks):
    cluster, (h1, _, _), _ = overloaded
    beyond_since(h1, 3)
    cluster.scheduling_policy = "none"
    cluster.save()
    assert balance(django_capture_on_commit_callbacks) == []
    h1.refresh_from_db()
    assert (h1.cpu_load_percent, h1.high_load_since) == (None, None)


@pytest.mark.parametrize(
    "values",
    [
        {"migration_mode": "user_migratable"},
        {"optimized_for": "high_performance", "cpu_pinning_policy": "dedicated"},  # manual only by default
        {"migration_mode": "pinned"},
    ],
    ids=["manual only", "HP", "do not allow"],
)
def test_vms_automation_may_not_move_never_move(values, django_capture_on_commit_callbacks):
    cluster, (h1, _, _) = cluster_with("evenly_distributed", over_utilization_minutes=0, auto_migrate_hp=True)
    vm = running(cluster, h1, "stays", hosts=[h1], **values)
    assert vm.automatic_migration_refusal()
    extra_load(h1, 95)
    assert balance(django_capture_on_commit_callbacks) == []


@pytest.mark.parametrize(
    "values",
    [
        {"optimized_for": "high_performance", "cpu_pinning_policy": "dedicated"},
        {"optimized_for": "server", "cpu_pinning_policy": "dedicated"},
    ],
    ids=["HP", "pinned server"],
)
def test_hp_and_pinned_vms_move_only_with_automatic_hp_migration(values, django_capture_on_commit_callbacks):
    cluster, (h1, _, _) = cluster_with("evenly_distributed", over_utilization_minutes=0)
    vm = running(cluster, h1, "pinned", migration_mode="migratable", **values)
    extra_load(h1, 95)
    assert balance(django_capture_on_commit_callbacks) == []
    cluster.auto_migrate_hp = True
    cluster.save()
    (job,) = balance(django_capture_on_commit_callbacks)
    assert (job.vm, job.state) == (vm, JobState.SUCCEEDED)


def test_no_pile_up(django_capture_on_commit_callbacks):
    """A VM with a migration in flight is left alone; so is a cluster whose balancing migration still runs."""
    cluster, (h1, h2, _) = cluster_with("evenly_distributed", over_utilization_minutes=0)
    a, b = running(cluster, h1, "a"), running(cluster, h1, "b")
    extra_load(h1, 90)
    in_flight = MigrationJob.objects.create(vm=a, source=h1, mode="automatic", state=JobState.MIGRATING)
    (job,) = balance(django_capture_on_commit_callbacks)
    assert job.vm == b
    in_flight.move(JobState.MIGRATING, JobState.FAILED)
    MigrationJob.objects.create(
        vm=b, source=h2, mode="automatic", state=JobState.MIGRATING, reason=MigrationReason.BALANCING
    )
    assert balance(django_capture_on_commit_callbacks) == []


def test_a_host_not_up_or_not_answering_has_no_load(overloaded, django_capture_on_commit_callbacks):
    _, (h1, h2, h3), _ = overloaded
    SimulatedFault.objects.create(host_uri=h2.uri, kind=FaultKind.UNREACHABLE)
    Host.objects.filter(pk=h3.pk).update(status="maintenance")
    beyond_since(h1, 3)
    assert balance(django_capture_on_commit_callbacks) == []  # no host left to take a VM
    assert list(Host.objects.order_by("name").values_list("cpu_load_percent", flat=True)) == [100.0, None, None]


def test_the_beat_task_runs_a_round_and_the_jobs_page_says_why(overloaded, admin_client):
    _, (h1, _, _), _ = overloaded
    beyond_since(h1, 3)
    entry = settings.CELERY_BEAT_SCHEDULE["load-balancing"]
    assert entry["task"] in celery_app.tasks

    (job_id,) = celery_app.tasks[entry["task"]].delay().get()

    page = admin_client.get(reverse("job-list")).content.decode()
    assert "Initiated by system" in page and "Load balancing: Host h1 is over-utilized" in page
    assert MigrationJob.objects.get(pk=job_id).source == h1


def test_an_admin_gives_a_simulated_host_an_extra_load_for_a_demo():
    _, hosts = cluster_with("evenly_distributed")
    call_command("simulate_host", "load", hosts[0].name, "70")
    assert get_driver(hosts[0].uri).cpu_load(hosts[0].uri) == 70.0
    with pytest.raises(CommandError, match="from 0 to 100"):
        call_command("simulate_host", "load", hosts[0].name, "130")
    with pytest.raises(CommandError, match="load HOST PERCENT"):
        call_command("simulate_host", "load", hosts[0].name)
