"""What a portal user does to a VM: start, stop, reboot, the console details and Migrate; each recorded with the
user, each refused for a VM outside their view (404) or without the permit (403)."""

import pytest
from django.test import Client
from django.urls import reverse

from hpadmin.access.roles import Role
from hpadmin.operations.models import Event, MigrationJob
from hpadmin.operations.services import start_vm
from hpadmin.vms.models import VirtualMachine
from tests.factories import make_vm, start_hp_vm

from .conftest import HTMX, grant

HOME = reverse("portal-home")


def url(name: str, vm: VirtualMachine) -> str:
    return reverse(name, args=[vm.pk])


def test_start_reboot_and_stop_an_owned_vm(alice_client, alice, cluster, hosts):
    vm = make_vm(cluster, name="mine", owner=alice)

    response = alice_client.post(url("portal-vm-start", vm))
    vm.refresh_from_db()
    assert response.status_code == 302 and vm.status == "up"
    assert Event.objects.get(code="vm_started", vm=vm).user == alice

    alice_client.post(url("portal-vm-reboot", vm))
    rebooted = Event.objects.get(code="vm_rebooted", vm=vm)
    assert rebooted.user == alice and rebooted.message == "VM mine was restarted by alice."
    vm.refresh_from_db()
    assert vm.status == "up"

    confirm = alice_client.get(url("portal-vm-stop", vm), headers=HTMX).content.decode()
    assert "Power off <strong>mine</strong>?" in confirm
    vm.refresh_from_db()
    assert vm.status == "up"  # asking is not stopping
    alice_client.post(url("portal-vm-stop", vm))
    vm.refresh_from_db()
    assert vm.status == "down" and Event.objects.get(code="vm_stopped", vm=vm).user == alice


def test_an_htmx_action_sends_the_browser_back_to_the_page_it_came_from(alice_client, alice, cluster, hosts):
    vm = make_vm(cluster, owner=alice)

    response = alice_client.post(url("portal-vm-start", vm), headers={**HTMX, "HX-Current-URL": f"{HOME}?page=2"})

    assert response["HX-Redirect"] == f"{HOME}?page=2"


def test_a_refused_action_is_shown_as_a_message(alice_client, alice, cluster, hosts):
    vm = make_vm(cluster, name="stopped", owner=alice)

    page = alice_client.post(url("portal-vm-reboot", vm), follow=True).content.decode()

    assert "Cannot reboot VM stopped: it is down." in page
    assert not Event.objects.filter(code="vm_rebooted").exists()


ACTIONS = [
    ("portal-vm-start", "post"),
    ("portal-vm-stop", "get"),
    ("portal-vm-stop", "post"),
    ("portal-vm-reboot", "post"),
    ("portal-vm-console", "get"),
    ("portal-vm-migrate", "get"),
    ("portal-vm-migrate", "post"),
]


@pytest.mark.parametrize("name, method", ACTIONS)
def test_another_users_vm_is_not_found_on_every_action(alice_client, bob, cluster, hosts, name, method):
    vm = start_hp_vm(cluster, hosts["one"], owner=bob, name="bobs")

    response = getattr(alice_client, method)(url(name, vm))

    assert response.status_code == 404 and b"bobs" not in response.content
    vm.refresh_from_db()
    assert vm.status == "up" and not MigrationJob.objects.exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_an_owner_may_not_migrate(alice_client, alice, cluster, hosts, method):
    """An owner holds UserVmManager on the VM: view, operate and edit, but not migrate (VmOperator's)."""
    vm = start_hp_vm(cluster, hosts["one"], owner=alice)

    assert getattr(alice_client, method)(url("portal-vm-migrate", vm)).status_code == 403
    assert not MigrationJob.objects.exists()


def test_a_viewer_of_a_vm_may_not_operate_it(alice_client, alice, bob, cluster, hosts):
    vm = start_hp_vm(cluster, hosts["one"], owner=bob)
    grant(alice, Role.VIEWER, vm=vm)

    for name in ("portal-vm-stop", "portal-vm-reboot"):
        assert alice_client.post(url(name, vm)).status_code == 403
    assert alice_client.get(url("portal-vm-console", vm)).status_code == 403
    vm.refresh_from_db()
    assert vm.status == "up"


def test_actions_need_a_post_and_its_csrf_token(alice, cluster, hosts):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    vm = make_vm(cluster, owner=alice)

    assert client.get(url("portal-vm-start", vm)).status_code == 405
    assert client.post(url("portal-vm-start", vm)).status_code == 403
    vm.refresh_from_db()
    assert vm.status == "down"


# -- console -------------------------------------------------------------------------------------------------------


def test_console_details_of_a_running_vm(alice_client, alice, cluster, hosts):
    start_vm(make_vm(cluster, owner=alice), host=hosts["one"])  # the host's first display takes port 5900
    vm = start_vm(make_vm(cluster, owner=alice, name="desktop"), host=hosts["one"])

    dialog = alice_client.get(url("portal-vm-console", vm), headers=HTMX).content.decode()

    assert "listens on the host's loopback" in dialog
    assert "ssh -L 5900:127.0.0.1:5901 root@h-one" in dialog and "vncviewer localhost:5900" in dialog
    event = Event.objects.get(code="vm_console_opened")
    assert event.user == alice and event.message == "User alice initiated console session for VM desktop."


def test_a_headless_or_stopped_vm_has_no_console(alice_client, alice, cluster, hosts):
    headless = start_hp_vm(cluster, hosts["one"], owner=alice, name="hp")
    stopped = make_vm(cluster, owner=alice, name="off")

    assert (
        "it runs without a graphical display" in alice_client.get(url("portal-vm-console", headless)).content.decode()
    )
    assert (
        "off is stopped, so it has no console" in alice_client.get(url("portal-vm-console", stopped)).content.decode()
    )
    assert not Event.objects.filter(code="vm_console_opened").exists()


# -- migrate -------------------------------------------------------------------------------------------------------


def test_a_vm_operator_on_one_vm_sees_no_host_names(alice_client, alice, bob, cluster, hosts):
    vm = start_hp_vm(cluster, hosts["one"], owner=bob, name="operated")
    grant(alice, Role.VM_OPERATOR, vm=vm)

    dialog = alice_client.get(url("portal-vm-migrate", vm), headers=HTMX).content.decode()

    assert "Select Host Automatically" in dialog
    for host in hosts.values():
        assert host.name not in dialog

    alice_client.post(url("portal-vm-migrate", vm), {"destination": ""})
    job = MigrationJob.objects.get(vm=vm)
    assert job.requested_by == alice and job.requested_destination is None


def test_a_cluster_operator_is_offered_only_the_hosts_that_fit_the_whole_vm(
    alice_client, alice, cluster, hosts, django_capture_on_commit_callbacks
):
    vm = start_hp_vm(cluster, hosts["one"], owner=alice)
    grant(alice, Role.VM_OPERATOR, cluster=cluster)

    dialog = alice_client.get(url("portal-vm-migrate", vm), headers=HTMX).content.decode()

    assert 'data-name="h-two"' in dialog
    assert "h-one" not in dialog  # where it runs
    assert "h-no-hugepages" not in dialog  # it would run there without its hugepages

    refused = alice_client.post(url("portal-vm-migrate", vm), {"destination": hosts["small"].pk}, headers=HTMX)
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    assert not MigrationJob.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(url("portal-vm-migrate", vm), {"destination": hosts["two"].pk}, headers=HTMX)
    job = MigrationJob.objects.get(vm=vm)
    vm.refresh_from_db()
    assert job.requested_destination == hosts["two"] and job.requested_by == alice and vm.host == hosts["two"]
    assert Event.objects.filter(code="vm_migration_start", vm=vm, user=alice).exists()


def test_a_vm_that_may_not_migrate_says_why_in_the_dialog(alice_client, alice, cluster, hosts):
    vm = start_hp_vm(cluster, hosts["one"], hosts=[hosts["one"]], owner=alice, name="pinned", migration_mode="pinned")
    grant(alice, Role.VM_OPERATOR, vm=vm)

    dialog = alice_client.get(url("portal-vm-migrate", vm), headers=HTMX).content.decode()
    assert "Cannot migrate VM pinned" in dialog and "does not allow migration" in dialog

    refused = alice_client.post(url("portal-vm-migrate", vm), {"destination": ""}, headers=HTMX).content.decode()
    assert "Cannot migrate VM pinned" in refused and not MigrationJob.objects.exists()
