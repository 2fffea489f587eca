"""The hypervisors are the truth: the watchdog compares every host's guests with the database, records a VM
that vanished as down, and flags a guest running where it should not, or twice, for the admin."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from hpadmin.hypervisor.models import FaultKind, SimulatedDomain, SimulatedFault
from hpadmin.operations import watchdog
from hpadmin.operations.models import Event
from hpadmin.operations.services import start_vm
from hpadmin.vms.models import VmStatus
from scheduler.models import Allocation
from tests.factories import make_cluster, make_host, make_vm
from tests.operations.invariants import assert_consistent

pytestmark = pytest.mark.django_db


@pytest.fixture
def hosts():
    cluster = make_cluster()
    return [make_host(cluster, name=f"d{i}", numa_nodes=2, cores=4, threads=2) for i in (1, 2)]


def up_vm(host, name="guest"):
    return start_vm(make_vm(host.cluster, name=name, cores=2, threads=1, memory_mib=2048), host=host)


def test_a_vm_no_host_runs_any_more_is_recorded_as_down(hosts):
    vm = up_vm(hosts[0])
    SimulatedDomain.objects.filter(name=vm.name).delete()  # the guest crashed, or was destroyed by hand
    watchdog.run()
    vm.refresh_from_db()
    assert vm.status == VmStatus.DOWN and vm.host is None
    assert not Allocation.objects.filter(vm=vm).exists()
    assert "d1 does not run it any more" in Event.objects.get(vm=vm, code="vm_down_unexpectedly").message
    assert_consistent()


def test_a_host_that_does_not_answer_is_not_taken_for_an_empty_one(hosts):
    vm = up_vm(hosts[0])
    SimulatedFault.objects.create(host_uri=hosts[0].uri, kind=FaultKind.UNREACHABLE)
    watchdog.run()
    vm.refresh_from_db()
    assert vm.status == VmStatus.UP and vm.drift == ""
    assert not Event.objects.filter(vm=vm, severity="error").exists()


def test_a_guest_on_two_hosts_is_flagged_once_until_it_is_resolved(hosts, admin_client):
    vm = up_vm(hosts[0])
    spec = SimulatedDomain.objects.get(name=vm.name).spec
    SimulatedDomain.objects.create(host_uri=hosts[1].uri, name=vm.name, spec=spec)  # started there by hand
    watchdog.run()
    watchdog.run()
    vm.refresh_from_db()
    assert vm.drift == "VM guest runs on several hosts at once: d1, d2."
    assert Event.objects.filter(vm=vm, code="vm_drift", severity="error").count() == 1
    assert b"The hypervisors disagree with this record." in admin_client.get(vm.get_absolute_url()).content
    assert vm.status == VmStatus.UP and vm.host == hosts[0]  # not repaired behind the admin's back
    SimulatedDomain.objects.filter(host_uri=hosts[1].uri).delete()  # the admin stops the second one
    watchdog.run()
    vm.refresh_from_db()
    assert vm.drift == ""
    assert_consistent()


def test_a_guest_running_although_recorded_as_down_is_flagged(hosts, admin_user):
    vm = up_vm(hosts[0])
    spec = SimulatedDomain.objects.get(name=vm.name).spec
    SimulatedDomain.objects.filter(name=vm.name).delete()
    watchdog.run()  # recorded as down...
    SimulatedDomain.objects.create(host_uri=hosts[1].uri, name=vm.name, spec=spec)  # ...and then it runs again
    watchdog.run()
    api = APIClient()
    api.force_authenticate(admin_user)
    body = api.get(f"/api/v1/vms/{vm.pk}/").json()
    assert body["status"] == "down"
    assert body["drift"] == "VM guest runs on d2 although it is recorded as down."
