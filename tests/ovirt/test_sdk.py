"""oVirt's own Python SDK (ovirtsdk4) drives a live hpadmin through ``/ovirt-engine/`` as it drives an oVirt
engine: it connects, lists, reads host NUMA nodes, creates an HP VM with pinned vNUMA nodes, starts, migrates
(with and without force, to a chosen host), cancels, puts a host into maintenance and back, and meets faults.
Each result is checked through hpadmin's own API, so the oVirt face must have changed hpadmin, not only said so.
Migrations run in a real worker process (tests/operations/test_worker.py)."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid

import ovirtsdk4
import pytest
from ovirtsdk4 import types

from tests.factories import make_host
from tests.operations.test_worker import wait_for, workers  # noqa: F401 - fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.broker]

GiB = 2**30
FINISHED = ("succeeded", "failed", "cancelled")


# -- hpadmin's own API ------------------------------------------------------------------------------------------------


def api_get(api, path: str, **params):
    response = api.get(f"/api/v1/{path}", params)
    assert response.status_code == 200, response.content
    return response.json()


def api_object(api, collection: str, name: str) -> dict:
    """The detail representation of the one object of ``collection`` named ``name``."""
    (found,) = api_get(api, f"{collection}/", name=name)["results"]
    return api_get(api, f"{collection}/{found['id']}/")


def names(api, collection: str, **params) -> set[str]:
    return {item["name"] for item in api_get(api, f"{collection}/", **params)["results"]}


def jobs_of(api, vm_pk: int) -> list[dict]:
    return sorted(api_get(api, "jobs/", vm=vm_pk)["results"], key=lambda job: job["id"])


def wait_for_job(api, vm_pk: int, number: int, worker, states=FINISHED) -> dict:
    """The VM's ``number``-th migration job, once it is in one of ``states``."""

    def reached() -> bool:
        jobs = jobs_of(api, vm_pk)
        return len(jobs) >= number and jobs[number - 1]["state"] in states

    wait_for(reached, 60, f"job {number} of VM {vm_pk} to be {' or '.join(states)}", [worker.log])
    return jobs_of(api, vm_pk)[number - 1]


# -- the SDK, as an oVirt script uses it ------------------------------------------------------------------------------


def sdk_host(connection, name: str) -> types.Host:
    """Found by name in the whole list, so that only the test of ``search`` depends on it."""
    return next(host for host in connection.system_service().hosts_service().list() if host.name == name)


def add_hp_vm(connection, name: str):
    """A High Performance VM of 2 vCPUs and 2 GiB in 2 MiB pages, placed on hp-a and hp-b, with one vNUMA node per
    host NUMA node, pinned strictly to it; the requests an oVirt script sends. Returns its VmService."""
    vms = connection.system_service().vms_service()
    vm = vms.add(
        types.Vm(
            name=name,
            cluster=types.Cluster(name="hp-cluster"),
            template=types.Template(name="Blank"),
            type=types.VmType.HIGH_PERFORMANCE,
            memory=2 * GiB,
            cpu=types.Cpu(topology=types.CpuTopology(sockets=1, cores=2, threads=1)),
            placement_policy=types.VmPlacementPolicy(hosts=[types.Host(name="hp-a"), types.Host(name="hp-b")]),
            custom_properties=[types.CustomProperty(name="hugepages", value="2048")],
        )
    )
    vm_service = vms.vm_service(vm.id)
    for index in (0, 1):
        vm_service.numa_nodes_service().add(
            types.VirtualNumaNode(
                index=index,
                memory=1024,
                cpu=types.Cpu(cores=[types.Core(index=index)]),
                numa_node_pins=[types.NumaNodePin(index=index)],
                numa_tune_mode=types.NumaTuneMode.STRICT,
            )
        )
    return vm_service


def start_hp_vm(connection, api, name: str):
    """``add_hp_vm`` started through the SDK; returns its VmService and, once it runs, its hpadmin representation."""
    vm_service = add_hp_vm(connection, name)
    vm_service.start()
    wait_for(lambda: api_object(api, "vms", name)["status"] == "up", 30, f"VM {name} to run")
    return vm_service, api_object(api, "vms", name)


def other_host(inventory, host_pk: int):
    _, hosts = inventory
    (other,) = [host for host in hosts if host.pk != host_pk]
    return other


# -- the tests --------------------------------------------------------------------------------------------------------


def test_the_sdk_connects_and_lists_clusters_and_hosts_with_search(connection, api, inventory):
    cluster, _ = inventory
    make_host(cluster, name="hp-maint", numa_nodes=2, cores=4, threads=2, hp2m=2048, status="maintenance")
    assert connection.test(raise_exception=True)
    system = connection.system_service()
    assert system.get().product_info.name == "hpadmin"
    assert {c.name for c in system.clusters_service().list()} == names(api, "clusters") == {"hp-cluster"}

    hosts = system.hosts_service()
    assert {h.name for h in hosts.list()} == names(api, "hosts") == {"hp-a", "hp-b", "hp-maint"}
    (found,) = hosts.list(search="name=hp-a")
    assert (found.name, found.status) == ("hp-a", types.HostStatus.UP)
    up = hosts.list(search="status=up")
    assert {h.name for h in up} == names(api, "hosts", status="up") == {"hp-a", "hp-b"}


def test_host_numa_nodes_give_each_node_its_memory_and_cpus(connection, api):
    host = sdk_host(connection, "hp-a")
    nodes = connection.system_service().hosts_service().host_service(host.id).numa_nodes_service().list()
    topology = api_object(api, "hosts", "hp-a")["numa_nodes"]
    read = {node.index: (node.memory, sorted(core.index for core in node.cpu.cores)) for node in nodes}
    expected = {node["index"]: (node["memory_mib"], sorted(node["cpus"])) for node in topology}
    assert len(nodes) == 2
    assert read == expected


def test_an_hp_vm_created_with_the_sdk_is_manual_only_with_its_vnuma_nodes_pinned(connection, api, inventory):
    _, hosts = inventory
    vm_service = add_hp_vm(connection, "hp-new")

    vm = api_object(api, "vms", "hp-new")
    assert vm["optimized_for"] == "high_performance"
    # "Allow manual migration only", as the UI gives HP VMs (oVirt's REST API left them migratable).
    assert vm["placement_policy"]["affinity"] == "user_migratable"
    assert sorted(vm["placement_policy"]["hosts"]) == sorted(host.pk for host in hosts)
    assert (vm["memory_mib"], vm["sockets"], vm["cores"], vm["threads"]) == (2048, 1, 2, 1)
    assert vm["hugepage_kib"] == 2048
    nodes = [(n["index"], n["vcpus"], n["memory_mib"], n["pinned_to"], n["tune_mode"]) for n in vm["numa_nodes"]]
    assert nodes == [(0, [0], 1024, [0], "strict"), (1, [1], 1024, [1], "strict")]

    read = vm_service.get()
    assert read.type == types.VmType.HIGH_PERFORMANCE
    assert read.placement_policy.affinity == types.VmAffinity.USER_MIGRATABLE
    pins = {n.index: [pin.index for pin in n.numa_node_pins] for n in vm_service.numa_nodes_service().list()}
    assert pins == {0: [0], 1: [1]}


def test_a_started_vm_runs_and_can_migrate_only_to_the_other_host(connection, api, inventory):
    vm_service, vm = start_hp_vm(connection, api, "hp-run")
    source = api_get(api, f"hosts/{vm['host']}/")["name"]
    target = other_host(inventory, vm["host"])

    read = vm_service.get()
    assert read.status == types.VmStatus.UP
    assert read.host.id == sdk_host(connection, source).id
    targets = connection.system_service().hosts_service().list(migration_target_of=read.id)
    verdicts = api_get(api, f"vms/{vm['id']}/migration-candidates/")
    eligible = {verdict["host_name"] for verdict in verdicts if verdict["eligible"]}
    assert {host.name for host in targets} == eligible == {target.name}


def test_migrate_is_refused_without_force_and_goes_where_asked_with_it(connection, api, inventory, workers):  # noqa: F811
    vm_service, vm = start_hp_vm(connection, api, "hp-move")
    source_pk = vm["host"]

    with pytest.raises(ovirtsdk4.Error) as refused:
        vm_service.migrate()
    assert refused.value.code == 400, refused.value  # the request lacks force, as /api/v1 answers it
    assert "force" in str(refused.value)
    still = api_object(api, "vms", "hp-move")
    assert (still["status"], still["host"]) == ("up", source_pk)
    assert jobs_of(api, vm["id"]) == []

    worker = workers(speed=1000.0)
    vm_service.migrate(force=True)
    job = wait_for_job(api, vm["id"], 1, worker)
    assert job["state"] == "succeeded", job["error"]
    target_pk = other_host(inventory, source_pk).pk
    moved = api_object(api, "vms", "hp-move")
    assert (moved["status"], moved["host"]) == ("up", target_pk)

    # With a third host, ask for the one the scheduler ranks last: only the request can send the VM there.
    cluster, _ = inventory
    make_host(cluster, name="hp-c", numa_nodes=2, cores=4, threads=2, hp2m=2048)
    verdicts = api_get(api, f"vms/{vm['id']}/migration-candidates/")
    eligible = sorted((verdict for verdict in verdicts if verdict["eligible"]), key=lambda verdict: verdict["rank"])
    assert len(eligible) == 2, verdicts
    chosen = eligible[-1]
    vm_service.migrate(host=types.Host(id=sdk_host(connection, chosen["host_name"]).id), force=True)
    job = wait_for_job(api, vm["id"], 2, worker)
    assert job["state"] == "succeeded", job["error"]
    assert job["requested_destination"] == chosen["host"]
    landed = api_object(api, "vms", "hp-move")
    assert (landed["status"], landed["host"]) == ("up", chosen["host"])


def test_cancel_migration_leaves_the_vm_on_its_host(connection, api, workers):  # noqa: F811
    vm_service, vm = start_hp_vm(connection, api, "hp-cancel")
    worker = workers(speed=0.02)  # 2 GiB over the simulated 10 GbE link, slowed: the copy takes about 90 s
    vm_service.migrate(force=True)
    wait_for_job(api, vm["id"], 1, worker, states=("migrating",))

    vm_service.cancel_migration()
    job = wait_for_job(api, vm["id"], 1, worker)
    assert job["state"] == "cancelled", job
    after = api_object(api, "vms", "hp-cancel")
    assert (after["status"], after["host"]) == ("up", vm["host"])


def test_deactivate_puts_the_host_into_maintenance_and_activate_brings_it_back(
    connection,
    api,
    inventory,
    workers,  # noqa: F811
):
    vm_service, vm = start_hp_vm(connection, api, "hp-evacuee")
    source_pk = vm["host"]
    source = sdk_host(connection, api_get(api, f"hosts/{source_pk}/")["name"])
    host_service = connection.system_service().hosts_service().host_service(source.id)
    worker = workers(speed=1000.0)

    host_service.deactivate()
    wait_for(
        lambda: api_get(api, f"hosts/{source_pk}/")["status"] == "maintenance",
        60,
        f"host {source.name} to be in maintenance",
        [worker.log],
    )
    after = api_object(api, "vms", "hp-evacuee")
    assert (after["status"], after["host"]) == ("up", other_host(inventory, source_pk).pk)
    (job,) = jobs_of(api, vm["id"])
    assert (job["state"], job["reason"]) == ("succeeded", "maintenance")
    assert host_service.get().status == types.HostStatus.MAINTENANCE

    host_service.activate()
    wait_for(lambda: api_get(api, f"hosts/{source_pk}/")["status"] == "up", 30, f"host {source.name} to be up")
    assert host_service.get().status == types.HostStatus.UP


def test_a_missing_vm_and_an_unsupported_collection_answer_404_faults(connection):
    system = connection.system_service()
    with pytest.raises(ovirtsdk4.NotFoundError) as missing:
        system.vms_service().vm_service(str(uuid.uuid4())).get()
    assert missing.value.code == 404

    with pytest.raises(ovirtsdk4.Error) as unsupported:
        system.storage_domains_service().list()
    assert unsupported.value.code == 404, unsupported.value  # not a 500
    assert unsupported.value.fault is not None and unsupported.value.fault.reason, unsupported.value
    assert connection.test()  # the faults did not end the session


def bearer_status(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Version": "4"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_closing_the_connection_revokes_its_token(live_server, connect):
    connection = connect()
    token = connection.authenticate()
    url = f"{live_server.url}/ovirt-engine/api"
    assert bearer_status(url, token) == 200
    connection.close()
    assert bearer_status(url, token) == 401
