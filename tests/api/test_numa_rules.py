"""NumaValidator's rules through the API: 400 with the message under the field, on create and update; and a host
whose refreshed capabilities no longer show NUMA is refused by every later start and save of a VM pinned to it."""

import pytest

from hpadmin.inventory.models import Host
from hpadmin.vms.models import VirtualMachine
from tests.factories import make_host, make_vm

pytestmark = pytest.mark.django_db

PINNED = [{"index": 0, "vcpus": [0, 1], "memory_mib": 2048, "pinned_to": [1]}]


@pytest.fixture
def flat(cluster):
    return make_host(cluster, name="flat", numa_nodes=0)


def new_vm(cluster, **values) -> dict:
    return {"name": "vm", "cluster": cluster.pk, "cores": 2, "memory_mib": 2048, **values}


def test_create_refuses_preferred_mode_for_several_vnuma_nodes(api, cluster):
    nodes = [
        {"index": 0, "vcpus": [0], "memory_mib": 1024, "tune_mode": "preferred"},
        {"index": 1, "vcpus": [1], "memory_mib": 1024, "tune_mode": "preferred"},
    ]
    r = api.post("/api/v1/vms/", new_vm(cluster, numa_nodes=nodes), format="json")
    assert r.status_code == 400
    assert r.json() == {
        "numa_nodes": ["Preferred NUMA tune mode is allowed for a single vNUMA node only; the VM has 2."]
    }
    assert not VirtualMachine.objects.exists()


def test_create_refuses_numa_pinning_on_a_host_without_numa(api, cluster, hosts, flat):
    body = new_vm(cluster, numa_nodes=PINNED, placement_policy={"hosts": [hosts[0].pk, flat.pk]})
    r = api.post("/api/v1/vms/", body, format="json")
    assert r.status_code == 400
    assert r.json() == {"numa_nodes": ["Host flat does not support NUMA; it cannot take NUMA pinning."]}


def test_update_refuses_moving_numa_pinning_to_a_host_without_numa(api, cluster, hosts, flat):
    vm = make_vm(cluster, hosts=[hosts[0]], name="vm", cores=2, memory_mib=2048, numa_nodes=PINNED)
    r = api.patch(f"/api/v1/vms/{vm.pk}/", {"placement_policy": {"hosts": [flat.pk]}}, format="json")
    assert r.status_code == 400
    assert r.json() == {"numa_nodes": ["Host flat does not support NUMA; it cannot take NUMA pinning."]}
    assert list(vm.placement_hosts.all()) == [hosts[0]]


def test_a_host_refreshed_to_no_numa_is_refused_at_start_and_on_save(api, cluster, hosts):
    host = hosts[0]
    vm = make_vm(cluster, hosts=[host], name="vm", cores=2, memory_mib=2048, numa_nodes=PINNED, migration_mode="pinned")
    # The hypervisor now reports the host without NUMA (e.g. node interleaving switched on in its firmware).
    Host.objects.filter(pk=host.pk).update(uri=host.uri.replace("nodes=2", "nodes=0"))
    r = api.post(f"/api/v1/hosts/{host.pk}/refresh/")
    assert r.status_code == 200 and r.json()["supports_numa"] is False
    start = api.post(f"/api/v1/vms/{vm.pk}/start/")
    assert start.status_code == 400 and start.json()["errors"][host.name] == ["NUMA: does not support NUMA"]
    edit = api.patch(f"/api/v1/vms/{vm.pk}/", {"description": "after the refresh"}, format="json")
    assert edit.status_code == 400
    assert edit.json() == {"numa_nodes": [f"Host {host.name} does not support NUMA; it cannot take NUMA pinning."]}
