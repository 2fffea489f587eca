"""Degrade and restore on simulated hosts: a VM moves where only part of its configuration fits, its owner and the
admins are told, and its settings come back with the next move to a host that fits it whole."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from hpadmin.hypervisor.models import SimulatedDomain
from hpadmin.inventory.models import HostStatus
from hpadmin.operations import restoring
from hpadmin.operations.errors import OperationError
from hpadmin.operations.maintenance import maintenance_preview, start_maintenance
from hpadmin.operations.models import Event, JobState, MigrationJob
from hpadmin.operations.services import migrate_vms, restore_settings, start_vm, stop_vm
from scheduler.models import Allocation
from tests.factories import make_cluster, make_host, make_hp_vm

pytestmark = pytest.mark.django_db

PINNED_NODES = [
    {"index": 0, "vcpus": [0, 1], "memory_mib": 1024, "pinned_to": [0]},
    {"index": 1, "vcpus": [2, 3], "memory_mib": 1024, "pinned_to": [1]},
]


@pytest.fixture
def cluster():
    return make_cluster("c1")


@pytest.fixture
def numa_host(cluster):
    return make_host(cluster, name="numa", numa_nodes=2, cores=4, threads=2, hp2m=2048)


@pytest.fixture
def flat_host(cluster):
    """No NUMA: a VM whose vNUMA nodes are pinned to host nodes runs here only with NUMA pinning suspended."""
    return make_host(cluster, name="flat", numa_nodes=0, cores=8, threads=2, hp2m=2048)


@pytest.fixture
def owner():
    user = get_user_model().objects.create_user("owner", "owner@example.org", "x")
    get_user_model().objects.create_user("admin", "admin@example.org", "x", is_staff=True)
    return user


@pytest.fixture
def vm(cluster, numa_host, flat_host, owner):
    """An HP VM pinned by hand, whose two vNUMA nodes are pinned to nodes 0 and 1 of ``numa``, running there."""
    vm = make_hp_vm(
        cluster,
        [numa_host],
        cpu_pinning_policy="manual",
        cpu_pinning="0#1_1#2_2#9_3#10",
        numa_nodes=PINNED_NODES,
        owner=owner,
    )
    return start_vm(vm, host=numa_host)


def run(captured, vms, *args, **kwargs) -> MigrationJob:
    with captured(execute=True):
        (job,) = migrate_vms(vms, *args, **kwargs)
    return MigrationJob.objects.get(pk=job.pk)


def settings_of(obj) -> list[str]:
    return [item["setting"] for item in obj.suspended_settings]


def test_an_explicit_degraded_destination_needs_confirmation(vm, flat_host):
    with pytest.raises(OperationError) as exc:
        migrate_vms([vm], flat_host, force=True)
    assert exc.value.status == 400
    assert "only with settings suspended: NUMA pinning (does not support NUMA)" in exc.value.message
    vm.refresh_from_db()
    assert vm.host.name == "numa" and not MigrationJob.objects.exists()


def test_a_confirmed_degraded_migration_records_tells_and_leaves_the_numa_binding_out(
    vm, flat_host, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    job = run(django_capture_on_commit_callbacks, [vm], flat_host, force=True, allow_degraded=True)
    assert job.state == JobState.SUCCEEDED and settings_of(job) == ["numa_pinning"]
    vm.refresh_from_db()
    assert vm.host == flat_host and vm.degraded and vm.degraded_since is not None
    assert vm.suspended_labels() == [("NUMA pinning", "does not support NUMA")]
    allocation = Allocation.objects.get(vm=vm, state="active")
    assert allocation.numa_mapping == {} and settings_of(allocation) == ["numa_pinning"]
    assert len(allocation.cpu_pinning) == 4 and allocation.hugepages  # what the host can honour is kept
    domain = SimulatedDomain.objects.get(host_uri=flat_host.uri, name=vm.name)
    assert all(not cell["host_nodes"] for cell in domain.spec["numa_cells"])
    warning = Event.objects.get(code="vm_running_degraded")
    assert warning.severity == "warning" and "NUMA pinning (does not support NUMA)" in warning.message
    (message,) = mail.outbox
    assert sorted(message.to) == ["admin@example.org", "owner@example.org"]
    assert f"VM {vm.name} is running degraded" in message.subject


def test_a_manual_migration_to_a_fitting_host_restores(vm, numa_host, flat_host, django_capture_on_commit_callbacks):
    run(django_capture_on_commit_callbacks, [vm], flat_host, force=True, allow_degraded=True)
    mail.outbox.clear()
    job = run(django_capture_on_commit_callbacks, [vm], numa_host, force=True)
    assert job.state == JobState.SUCCEEDED and job.suspended_settings == []
    vm.refresh_from_db()
    assert not vm.degraded and vm.degraded_since is None
    assert Allocation.objects.get(vm=vm, state="active").numa_mapping == {"0": 0, "1": 1}
    assert "NUMA pinning restored" in Event.objects.get(code="vm_settings_restored").message
    assert "has its settings back" in mail.outbox[0].subject


def test_restore_settings_picks_a_fitting_host(vm, flat_host, django_capture_on_commit_callbacks):
    run(django_capture_on_commit_callbacks, [vm], flat_host, force=True, allow_degraded=True)
    vm.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        job = restore_settings(vm)
    job.refresh_from_db()
    assert job.reason == "restore" and job.state == JobState.SUCCEEDED and job.destination.name == "numa"
    vm.refresh_from_db()
    assert not vm.degraded


def test_restore_settings_says_why_when_no_host_fits_whole(
    vm, numa_host, flat_host, django_capture_on_commit_callbacks
):
    run(django_capture_on_commit_callbacks, [vm], flat_host, force=True, allow_degraded=True)
    numa_host.status = HostStatus.MAINTENANCE
    numa_host.save()
    vm.refresh_from_db()
    with pytest.raises(OperationError) as exc:
        restore_settings(vm)
    assert exc.value.status == 409 and "numa" in exc.value.message and "maintenance" in exc.value.message


def test_the_beat_restores_when_the_original_host_is_back(
    cluster, vm, numa_host, flat_host, django_capture_on_commit_callbacks
):
    cluster.auto_migrate_hp = True
    cluster.save()
    vm.migration_mode = "migratable"
    vm.save()
    run(django_capture_on_commit_callbacks, [vm], flat_host, force=True, allow_degraded=True)
    numa_host.status = HostStatus.MAINTENANCE
    numa_host.save()
    assert restoring.restore_degraded() == []  # nowhere fits it whole yet
    numa_host.status = HostStatus.UP
    numa_host.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert restoring.restore_degraded() == [vm.pk]
    job = MigrationJob.objects.latest("created_at")
    assert job.reason == "restore" and job.requested_by is None and job.state == JobState.SUCCEEDED
    assert job.destination == numa_host
    vm.refresh_from_db()
    assert vm.host == numa_host and not vm.degraded


def test_a_manual_only_vm_is_not_moved_back_but_the_admins_are_told_once(
    vm, flat_host, django_capture_on_commit_callbacks
):
    assert vm.migration_mode == "user_migratable"
    run(django_capture_on_commit_callbacks, [vm], flat_host, force=True, allow_degraded=True)
    mail.outbox.clear()
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            assert restoring.restore_degraded() == []
    (told,) = Event.objects.filter(code="vm_restore_available")
    assert "use Restore settings" in told.message
    assert len(mail.outbox) == 1 and "can get its settings back" in mail.outbox[0].subject
    vm.refresh_from_db()
    assert vm.host == flat_host and vm.degraded


def test_the_next_start_restores(vm, flat_host, django_capture_on_commit_callbacks):
    run(django_capture_on_commit_callbacks, [vm], flat_host, force=True, allow_degraded=True)
    vm = stop_vm(vm)
    vm = start_vm(vm)
    assert vm.host.name == "numa" and not vm.degraded


@pytest.mark.parametrize(("policy", "degraded"), [("refuse", False), ("suspend", True)])
def test_the_automatic_choice_follows_the_policy(
    cluster, vm, numa_host, policy, degraded, django_capture_on_commit_callbacks
):
    cluster.degraded_policy = policy
    cluster.save()
    job = run(django_capture_on_commit_callbacks, [vm], force=True)  # no other host fits it whole
    assert (job.state == JobState.SUCCEEDED) == degraded
    vm.refresh_from_db()
    assert vm.degraded == degraded and (vm.host == numa_host) != degraded
    if not degraded:
        assert "does not support NUMA" in job.error


def test_a_vm_may_override_its_clusters_policy(cluster, vm, django_capture_on_commit_callbacks):
    cluster.degraded_policy = "suspend"
    cluster.save()
    vm.degraded_policy = "refuse"
    vm.save()
    job = run(django_capture_on_commit_callbacks, [vm], force=True)
    assert job.state == JobState.FAILED


def test_maintenance_degrades_what_fits_nowhere_whole_when_the_policy_allows(
    cluster, vm, numa_host, flat_host, django_capture_on_commit_callbacks
):
    admin = get_user_model().objects.get(username="admin")
    assert maintenance_preview(numa_host).degraded == []  # refused by the cluster's default policy: it stays
    assert [vm_.name for vm_, _ in maintenance_preview(numa_host).stays] == [vm.name]
    cluster.degraded_policy = "suspend"
    cluster.save()
    preview = maintenance_preview(numa_host)
    assert [(v.name, h.name, what) for v, h, what in preview.degraded] == [(vm.name, "flat", ["NUMA pinning"])]
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        start_maintenance(numa_host, user=admin)
    numa_host.refresh_from_db()
    vm.refresh_from_db()
    assert numa_host.status == HostStatus.MAINTENANCE
    assert vm.host == flat_host and settings_of(vm) == ["numa_pinning"]
    assert MigrationJob.objects.get(vm=vm).reason == "maintenance"
    assert "is running degraded" in mail.outbox[0].subject
