"""High availability on simulated hosts: a host that stops answering becomes non-responsive once the host timeout
has passed, is fenced, is down, and its highly available VMs restart on other hosts by priority ("Specific
host(s)" honoured); without power management nothing restarts until an admin confirms the host was rebooted; a
host that answers again comes back up; a host that misses a cluster CPU flag becomes non-operational and the VMs
automation may move leave it. The invariants hold after each. Time is driven through ``last_seen_at``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from hpadmin.access.models import Grant
from hpadmin.access.roles import Role
from hpadmin.hypervisor import simulated
from hpadmin.hypervisor.base import HypervisorError
from hpadmin.hypervisor.fencing import run_fence_command
from hpadmin.hypervisor.models import SimulatedDomain
from hpadmin.inventory.models import Host, HostStatus
from hpadmin.operations import ha, watchdog
from hpadmin.operations.models import Event, JobState, MigrationJob
from hpadmin.operations.services import start_vm
from hpadmin.vms.models import VirtualMachine, VmStatus
from scheduler.models import Allocation
from tests.factories import make_cluster, make_host, make_vm
from tests.operations.invariants import assert_consistent

pytestmark = pytest.mark.django_db(transaction=True)

FENCE = "true"  # a simulated host's fence command is run like a real one's, then its power is cut


@pytest.fixture
def cluster():
    return make_cluster("ha")


def host(cluster, name, cores=8, fence_command=FENCE, **shape):
    made = make_host(cluster, name=name, numa_nodes=1, cores=cores, threads=1, memory_mib=32768, **shape)
    Host.objects.filter(pk=made.pk).update(fence_command=fence_command, last_seen_at=timezone.now())
    made.refresh_from_db()
    return made


def running(cluster, on, hosts=(), **values):
    values = {"cpu_pinning_policy": "dedicated", "cores": 3, "threads": 1, "memory_mib": 2048, **values}
    return start_vm(make_vm(cluster, hosts=hosts, **values), host=on)


def silent_for(seconds, *hosts):
    """The hosts were last seen ``seconds`` ago; then one heartbeat."""
    Host.objects.filter(pk__in=[h.pk for h in hosts]).update(last_seen_at=timezone.now() - timedelta(seconds=seconds))
    ha.check_hosts()
    for h in hosts:
        h.refresh_from_db()


def fail(failed, settings):
    """The host hangs and stays silent past the host timeout."""
    simulated.fail_host(failed.uri)
    silent_for(settings.HPADMIN_HOST_TIMEOUT + 1, failed)


def reloaded(vm):
    return VirtualMachine.objects.select_related("host").get(pk=vm.pk)


def codes(**where):
    return list(Event.objects.filter(**where).order_by("pk").values_list("code", flat=True))


def test_a_failed_host_is_fenced_and_its_ha_vms_restart_elsewhere_by_priority(cluster, settings):
    h1, h2 = host(cluster, "h1"), host(cluster, "h2", cores=4)  # h2 has room for one of the HA VMs only
    low = running(cluster, h1, name="low", high_availability=True, ha_priority=1)
    high = running(cluster, h1, name="high", high_availability=True, ha_priority=100)
    plain = running(cluster, h1, name="plain", cores=1)

    simulated.fail_host(h1.uri)
    silent_for(settings.HPADMIN_HOST_TIMEOUT - 5, h1)  # a missed beat or two: not yet
    assert h1.status == HostStatus.UP and reloaded(high).host == h1

    silent_for(settings.HPADMIN_HOST_TIMEOUT + 1, h1)
    assert h1.status == HostStatus.DOWN and "fenced" in h1.status_reason
    assert codes(host=h1, code__startswith="host_") == ["host_non_responsive", "host_down"]
    assert len(codes(host=h1, code="vm_down_host_down")) == 3
    assert simulated.SimulatedDriver().power_status(h1.uri) == "off"
    high, low, plain = reloaded(high), reloaded(low), reloaded(plain)
    assert high.status == VmStatus.UP and high.host == h2
    assert Event.objects.filter(vm=high, code="ha_vm_restarted", message__contains="restarted on host h2").exists()
    assert low.status == VmStatus.DOWN
    failed = Event.objects.get(vm=low, code="ha_vm_restart_failed")
    assert "Restart of the highly available VM low failed" in failed.message and failed.severity == "error"
    assert plain.status == VmStatus.DOWN and not Event.objects.filter(vm=plain, code__startswith="ha_").exists()
    assert not Allocation.objects.filter(host=h1).exists()
    assert_consistent()


def test_a_vm_pinned_to_two_hosts_restarts_on_the_other(cluster, settings):
    h1, h2, h3 = host(cluster, "h1"), host(cluster, "h2"), host(cluster, "h3")
    vm = running(cluster, h1, hosts=[h1, h3], migration_mode="pinned", high_availability=True)
    fail(h1, settings)
    vm = reloaded(vm)
    assert vm.status == VmStatus.UP and vm.host == h3
    assert h2.allocations.count() == 0
    assert_consistent()


def test_a_vm_pinned_to_the_failed_host_alone_stays_down_and_says_why(cluster, settings):
    h1, _ = host(cluster, "h1"), host(cluster, "h2")
    vm = running(cluster, h1, hosts=[h1], migration_mode="pinned", high_availability=True)
    fail(h1, settings)
    assert reloaded(vm).status == VmStatus.DOWN
    event = Event.objects.get(vm=vm, code="ha_vm_restart_failed")
    assert "pinned to host h1 only, which is down" in event.message
    assert_consistent()


def test_without_power_management_nothing_restarts_until_an_admin_confirms_the_reboot(cluster, settings, admin_user):
    h1, h2 = host(cluster, "h1", fence_command=""), host(cluster, "h2")
    vm = running(cluster, h1, high_availability=True)
    fail(h1, settings)
    assert h1.status == HostStatus.NON_RESPONSIVE and "has not answered for" in h1.status_reason
    event = Event.objects.get(host=h1, code="host_fence_not_configured")
    assert event.severity == "error" and "Confirm Host Has Been Rebooted" in event.message
    ha.check_hosts()
    watchdog.run()  # nobody can tell what a non-responsive host runs: its VMs are left as they are
    vm = reloaded(vm)
    assert vm.status == VmStatus.UP and vm.host == h1 and not vm.drift
    assert SimulatedDomain.objects.filter(host_uri=h1.uri, name=vm.name).exists()

    api = APIClient()
    api.force_authenticate(admin_user)
    refused = api.post(f"/api/v1/hosts/{h2.pk}/confirm-rebooted/")
    assert refused.status_code == 409 and "only a non responsive host" in refused.json()["detail"]
    simulated.power_off_host(h1.uri)  # the admin switches it off by hand, then confirms
    r = api.post(f"/api/v1/hosts/{h1.pk}/confirm-rebooted/")
    assert r.status_code == 200 and r.json()["status"] == "down"
    assert "admin confirmed that it has been rebooted" in r.json()["status_reason"]
    vm = reloaded(vm)
    assert vm.status == VmStatus.UP and vm.host == h2
    assert_consistent()


def test_a_failed_fence_command_keeps_the_vms_where_they_were(cluster, settings):
    h1, _ = host(cluster, "h1", fence_command="echo BMC unreachable; exit 3"), host(cluster, "h2")
    vm = running(cluster, h1, high_availability=True)
    fail(h1, settings)
    assert h1.status == HostStatus.NON_RESPONSIVE
    event = Event.objects.get(host=h1, code="host_fence_failed")
    assert "exit status 3" in event.message and "BMC unreachable" in event.message
    assert reloaded(vm).host == h1 and simulated.SimulatedDriver().power_status(h1.uri) == "on"


def test_a_host_that_answers_again_comes_back_up(cluster, settings):
    h1, _ = host(cluster, "h1", fence_command=""), host(cluster, "h2")
    vm = running(cluster, h1, high_availability=True)
    fail(h1, settings)
    assert h1.status == HostStatus.NON_RESPONSIVE
    simulated.reconnect_host(h1.uri)
    ha.check_hosts()
    h1.refresh_from_db()
    assert h1.status == HostStatus.UP and h1.status_reason == "" and h1.last_seen_at is not None
    assert codes(host=h1)[-1] == "host_up"
    assert reloaded(vm).host == h1
    assert_consistent()


def test_a_demo_fails_and_recovers_a_simulated_host_by_name(cluster, settings):
    h1, h2 = host(cluster, "h1"), host(cluster, "h2")
    vm = running(cluster, h1, high_availability=True)
    call_command("simulate_host", "fail", "h1")
    silent_for(settings.HPADMIN_HOST_TIMEOUT + 1, h1)
    assert h1.status == HostStatus.DOWN and reloaded(vm).host == h2
    call_command("simulate_host", "recover", "h1")
    silent_for(0, h1)
    assert h1.status == HostStatus.UP
    with pytest.raises(CommandError, match="no host named h9"):
        call_command("simulate_host", "fail", "h9")
    assert_consistent()


def test_a_fenced_host_that_recovers_is_up_and_empty(cluster, settings):
    h1, h2 = host(cluster, "h1"), host(cluster, "h2")
    vm = running(cluster, h1, high_availability=True)
    fail(h1, settings)
    simulated.recover_host(h1.uri)
    ha.check_hosts()
    h1.refresh_from_db()
    assert h1.status == HostStatus.UP and reloaded(vm).host == h2
    assert not SimulatedDomain.objects.filter(host_uri=h1.uri).exists()
    assert_consistent()


def test_a_waiting_migration_from_the_failed_host_is_settled(cluster, settings):
    h1, h2 = host(cluster, "h1"), host(cluster, "h2")
    vm = running(cluster, h1, high_availability=True)
    job = MigrationJob.objects.create(vm=vm, source=h1, requested_destination=h2, mode="manual", force=True)
    fail(h1, settings)
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.error == "Host h1 is down."
    assert reloaded(vm).host == h2
    assert_consistent()


def test_a_host_missing_a_cluster_cpu_flag_is_non_operational_and_emptied_of_what_may_move(cluster, settings):
    h1 = host(cluster, "h1")
    h2 = host(cluster, "h2", flags="sse4_2,avx,avx2,aes,pdpe1gb,vmx,avx512f")
    movable = running(cluster, h1, name="movable", cores=1, cpu_pinning_policy="none", migration_mode="migratable")
    manual = running(cluster, h1, name="manual", cores=1, cpu_pinning_policy="none", migration_mode="user_migratable")
    cluster.cpu_level_flags = ["avx512f"]  # the admin raises the cluster's CPU level
    cluster.save()

    ha.check_hosts()
    h1.refresh_from_db()
    assert h1.status == HostStatus.NON_OPERATIONAL and "Missing CPU features: avx512f" in h1.status_reason
    event = Event.objects.get(host=h1, code="host_non_operational")
    assert event.message.startswith("Host h1 moved to Non-Operational state") and event.severity == "error"
    assert reloaded(movable).host == h2
    assert reloaded(manual).host == h1
    h2.refresh_from_db()
    assert h2.status == HostStatus.UP
    assert_consistent()


def test_the_fence_command_is_validated_and_shown_to_admins_only(cluster, admin_user, django_user_model):
    h1 = host(cluster, "h1", fence_command="")
    h1.fence_command = "ipmitool -P 'secret"
    with pytest.raises(ValidationError) as refused:
        h1.full_clean()
    assert "not a valid shell command" in str(refused.value.message_dict["fence_command"])

    api = APIClient()
    api.force_authenticate(admin_user)
    r = api.patch(f"/api/v1/hosts/{h1.pk}/", {"fence_command": "ipmitool -P 'secret"}, format="json")
    assert r.status_code == 400 and "fence_command" in r.json()
    command = "ipmitool -I lanplus -H bmc-h1 -U admin -P secret chassis power off"
    r = api.patch(f"/api/v1/hosts/{h1.pk}/", {"fence_command": command, "status": "down"}, format="json")
    assert r.status_code == 200 and r.json()["fence_command"] == command and r.json()["status"] == "up"
    h1.refresh_from_db()
    assert h1.fence_command == command and h1.status == HostStatus.UP

    reader = django_user_model.objects.create_user("reader", password="x")
    Grant.objects.create(user=reader, role=Role.VIEWER)
    api.force_authenticate(reader)
    shown = api.get(f"/api/v1/hosts/{h1.pk}/").json()
    assert "fence_command" not in shown and {"status_reason", "last_seen_at"} <= shown.keys()


def test_a_fence_command_that_fails_or_hangs_is_a_failure(settings):
    run_fence_command("exit 0")
    with pytest.raises(HypervisorError) as failed:
        run_fence_command("echo no route to BMC >&2; exit 1")
    assert failed.value.kind == "failed" and "no route to BMC" in failed.value.message
    settings.HPADMIN_FENCE_TIMEOUT = 0.5
    with pytest.raises(HypervisorError) as hung:
        run_fence_command("sleep 60 & sleep 60")
    assert hung.value.kind == "timeout" and "0.5 s" in hung.value.message
