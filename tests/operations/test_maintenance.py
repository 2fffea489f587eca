"""Host maintenance: a user's moves every VM that may be migrated by hand, a system's only what automation may
move; the moves are planned together and carried out as jobs; failures are planned again; activate cancels;
removal only in maintenance. On simulated hosts, with the jobs run in-process."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from hpadmin.hypervisor.models import FaultKind, SimulatedDomain, SimulatedFault
from hpadmin.inventory.models import Host, HostStatus
from hpadmin.operations import maintenance
from hpadmin.operations.errors import OperationError
from hpadmin.operations.models import EvacuationState, Event, JobState, MigrationJob
from hpadmin.operations.services import stop_vm
from hpadmin.vms.models import VirtualMachine
from scheduler.models import Allocation
from tests.factories import make_cluster, make_host, make_vm, start_hp_vm
from tests.operations.invariants import assert_consistent

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    return get_user_model().objects.create_user("ops", password="pw-ops-12345", is_staff=True)


@pytest.fixture
def cluster():
    return make_cluster("c1")


@pytest.fixture
def hosts(cluster):
    """Three hosts of 2 sockets (NUMA nodes) x 8 cores x 2 threads (32 pCPUs), 2 MiB pages."""
    return [make_host(cluster, name=f"h{i}", numa_nodes=2, cores=8, threads=2, hp2m=2048) for i in (1, 2, 3)]


def running(cluster, host, name, **values):
    """An HP VM (``HP_VM``) named ``name``, started on ``host``."""
    return start_hp_vm(cluster, host, name=name, **values)


def dedicated(cluster, host, name, cores: int):
    """A Server VM holding 2 sockets x ``cores`` x 2 threads of pCPUs exclusively, started on ``host``."""
    values = {"optimized_for": "server", "sockets": 2, "cores": cores, "memory_mib": 1024, "hugepage_kib": None}
    return running(cluster, host, name, **values)


def on(vm) -> str:
    vm.refresh_from_db()
    return vm.host.name if vm.host else "down"


def status(host) -> str:
    host.refresh_from_db()
    return host.status


def codes(host) -> list[str]:
    return list(Event.objects.filter(host=host, code__startswith="host_").order_by("pk").values_list("code", flat=True))


def maintain(host, captured, **kwargs):
    with captured(execute=True):
        return maintenance.start_maintenance(host, **kwargs)


# -- a user's maintenance ----------------------------------------------------------------------------------------


def test_a_users_maintenance_moves_automatic_and_manual_only_vms_and_ends_in_maintenance(
    cluster, hosts, admin, django_capture_on_commit_callbacks
):
    auto = running(cluster, hosts[0], "auto", migration_mode="migratable", optimized_for="server")
    manual = running(cluster, hosts[0], "manual")
    assert manual.migration_mode == "user_migratable"
    evacuation = maintain(hosts[0], django_capture_on_commit_callbacks, user=admin, reason="BIOS update")
    assert on(auto) != "h1" and on(manual) != "h1"
    assert status(hosts[0]) == HostStatus.MAINTENANCE
    evacuation.refresh_from_db()
    assert evacuation.state == EvacuationState.DONE and evacuation.progress() == (2, 2)
    jobs = MigrationJob.objects.filter(evacuation=evacuation)
    assert {(j.reason, j.state, j.requested_by) for j in jobs} == {("maintenance", "succeeded", admin)}
    messages = list(
        Event.objects.filter(host=hosts[0], code__startswith="host_").order_by("pk").values_list("message", flat=True)
    )
    assert messages[0] == "Host h1 was switched to Maintenance mode by ops (Reason: BIOS update)."
    assert messages[-1] == "Host h1 was switched to Maintenance Mode."
    assert Event.objects.filter(code="vm_migration_start", message__contains="User: ops").count() == 2
    assert_consistent()


def test_the_vms_go_where_the_plan_said(cluster, hosts, admin, django_capture_on_commit_callbacks):
    """The dialog's plan is what runs: each VM lands on the host the preview named."""
    vms = [running(cluster, hosts[0], f"vm{i}") for i in range(3)]
    preview = maintenance.maintenance_preview(hosts[0])
    planned = {vm.name: host.name for vm, host in preview.moves}
    assert sorted(planned) == ["vm0", "vm1", "vm2"] and "h1" not in planned.values()
    assert preview.slower and not preview.blocking and not preview.stays
    maintain(hosts[0], django_capture_on_commit_callbacks, user=admin)
    assert {vm.name: on(vm) for vm in vms} == planned


def test_a_do_not_migrate_vm_blocks_a_users_maintenance_with_ovirts_message(
    cluster, hosts, admin, django_capture_on_commit_callbacks
):
    running(cluster, hosts[0], "db-1", migration_mode="pinned", hosts=[hosts[0]])
    running(cluster, hosts[0], "web-1")
    running(cluster, hosts[0], "db-2", migration_mode="pinned", hosts=[hosts[0]])
    expected = (
        "Cannot switch the following Hosts to Maintenance mode: h1. One or more running VMs are indicated as "
        "non-migratable. The non-migratable VMs are: db-1, db-2."
    )
    assert maintenance.maintenance_preview(hosts[0]).message == expected
    with pytest.raises(OperationError) as refused:
        maintain(hosts[0], django_capture_on_commit_callbacks, user=admin)
    assert (refused.value.message, refused.value.status) == (expected, 409)
    assert status(hosts[0]) == HostStatus.UP
    assert not MigrationJob.objects.exists()


def test_a_vm_whose_move_fails_is_planned_again(cluster, hosts, admin, django_capture_on_commit_callbacks):
    """h1's VM can only go to h2 (h3 is full); the first copy fails half way, the next plan moves it."""
    vm = running(cluster, hosts[0], "vm")
    dedicated(cluster, hosts[2], "filler", cores=8)  # all 32 pCPUs of h3
    SimulatedFault.objects.create(host_uri=hosts[1].uri, kind=FaultKind.FAIL_MIDWAY, times=1)
    maintain(hosts[0], django_capture_on_commit_callbacks, user=admin)
    assert on(vm) == "h2" and status(hosts[0]) == HostStatus.MAINTENANCE
    jobs = list(MigrationJob.objects.filter(vm=vm).order_by("pk").values_list("state", flat=True))
    assert jobs == [JobState.FAILED, JobState.SUCCEEDED]
    assert_consistent()


def test_a_vm_that_cannot_move_keeps_the_host_preparing_and_says_why(
    cluster, hosts, admin, django_capture_on_commit_callbacks
):
    big = dedicated(cluster, hosts[0], "big", cores=4)  # 16 pCPUs; h2 and h3 have 12 left
    dedicated(cluster, hosts[1], "taken-2", cores=5)
    dedicated(cluster, hosts[2], "taken-3", cores=5)
    evacuation = maintain(hosts[0], django_capture_on_commit_callbacks, user=admin)
    assert on(big) == "h1" and status(hosts[0]) == HostStatus.PREPARING_FOR_MAINTENANCE
    evacuation.refresh_from_db()
    assert evacuation.state == EvacuationState.RUNNING
    assert evacuation.error.startswith("VM big could not move: ")
    failed = Event.objects.get(code="host_evacuation_failed")
    assert failed.message == (
        "Host h1 cannot change into maintenance mode - not all Vms have been migrated successfully. Consider "
        "manual intervention: stopping/migrating Vms: big (User: ops)."
    )
    # The admin stops the VM: the next round finds the host empty.
    stop_vm(big)
    maintenance.advance_evacuations()
    assert status(hosts[0]) == HostStatus.MAINTENANCE


# -- a system's evacuation -----------------------------------------------------------------------------------------


def test_a_systems_evacuation_moves_only_what_automation_may_move(cluster, hosts, django_capture_on_commit_callbacks):
    auto = running(
        cluster,
        hosts[0],
        "auto",
        migration_mode="migratable",
        optimized_for="server",
        cpu_pinning_policy="none",
        hugepage_kib=None,
    )
    hp_auto = running(cluster, hosts[0], "hp-auto", migration_mode="migratable")
    manual = running(cluster, hosts[0], "manual")
    Host.objects.filter(pk=hosts[0].pk).update(status=HostStatus.NON_OPERATIONAL, status_reason="CPU flag missing")
    evacuation = maintain(Host.objects.get(pk=hosts[0].pk), django_capture_on_commit_callbacks)
    assert (on(auto) != "h1", on(hp_auto), on(manual)) == (True, "h1", "h1")
    assert status(hosts[0]) == HostStatus.NON_OPERATIONAL  # a system's evacuation leaves the status alone
    evacuation.refresh_from_db()
    assert evacuation.initiator == "system"
    assert "VM hp-auto could not move: automatic migration of High Performance and pinned VMs is off" in (
        evacuation.error
    )
    assert 'VM manual could not move: its migration mode is "Allow manual migration only"' in evacuation.error
    assert MigrationJob.objects.get(vm=auto).requested_by is None


def test_with_automatic_hp_migration_on_a_systems_evacuation_moves_hp_vms_too(
    cluster, hosts, django_capture_on_commit_callbacks
):
    cluster.auto_migrate_hp = True
    cluster.save()
    hp_auto = running(cluster, hosts[0], "hp-auto", migration_mode="migratable")
    Host.objects.filter(pk=hosts[0].pk).update(status=HostStatus.NON_OPERATIONAL)
    maintain(Host.objects.get(pk=hosts[0].pk), django_capture_on_commit_callbacks)
    assert on(hp_auto) != "h1"


# -- activate, remove ----------------------------------------------------------------------------------------------


def test_activate_cancels_a_maintenance_in_progress(
    cluster, hosts, admin, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.HPADMIN_MAX_MIGRATIONS_PER_HOST = 1  # one job leaves at once, the others wait
    monkeypatch.setattr("hpadmin.operations.tasks.run_migration.delay", lambda pk: None)  # no worker yet
    vms = [running(cluster, hosts[0], f"vm{i}") for i in range(3)]
    evacuation = maintain(hosts[0], django_capture_on_commit_callbacks, user=admin)
    assert status(hosts[0]) == HostStatus.PREPARING_FOR_MAINTENANCE
    assert sorted(evacuation.jobs.values_list("state", flat=True)) == ["pending", "pending", "scheduling"]
    maintenance.activate_host(hosts[0], user=admin)
    assert status(hosts[0]) == HostStatus.UP
    evacuation.refresh_from_db()
    assert evacuation.state == EvacuationState.CANCELLED
    assert sorted(evacuation.jobs.values_list("state", flat=True)) == ["cancelled", "cancelled", "scheduling"]
    assert evacuation.jobs.get(state="scheduling").cancel_requested
    assert all(on(vm) == "h1" for vm in vms)
    assert Event.objects.filter(code="host_activated", message="Host h1 was activated by ops.").exists()


def test_activate_refuses_a_host_that_is_up(hosts, admin):
    with pytest.raises(OperationError, match="Cannot activate host h1: it is up.") as refused:
        maintenance.activate_host(hosts[0], user=admin)
    assert refused.value.status == 409


def test_maintenance_of_an_empty_host_is_immediate_and_removal_keeps_the_history(
    cluster, hosts, admin, django_capture_on_commit_callbacks
):
    vm = running(cluster, hosts[0], "vm")
    with pytest.raises(OperationError, match="switch it to maintenance first"):
        maintenance.remove_host(hosts[0], user=admin)
    maintain(hosts[0], django_capture_on_commit_callbacks, user=admin)
    job = MigrationJob.objects.get(vm=vm)
    maintenance.remove_host(hosts[0], user=admin)
    assert not Host.objects.filter(name="h1").exists()
    job.refresh_from_db()
    assert job.source is None and job.state == JobState.SUCCEEDED
    assert Event.objects.filter(code="host_removed", message="Host h1 was removed by ops.").exists()
    with pytest.raises(OperationError, match="Cannot remove host h2: it is up"):
        maintenance.remove_host(hosts[1], user=admin)


def test_an_empty_host_goes_into_maintenance_at_once(hosts, admin, django_capture_on_commit_callbacks):
    maintain(hosts[1], django_capture_on_commit_callbacks, user=admin)
    assert status(hosts[1]) == HostStatus.MAINTENANCE
    assert codes(hosts[1]) == ["host_maintenance", "host_maintenance_done"]


def test_a_host_in_maintenance_takes_no_vm(cluster, hosts, admin, django_capture_on_commit_callbacks):
    maintain(hosts[1], django_capture_on_commit_callbacks, user=admin)
    vm = running(cluster, hosts[0], "vm")
    preview = maintenance.maintenance_preview(hosts[0])
    assert [host.name for _, host in preview.moves] == ["h3"]
    assert not Allocation.objects.filter(host=hosts[1]).exists()
    assert SimulatedDomain.objects.get(name=vm.name).host_uri == hosts[0].uri
    assert VirtualMachine.objects.get(pk=vm.pk).host == hosts[0]


def test_a_host_that_vms_are_set_to_run_on_is_not_removed(cluster, hosts, admin, django_capture_on_commit_callbacks):
    make_vm(cluster, name="db", hosts=[hosts[1], hosts[2]])
    maintain(hosts[1], django_capture_on_commit_callbacks, user=admin)
    with pytest.raises(OperationError) as refused:
        maintenance.remove_host(hosts[1], user=admin)
    assert refused.value.status == 409
    assert "The following VMs are set to run specifically only on this Host: db." in refused.value.message
    assert Host.objects.filter(pk=hosts[1].pk).exists()
