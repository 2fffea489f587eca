"""Clusters (CRUD) and hosts (add, read with topology and allocations, refresh from the hypervisor)."""

import pytest

from hpadmin.hypervisor.base import HypervisorError
from hpadmin.hypervisor.models import FaultKind, SimulatedFault
from hpadmin.hypervisor.simulated import SimulatedDriver
from hpadmin.inventory.models import Cluster, Host
from hpadmin.operations.services import start_vm
from tests.factories import make_cluster, make_host, make_vm

pytestmark = pytest.mark.django_db


# -- clusters ---------------------------------------------------------------------------------------------------


def test_cluster_crud(api):
    r = api.post("/api/v1/clusters/", {"name": "prod", "cpu_level_flags": ["avx2"]}, format="json")
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["weight_factors"]["preferred_hosts"] == 99.0 and body["cpu_level_flags"] == ["avx2"]
    url = body["url"]
    r = api.patch(url, {"weight_factors": {"cpu_load": 3}, "auto_migrate_hp": True}, format="json")
    assert r.status_code == 200 and r.json()["weight_factors"] == {"cpu_load": 3.0}
    assert api.get(url).json()["auto_migrate_hp"] is True
    assert api.delete(url).status_code == 204
    assert not Cluster.objects.exists()


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"weight_factors": {"speed": 1}}, "weight_factors"),  # clean(): unknown weight
        ({"weight_factors": {"cpu_load": -1}}, "weight_factors"),
        ({"weight_factors": {"cpu_load": "NaN"}}, "weight_factors"),
        ({"weight_factors": [1, 2]}, "weight_factors"),
        ({"cpu_level_flags": "avx2"}, "cpu_level_flags"),
        ({"migration_policy": "fast"}, "migration_policy"),
    ],
)
def test_cluster_bad_input_is_400_with_the_field(api, values, field):
    r = api.post("/api/v1/clusters/", {"name": "prod", **values}, format="json")
    assert r.status_code == 400
    assert field in r.json()


def test_cluster_name_is_unique(api, cluster):
    r = api.post("/api/v1/clusters/", {"name": cluster.name}, format="json")
    assert r.status_code == 400 and "name" in r.json()


def test_deleting_a_cluster_with_hosts_is_409(api, hosts, cluster):
    r = api.delete(f"/api/v1/clusters/{cluster.pk}/")
    assert r.status_code == 409
    assert "2 hosts" in r.json()["detail"]


# -- hosts ------------------------------------------------------------------------------------------------------


def test_host_shows_numa_nodes_cpus_hugepages_and_allocations(api, cluster, hosts):
    vm = make_vm(cluster, optimized_for="high_performance", cpu_pinning_policy="dedicated", cores=2)
    start_vm(vm, host=hosts[0])
    body = api.get(f"/api/v1/hosts/{hosts[0].pk}/").json()
    assert body["supports_numa"] is True and body["cluster"] == cluster.pk
    assert [n["index"] for n in body["numa_nodes"]] == [0, 1]
    node0 = body["numa_nodes"][0]
    assert len(node0["cpus"]) == 8 and node0["distances"] == {"0": 10, "1": 21}
    assert len(body["cpus"]) == 16 and {c["numa_node"] for c in body["cpus"]} == {0, 1}
    assert {(p["node_index"], p["size_kib"], p["total"]) for p in body["hugepage_pools"]} == {
        (0, 2048, 2048),
        (1, 2048, 2048),
    }
    [allocation] = body["allocations"]
    assert allocation["vm"] == vm.pk and allocation["state"] == "active"
    assert len(allocation["exclusive_cpus"]) == 2


def test_add_host_reads_its_topology(api, cluster):
    r = api.post(
        "/api/v1/hosts/",
        {"cluster": cluster.pk, "name": "big", "uri": "sim://big?sockets=4&cores=8&threads=2&nodes=4"},
        format="json",
    )
    assert r.status_code == 201, r.json()
    body = r.json()
    assert r["Location"] == body["url"] and type(r.headers["Location"]) is str
    assert body["sockets"] == 4 and len(body["numa_nodes"]) == 4 and len(body["cpus"]) == 64


def test_add_host_with_a_bare_name_gets_the_driver_scheme(api, cluster):
    r = api.post("/api/v1/hosts/", {"cluster": cluster.pk, "name": "plain", "uri": "plain"}, format="json")
    assert r.status_code == 201
    assert r.json()["uri"] == "sim://plain"
    again = api.post("/api/v1/hosts/", {"cluster": cluster.pk, "name": "plain2", "uri": "sim://plain"}, format="json")
    assert again.status_code == 400 and "uri" in again.json()


@pytest.mark.parametrize(
    ("uri", "code", "key"),
    [
        ("http://example.org/", 400, "uri"),  # no driver for it
        ("sim://bad?offline=x", 400, "uri"),  # the driver refuses the shape
        ("sim://bad?sockets=0", 400, "uri"),
        ("sim://bad?sockets=x", 400, "uri"),
        ("sim://bad?socket=2", 400, "uri"),  # a typo would otherwise do nothing
    ],
)
def test_add_host_with_a_bad_uri_is_refused(api, cluster, uri, code, key):
    r = api.post("/api/v1/hosts/", {"cluster": cluster.pk, "name": "bad", "uri": uri}, format="json")
    assert r.status_code == code
    assert r.json()[key]
    assert not Host.objects.filter(name="bad").exists()


def test_add_unreachable_host_is_502_with_the_driver_message(api, cluster):
    SimulatedFault.objects.create(host_uri="sim://gone", kind=FaultKind.UNREACHABLE)
    r = api.post("/api/v1/hosts/", {"cluster": cluster.pk, "name": "gone", "uri": "sim://gone"}, format="json")
    assert r.status_code == 502
    assert "gone" in r.json()["detail"]


def test_refresh_reads_the_topology_again(api, cluster):
    host = make_host(cluster, numa_nodes=2)
    host.numa_nodes.all().delete()
    r = api.post(f"/api/v1/hosts/{host.pk}/refresh/")
    assert r.status_code == 200
    assert len(r.json()["numa_nodes"]) == 2


def test_refresh_of_an_unreachable_host_is_502(api, hosts):
    SimulatedFault.objects.create(host_uri=hosts[0].uri, kind=FaultKind.UNREACHABLE)
    r = api.post(f"/api/v1/hosts/{hosts[0].pk}/refresh/")
    assert r.status_code == 502
    assert r.json()["detail"]


def test_a_hypervisor_that_refuses_is_409(api, hosts, monkeypatch):
    def refuse(self, uri):
        raise HypervisorError("the daemon is shutting down", "refused")

    monkeypatch.setattr(SimulatedDriver, "capabilities", refuse)
    r = api.post(f"/api/v1/hosts/{hosts[0].pk}/refresh/")
    assert r.status_code == 409
    assert r.json()["detail"] == "the daemon is shutting down"


def test_host_filters(api):
    a, b = make_cluster("a"), make_cluster("b")
    make_host(a, name="a1")
    make_host(a, name="a2", status="maintenance")
    make_host(b, name="b1")

    def names(query):
        return [h["name"] for h in api.get(f"/api/v1/hosts/?{query}").json()["results"]]

    assert names(f"cluster={a.pk}") == ["a1", "a2"]
    assert names("status=maintenance") == ["a2"]
    assert names("status=up&status=maintenance&ordering=-name") == ["b1", "a2", "a1"]
    assert names("name__icontains=B") == ["b1"]
    assert api.get("/api/v1/hosts/?cluster=999").status_code == 400
    assert api.get("/api/v1/hosts/?status=sleeping").status_code == 400
