"""The reboot and console services: a running VM only, recorded with the user, its host and claim untouched."""

import pytest
from django.contrib.auth import get_user_model

from hpadmin.hypervisor.simulated import fail_host
from hpadmin.operations.errors import OperationError
from hpadmin.operations.models import Event
from hpadmin.operations.services import reboot_vm, vm_console
from hpadmin.vms.models import VirtualMachine
from scheduler.models import Allocation
from tests.factories import make_cluster, make_host, make_vm, start_hp_vm

pytestmark = pytest.mark.django_db


@pytest.fixture
def host():
    return make_host(make_cluster(), "h1", numa_nodes=2, hp2m=2048)


@pytest.fixture
def user():
    return get_user_model().objects.create_user("carol")


def test_reboot_keeps_the_host_and_what_the_vm_holds_there(host, user):
    vm = start_hp_vm(host.cluster, host)
    claim = Allocation.objects.get(vm=vm, state="active")

    reboot_vm(vm, user=user)

    vm.refresh_from_db()
    assert vm.status == "up" and vm.host == host
    assert Allocation.objects.get(vm=vm, state="active").exclusive_cpus == claim.exclusive_cpus
    event = Event.objects.get(code="vm_rebooted")
    assert (event.user, event.vm, event.host) == (user, vm, host)
    assert event.message == f"VM {vm.name} was restarted by carol."


@pytest.mark.parametrize("status, words", [("down", "down"), ("migrating", "migrating"), ("stopping", "powering down")])
def test_only_a_running_vm_reboots(host, status, words):
    vm = start_hp_vm(host.cluster, host)
    VirtualMachine.objects.filter(pk=vm.pk).update(status=status)

    with pytest.raises(OperationError) as refused:
        reboot_vm(vm)

    assert refused.value.status == 409 and refused.value.message == f"Cannot reboot VM {vm.name}: it is {words}."
    assert not Event.objects.filter(code="vm_rebooted").exists()


def test_a_reboot_the_host_does_not_answer_is_refused_and_not_recorded(host):
    vm = start_hp_vm(host.cluster, host)
    fail_host(host.uri)

    with pytest.raises(OperationError) as refused:
        reboot_vm(vm)

    assert refused.value.status == 409 and f"on {host.name}" in refused.value.message
    assert not Event.objects.filter(code="vm_rebooted").exists()


def test_console_of_a_running_vm_with_a_display(host, user):
    vm = start_hp_vm(host.cluster, host, headless=False)

    console = vm_console(vm, user=user)

    assert (console.protocol, console.address, console.port) == ("vnc", "127.0.0.1", 5900)
    assert Event.objects.get(code="vm_console_opened").user == user


def test_no_console_for_a_headless_or_stopped_vm(host):
    headless = start_hp_vm(host.cluster, host)
    assert headless.headless and vm_console(headless) is None

    with pytest.raises(OperationError) as stopped:
        vm_console(make_vm(host.cluster, name="off"))
    assert stopped.value.status == 409 and stopped.value.message == "VM off has no console: it is not running."
    assert not Event.objects.filter(code="vm_console_opened").exists()
