"""Use TSC frequency: the guest is given its first host's TSC frequency, the VM records it and keeps it when it
migrates, and a destination whose TSC runs at another frequency is refused with the reason."""

import xml.etree.ElementTree as ET

import pytest

from hpadmin.hypervisor.domain_xml import build_domain_xml
from hpadmin.hypervisor.models import SimulatedDomain
from hpadmin.hypervisor.simulated import spec_from_json
from hpadmin.operations.services import start_vm
from hpadmin.vms.models import VirtualMachine
from tests.factories import make_host, make_template, make_vm

pytestmark = pytest.mark.django_db


@pytest.fixture
def tsc_hosts(cluster):
    """h1 and h2 tick within 250 ppm of each other (2,100,000 kHz: 525 kHz either way); h3 is another CPU."""
    return {
        name: make_host(cluster, name=name, numa_nodes=2, cores=4, threads=2, tsc=khz)
        for name, khz in (("h1", 2_100_000), ("h2", 2_100_400), ("h3", 2_400_000))
    }


def start(api, vm, host) -> dict:
    """Start the VM on ``host`` (the API's start lets the scheduler choose) and read it back from the API."""
    start_vm(vm, host=host)
    return api.get(f"/api/v1/vms/{vm.pk}/").json()


def guest_timer(vm: VirtualMachine) -> ET.Element | None:
    """The TSC timer in the domain XML of the running guest, as its host runs it."""
    domain = SimulatedDomain.objects.get(name=vm.name)
    return ET.fromstring(build_domain_xml(spec_from_json(domain.spec))).find("clock/timer[@name='tsc']")


def test_the_guest_gets_the_tsc_frequency_of_the_host_it_starts_on(api, cluster, tsc_hosts):
    vm = make_vm(cluster, cores=2, use_tsc_frequency=True)
    body = start(api, vm, tsc_hosts["h3"])
    assert body["tsc_khz_at_start"] == 2_400_000
    assert guest_timer(vm).get("frequency") == "2400000000"  # in Hz


def test_without_it_the_guest_follows_its_host(api, cluster, tsc_hosts):
    vm = make_vm(cluster, cores=2)
    assert start(api, vm, tsc_hosts["h1"])["tsc_khz_at_start"] == 2_100_000
    assert guest_timer(vm) is None


def test_a_migration_keeps_the_frequency_the_guest_started_with(
    api, cluster, tsc_hosts, django_capture_on_commit_callbacks
):
    vm = make_vm(cluster, cores=2, use_tsc_frequency=True)
    start(api, vm, tsc_hosts["h1"])
    with django_capture_on_commit_callbacks(execute=True):
        r = api.post(f"/api/v1/vms/{vm.pk}/migrate/", {"host": tsc_hosts["h2"].pk, "force": True}, format="json")
    assert r.status_code == 202, r.json()
    vm.refresh_from_db()
    assert vm.host == tsc_hosts["h2"] and vm.tsc_khz_at_start == 2_100_000
    assert guest_timer(vm).get("frequency") == "2100000000"  # not h2's 2,100,400 kHz


def test_a_destination_with_another_tsc_frequency_is_refused_with_the_reason(api, cluster, tsc_hosts):
    vm = make_vm(cluster, cores=2, use_tsc_frequency=True)
    start(api, vm, tsc_hosts["h1"])
    r = api.post(f"/api/v1/vms/{vm.pk}/migrate/", {"host": tsc_hosts["h3"].pk, "force": True}, format="json")
    assert r.status_code == 400
    reason = "the host's TSC frequency (2,400,000 kHz) differs from the VM's (2,100,000 kHz) by more than 250 ppm"
    assert reason in r.json()["detail"]
    candidates = {v["host_name"]: v for v in api.get(f"/api/v1/vms/{vm.pk}/migration-candidates/").json()}
    assert candidates["h2"]["eligible"] is True
    assert candidates["h3"]["rejections"] == [{"filter": "TscFrequency", "reason": reason}]


def test_the_api_sets_it_and_reports_what_the_vm_started_with(api, cluster, tsc_hosts):
    r = api.post("/api/v1/vms/", {"name": "clocked", "cluster": cluster.pk, "use_tsc_frequency": True}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["use_tsc_frequency"] is True and r.json()["tsc_khz_at_start"] is None
    vm = VirtualMachine.objects.get(name="clocked")
    r = api.patch(f"/api/v1/vms/{vm.pk}/", {"tsc_khz_at_start": 1}, format="json")
    assert r.status_code == 200 and r.json()["tsc_khz_at_start"] is None  # read-only: written by a start


def test_switching_it_on_while_the_guest_runs_waits_for_the_next_start(
    api, cluster, tsc_hosts, django_capture_on_commit_callbacks
):
    vm = make_vm(cluster, cores=2)
    start(api, vm, tsc_hosts["h1"])
    r = api.patch(f"/api/v1/vms/{vm.pk}/", {"use_tsc_frequency": True}, format="json")
    assert r.status_code == 200
    assert r.json()["use_tsc_frequency"] is False and r.json()["next_run"] == {"use_tsc_frequency": True}
    # The running guest has no fixed TSC frequency, so it may still move to another CPU.
    with django_capture_on_commit_callbacks(execute=True):
        r = api.post(f"/api/v1/vms/{vm.pk}/migrate/", {"host": tsc_hosts["h3"].pk, "force": True}, format="json")
    assert r.status_code == 202, r.json()


def test_templates_and_pools_hand_it_down(api, cluster):
    template = make_template(cluster, use_tsc_frequency=True)
    r = api.post("/api/v1/pools/", {"name": "p", "template": template.pk, "size": 1}, format="json")
    assert r.status_code == 201 and r.json()["use_tsc_frequency"] is True, r.json()
    r = api.post("/api/v1/vms/", {"name": "from-pool", "pool": r.json()["id"]}, format="json")
    assert r.status_code == 201 and r.json()["use_tsc_frequency"] is True, r.json()
