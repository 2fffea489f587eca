"""VMs, templates and pools: CRUD, profiles and template inheritance on create, and the models' rules as 400s."""

import pytest

from hpadmin.operations.services import start_vm
from hpadmin.vms.models import Pool, VirtualMachine
from tests.factories import make_cluster, make_host, make_template, make_vm

pytestmark = pytest.mark.django_db


def numa(*nodes):
    """vNUMA nodes as the API takes them: each (vcpus, memory_mib, pinned_to)."""
    return [
        {"index": i, "vcpus": list(vcpus), "memory_mib": memory, "pinned_to": list(pins)}
        for i, (vcpus, memory, pins) in enumerate(nodes)
    ]


def create(api, path="/api/v1/vms/", **values):
    return api.post(path, values, format="json")


# -- profiles and inheritance -----------------------------------------------------------------------------------


def test_hp_vm_gets_the_profile_defaults_and_manual_only_migration(api, cluster):
    r = create(api, name="db", cluster=cluster.pk, optimized_for="high_performance", cores=4, memory_mib=4096)
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["placement_policy"] == {"affinity": "user_migratable", "hosts": []}
    assert body["cpu_passthrough"] is True and body["headless"] is True and body["memory_balloon"] is False
    assert body["io_threads"] == 1 and body["virtio_rng"] is True and body["usb_enabled"] is False
    assert body["vcpus"] == 4 and body["status"] == "down" and body["host"] is None
    assert r["Location"] == body["url"]
    vm = VirtualMachine.objects.get(name="db")
    assert vm.migration_mode == "user_migratable" and vm.cpu_passthrough


def test_fields_the_client_sent_win_over_the_profile(api, cluster):
    r = create(
        api,
        name="db",
        cluster=cluster.pk,
        optimized_for="high_performance",
        usb_enabled=True,
        placement_policy={"affinity": "migratable"},
    )
    assert r.status_code == 201, r.json()
    assert r.json()["usb_enabled"] is True and r.json()["placement_policy"]["affinity"] == "migratable"
    assert r.json()["cpu_passthrough"] is True


def test_server_with_pinning_defaults_to_manual_only(api, cluster, hosts):
    r = create(api, name="s", cluster=cluster.pk, optimized_for="server", cpu_pinning_policy="dedicated")
    assert r.json()["placement_policy"]["affinity"] == "user_migratable"
    r = create(api, name="plain", cluster=cluster.pk, optimized_for="server")
    assert r.json()["placement_policy"]["affinity"] == "migratable"


def test_vm_from_a_template_inherits_its_configuration_and_hosts(api, cluster, hosts):
    template = make_template(
        cluster,
        hosts=hosts,
        optimized_for="high_performance",
        cores=2,
        memory_mib=2048,
        hugepage_kib=2048,
        numa_nodes=numa(([0, 1], 2048, [1])),
        migration_mode="pinned",
    )
    r = create(api, name="from-t", template=template.pk, description="made from a template")
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["cluster"] == cluster.pk and body["template"] == template.pk
    assert body["hugepage_kib"] == 2048 and body["cpu_passthrough"] is True and body["vcpus"] == 2
    assert body["placement_policy"] == {"affinity": "pinned", "hosts": [h.pk for h in hosts]}
    assert body["numa_nodes"][0]["pinned_to"] == [1]
    r = create(api, name="from-t2", template=template.pk, memory_mib=4096, placement_policy={"hosts": [hosts[0].pk]})
    assert r.status_code == 201, r.json()
    assert r.json()["memory_mib"] == 4096 and r.json()["placement_policy"]["hosts"] == [hosts[0].pk]


def test_pool_from_a_template_and_a_vm_from_the_pool(api, cluster):
    template = make_template(cluster, optimized_for="desktop", cores=2, memory_mib=2048)
    r = create(api, "/api/v1/pools/", name="desks", template=template.pk, size=3)
    assert r.status_code == 201, r.json()
    assert r.json()["cluster"] == cluster.pk and r.json()["soundcard_enabled"] is True
    pool = Pool.objects.get(name="desks")
    r = create(api, name="desk-1", pool=pool.pk, template=template.pk)
    assert r.status_code == 201 and r.json()["optimized_for"] == "desktop" and r.json()["pool"] == pool.pk


def test_pool_template_from_another_cluster_is_400(api, cluster):
    template = make_template(make_cluster(), memory_mib=2048)
    r = create(api, "/api/v1/pools/", name="p", template=template.pk, cluster=cluster.pk)
    assert r.status_code == 400 and "template" in r.json()


def test_template_crud(api, cluster):
    r = create(api, "/api/v1/templates/", name="t", cluster=cluster.pk, optimized_for="high_performance")
    assert r.status_code == 201 and r.json()["placement_policy"]["affinity"] == "user_migratable"
    url = r.json()["url"]
    assert api.patch(url, {"memory_mib": 8192}, format="json").json()["memory_mib"] == 8192
    assert api.delete(url).status_code == 204


def test_template_used_by_a_pool_cannot_be_deleted(api, cluster):
    template = make_template(cluster)
    create(api, "/api/v1/pools/", name="p", template=template.pk)
    r = api.delete(f"/api/v1/templates/{template.pk}/")
    assert r.status_code == 409 and "pool" in r.json()["detail"]


# -- the models' rules, as field errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pinning", "where"),
    [("0#1_1", "at character 5"), ("0#3-1", "reversed"), ("0#1_0#2", "twice"), ("7#1", "vCPU 7 does not exist")],
)
def test_bad_pinning_string_is_400_on_cpu_pinning(api, cluster, pinning, where):
    r = create(api, name="vm", cluster=cluster.pk, cores=4, cpu_pinning_policy="manual", cpu_pinning=pinning)
    assert r.status_code == 400
    assert list(r.json()) == ["cpu_pinning"]
    assert where in r.json()["cpu_pinning"][0]


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        (numa(([0, 1], 1024, []), ([1, 2], 1024, [])), "vCPU 1 is in vNUMA nodes 0 and 1"),
        (numa(([0, 1], 8192, [])), "more than the VM's"),
        ([{"index": 1, "vcpus": [0], "memory_mib": 512}], "without gaps"),
        (numa(([0, 9], 1024, [])), "names vCPU 9"),
        (numa(([0], 1024, [0])), "pinned to at least one host"),
        ([{"index": 0, "vcpus": [0], "memory_mib": 512, "pinned_to_by_host": {"x": [0]}}], "'x' is not a host id"),
    ],
)
def test_bad_vnuma_is_400_on_numa_nodes(api, cluster, nodes, message):
    r = create(api, name="vm", cluster=cluster.pk, cores=4, memory_mib=4096, numa_nodes=nodes)
    assert r.status_code == 400
    assert any(message in m for m in r.json()["numa_nodes"]), r.json()


def test_malformed_vnuma_is_400_per_node_and_field(api, cluster):
    nodes = [{"index": 0, "vcpus": [0], "memory_mib": 512}, {"index": 1, "vcpus": "0-3", "tune_mode": "fast"}]
    r = create(api, name="vm", cluster=cluster.pk, numa_nodes=nodes)
    assert r.status_code == 400
    errors = r.json()["numa_nodes"]
    assert errors[0] == {} and set(errors[1]) == {"vcpus", "memory_mib", "tune_mode"}


def test_numa_pinning_beyond_a_host_nodes_is_400(api, cluster, hosts):
    r = create(
        api,
        name="vm",
        cluster=cluster.pk,
        cores=2,
        memory_mib=2048,
        numa_nodes=numa(([0, 1], 2048, [3])),
        placement_policy={"hosts": [hosts[0].pk]},
    )
    assert r.status_code == 400
    assert "host node 3" in r.json()["numa_nodes"][0]


def test_placement_host_in_another_cluster_is_400_on_placement_policy_hosts(api, cluster, hosts):
    stranger = make_host(make_cluster(), name="elsewhere")
    r = create(api, name="vm", cluster=cluster.pk, placement_policy={"hosts": [hosts[0].pk, stranger.pk]})
    assert r.status_code == 400
    assert r.json() == {"placement_policy": {"hosts": ["Not in the VM's cluster: elsewhere."]}}


def test_pinned_without_hosts_is_400_and_unknown_host_too(api, cluster):
    r = create(api, name="vm", cluster=cluster.pk, placement_policy={"affinity": "pinned"})
    assert r.status_code == 400 and "hosts" in r.json()["placement_policy"]
    r = create(api, name="vm", cluster=cluster.pk, placement_policy={"hosts": [999]})
    assert r.status_code == 400 and "hosts" in r.json()["placement_policy"]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"sockets": 0}, "sockets"),
        ({"sockets": 40000}, "sockets"),  # more than a smallint column holds on PostgreSQL
        ({"memory_mib": 2**40}, "memory_mib"),
        ({"hugepage_kib": 4}, "hugepage_kib"),
        ({"memory_mib": 1000, "hugepage_kib": 1048576}, "hugepage_kib"),
        ({"emulator_pinning": "0-"}, "emulator_pinning"),
        ({"optimized_for": "gaming"}, "optimized_for"),
        ({"name": ""}, "name"),
    ],
)
def test_other_bad_values_are_400(api, cluster, values, field):
    r = create(api, **{"name": "vm", "cluster": cluster.pk, **values})
    assert r.status_code == 400
    assert list(r.json()) == [field]


def test_an_absurd_vcpu_count_is_400(api, cluster):
    r = create(api, name="vm", cluster=cluster.pk, sockets=32767, cores=32767, threads=32767)
    assert r.status_code == 400
    assert set(r.json()) == {"sockets", "cores", "threads"}
    r = create(api, name="vm", cluster=cluster.pk, sockets=16, cores=254, threads=1)
    assert r.status_code == 400
    assert r.json()["sockets"] == ["4064 vCPUs are too many: a VM has at most 710 (QEMU's q35 limit)."]


def test_missing_cluster_is_400(api):
    r = create(api, name="vm")
    assert r.status_code == 400 and "cluster" in r.json()


def test_duplicate_name_is_400(api, cluster):
    make_vm(cluster, name="dup")
    r = create(api, name="dup", cluster=cluster.pk)
    assert r.status_code == 400 and "name" in r.json()


# -- update and delete ------------------------------------------------------------------------------------------


def test_patch_keeps_what_was_not_sent_and_validates_the_result(api, cluster, hosts):
    vm = make_vm(cluster, hosts=hosts, optimized_for="high_performance", cores=2, memory_mib=2048)
    url = f"/api/v1/vms/{vm.pk}/"
    r = api.patch(url, {"numa_nodes": numa(([0, 1], 2048, [1]))}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["placement_policy"]["hosts"] == [h.pk for h in hosts]
    r = api.patch(url, {"placement_policy": {"hosts": []}}, format="json")
    assert r.status_code == 400 and "numa_nodes" in r.json()  # NUMA pinning needs a host
    vm.refresh_from_db()
    assert list(vm.placement_hosts.all()) == hosts
    r = api.patch(url, {"placement_policy": {"affinity": "pinned", "hosts": [hosts[1].pk]}}, format="json")
    assert r.status_code == 200 and r.json()["placement_policy"] == {"affinity": "pinned", "hosts": [hosts[1].pk]}


def test_put_replaces_the_configuration(api, cluster):
    vm = make_vm(cluster, name="a", cores=4)
    r = api.put(f"/api/v1/vms/{vm.pk}/", {"name": "b", "cores": 2, "memory_mib": 512}, format="json")
    assert r.status_code == 200, r.json()
    vm.refresh_from_db()
    assert (vm.name, vm.cores, vm.memory_mib, vm.cluster) == ("b", 2, 512, cluster)


def test_cluster_and_template_are_set_on_create_only(api, cluster):
    vm = make_vm(cluster)
    other = make_cluster()
    r = api.patch(f"/api/v1/vms/{vm.pk}/", {"cluster": other.pk}, format="json")
    assert r.status_code == 200 and r.json()["cluster"] == cluster.pk


def test_a_running_vm_cannot_be_deleted(api, cluster, hosts):
    vm = start_vm(make_vm(cluster, cores=2), host=hosts[0])
    r = api.delete(f"/api/v1/vms/{vm.pk}/")
    assert r.status_code == 409 and "stop it first" in r.json()["detail"]
    assert api.post(f"/api/v1/vms/{vm.pk}/stop/").status_code == 200
    assert api.delete(f"/api/v1/vms/{vm.pk}/").status_code == 204


def test_vm_filters(api, cluster, hosts):
    make_vm(cluster, name="hp", optimized_for="high_performance")
    make_vm(cluster, name="srv", optimized_for="server")
    start_vm(make_vm(cluster, name="up", optimized_for="server", cores=1), host=hosts[1])
    make_vm(make_cluster(), name="far")

    def names(query):
        r = api.get(f"/api/v1/vms/?{query}")
        assert r.status_code == 200, r.json()
        return [v["name"] for v in r.json()["results"]]

    assert names(f"cluster={cluster.pk}") == ["hp", "srv", "up"]
    assert names("optimized_for=high_performance") == ["hp"]
    assert names("affinity=user_migratable") == ["hp"]
    assert names("status=up") == ["up"]
    assert names(f"host={hosts[1].pk}") == ["up"]
    assert names("name__icontains=R&ordering=-name") == ["srv", "far"]
    assert api.get("/api/v1/vms/?affinity=sometimes").status_code == 400
