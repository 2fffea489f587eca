"""A running guest cannot change its size or placement settings: such edits, through the API or the dialog,
wait as the next-run configuration; the VM migrates as it runs, and its next start applies them."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from hpadmin.hypervisor.models import SimulatedDomain
from hpadmin.operations.models import Event, JobState
from hpadmin.operations.services import migrate_vms, start_vm, stop_vm
from hpadmin.vms.models import VirtualMachine, VmStatus
from scheduler.models import Allocation
from tests.factories import make_cluster, make_host, make_vm

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def hosts():
    cluster = make_cluster()
    return [make_host(cluster, name=f"n{i}", numa_nodes=2, cores=4, threads=2, memory_mib=65536) for i in (1, 2)]


@pytest.fixture
def vm(hosts):
    vm = make_vm(hosts[0].cluster, name="web", cpu_pinning_policy="dedicated", cores=2, threads=1, memory_mib=2048)
    return start_vm(vm, host=hosts[0])


@pytest.fixture
def api(admin_user):
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


def guest(vm) -> dict:
    """What the hypervisor runs: the domain's vCPUs and memory."""
    spec = SimulatedDomain.objects.get(name=vm.name).spec
    return {"vcpus": spec["sockets"] * spec["cores"] * spec["threads"], "memory_mib": spec["memory_mib"]}


def test_an_api_edit_of_a_running_vm_waits_for_its_next_start(vm, hosts, api, django_capture_on_commit_callbacks):
    r = api.patch(f"/api/v1/vms/{vm.pk}/", {"cores": 4, "memory_mib": 8192, "description": "db"}, format="json")
    assert r.status_code == 200, r.json()
    body = r.json()
    assert (body["cores"], body["memory_mib"], body["description"]) == (2, 2048, "db")  # runs as before
    assert body["next_run"] == {"cores": 4, "memory_mib": 8192}
    assert api.get(f"/api/v1/vms/{vm.pk}/").json()["next_run"] == {"cores": 4, "memory_mib": 8192}

    # A live migration moves the guest as it runs.
    with django_capture_on_commit_callbacks(execute=True):
        (job,) = migrate_vms([vm], hosts[1], force=True)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    assert guest(vm) == {"vcpus": 2, "memory_mib": 2048}
    assert Allocation.objects.get(vm=vm).vcpus == 2

    # The next start applies the changes.
    stop_vm(vm)
    vm = start_vm(vm)
    assert (vm.cores, vm.memory_mib, vm.next_run) == (4, 8192, {})
    assert guest(vm) == {"vcpus": 4, "memory_mib": 8192}
    assert Allocation.objects.get(vm=vm).vcpus == 4
    assert "Memory size (MiB)" in Event.objects.get(vm=vm, code="vm_next_run_applied").message


def test_a_later_edit_keeps_what_waits_and_a_value_set_back_drops_it(vm, api):
    api.patch(f"/api/v1/vms/{vm.pk}/", {"cores": 4, "memory_mib": 8192}, format="json")
    body = api.patch(f"/api/v1/vms/{vm.pk}/", {"description": "later"}, format="json").json()
    assert body["next_run"] == {"cores": 4, "memory_mib": 8192} and body["description"] == "later"
    body = api.patch(f"/api/v1/vms/{vm.pk}/", {"memory_mib": 2048}, format="json").json()
    assert body["next_run"] == {"cores": 4}


def test_a_refused_next_run_change_is_a_field_error(vm, api):
    r = api.patch(f"/api/v1/vms/{vm.pk}/", {"cpu_pinning_policy": "manual", "cpu_pinning": "0#two"}, format="json")
    assert r.status_code == 400 and "cpu_pinning" in r.json()
    assert VirtualMachine.objects.get(pk=vm.pk).next_run == {}


def test_an_edit_of_a_stopped_vm_applies_at_once(vm, api):
    stop_vm(vm)
    body = api.patch(f"/api/v1/vms/{vm.pk}/", {"memory_mib": 4096}, format="json").json()
    assert body["memory_mib"] == 4096 and body["next_run"] == {}


def dialog_values(client, url: str) -> dict:
    """What the dialog posts when the admin saves it as it is shown."""
    form = client.get(url, headers=HTMX).context["form"]
    data = {}
    for field in form:
        value = field.value()
        if isinstance(value, bool):
            if value:
                data[field.name] = "on"
        elif isinstance(value, list | tuple):
            data[field.name] = [getattr(v, "pk", v) for v in value]
        elif value is not None:
            data[field.name] = value
    return data


def test_the_dialog_shows_and_keeps_the_next_run_configuration(vm, admin_client):
    url = reverse("vm-edit", args=[vm.pk])
    saved = admin_client.post(url, {**dialog_values(admin_client, url), "memory_mib": 8192}, headers=HTMX)
    assert "HX-Redirect" in saved, saved.context["form"].errors
    vm.refresh_from_db()
    assert vm.memory_mib == 2048 and vm.next_run == {"memory_mib": 8192}
    # Opened again, the dialog shows what the next start will run; saving another change keeps both.
    shown = dialog_values(admin_client, url)
    assert int(shown["memory_mib"]) == 8192
    admin_client.post(url, {**shown, "cores": 4}, headers=HTMX)
    vm.refresh_from_db()
    assert vm.next_run == {"memory_mib": 8192, "cores": 4}
    page = admin_client.get(vm.get_absolute_url()).content.decode()
    assert "Changes apply at next start" in page and "8192" in page


def test_a_stale_edit_does_not_undo_what_the_operations_did(hosts):
    vm = make_vm(hosts[0].cluster, cores=1, threads=1, memory_mib=1024)
    loaded = VirtualMachine.objects.get(pk=vm.pk)  # an edit opened while the VM was down
    start_vm(vm, host=hosts[1])
    loaded.description = "edited later"
    loaded.save()
    vm.refresh_from_db()
    assert (vm.status, vm.host, vm.description) == (VmStatus.UP, hosts[1], "edited later")
