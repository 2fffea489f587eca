"""The oVirt face over plain HTTP: its XML and JSON, its faults, its sign-in, search, vNUMA nodes, affinity groups,
the roles, and constant query counts for lists. What the real SDK does end to end is in test_sdk.py."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.authtoken.models import Token

from hpadmin.access.models import Grant
from hpadmin.access.roles import Role
from hpadmin.affinity.models import AffinityGroup
from hpadmin.operations.models import Event
from hpadmin.vms.models import VirtualMachine
from tests.factories import (
    make_affinity_group,
    make_cluster,
    make_host,
    make_hp_vm,
    make_pool,
    make_template,
    make_vm,
    start_hp_vm,
)

pytestmark = pytest.mark.django_db

API = "/ovirt-engine/api"
PASSWORD = "rest-test-password-1234"


def basic(username: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{PASSWORD}".encode()).decode()


class Ovirt:
    """A client speaking to the oVirt face as one user, in XML unless told JSON; signed in with the user's token,
    or with ``basic`` by HTTP basic (which checks the password on every request)."""

    def __init__(self, username: str, basic_auth: bool = False) -> None:
        if basic_auth:
            authorization = basic(username)
        else:
            token, _ = Token.objects.get_or_create(user=get_user_model().objects.get(username=username))
            authorization = f"Bearer {token.key}"
        self.client = Client(HTTP_AUTHORIZATION=authorization, HTTP_VERSION="4")

    def get(self, path: str, json_: bool = False, **params):
        accept = "application/json" if json_ else "application/xml"
        return self.client.get(f"{API}{path}", params, HTTP_ACCEPT=accept)

    def post(self, path: str, body: str = "<action/>", content_type: str = "application/xml"):
        return self.client.post(f"{API}{path}", body, content_type=content_type, HTTP_ACCEPT="application/xml")

    def put(self, path: str, body: str):
        return self.client.put(f"{API}{path}", body, content_type="application/xml", HTTP_ACCEPT="application/xml")

    def delete(self, path: str):
        return self.client.delete(f"{API}{path}", HTTP_ACCEPT="application/xml")


def xml(response) -> ET.Element:
    return ET.fromstring(response.content)


def fault(response) -> str:
    root = xml(response)
    assert root.tag == "fault", response.content
    return root.findtext("detail")


def user(name: str, **values):
    return get_user_model().objects.create_user(name, password=PASSWORD, **values)


@pytest.fixture
def root(no_login_throttle):
    user("admin", is_staff=True)
    return Ovirt("admin")


@pytest.fixture
def world():
    """Cluster alpha with two 2-node hosts and a running HP VM; cluster bravo with a host and a VM."""
    alpha = make_cluster("alpha")
    hosts = [make_host(alpha, name=f"alpha-{i}", numa_nodes=2, cores=4, threads=2, hp2m=2048) for i in (1, 2)]
    vm = start_hp_vm(alpha, hosts[0], name="alpha-vm")
    bravo = make_cluster("bravo")
    bravo_host = make_host(bravo, name="bravo-1")
    bravo_vm = make_vm(bravo, name="bravo-vm")
    return {"alpha": alpha, "hosts": hosts, "vm": vm, "bravo": bravo, "bravo_host": bravo_host, "bravo_vm": bravo_vm}


# -- representations ------------------------------------------------------------------------------------------------


def test_a_vm_reads_in_xml_with_its_uuid_links_and_memory_in_bytes(root, world):
    vm = world["vm"]
    r = root.get(f"/vms/{vm.uuid}")
    assert r.status_code == 200 and r["Content-Type"].startswith("application/xml")
    body = xml(r)
    assert body.tag == "vm" and body.get("id") == str(vm.uuid)
    assert body.get("href") == f"{API}/vms/{vm.uuid}"
    assert body.findtext("name") == "alpha-vm"
    assert body.findtext("status") == "up"
    assert int(body.findtext("memory")) == 2048 * 1024 * 1024
    assert body.findtext("type") == "high_performance"
    assert body.findtext("placement_policy/affinity") == "user_migratable"
    assert body.findtext("custom_properties/custom_property/value") == "2048"
    assert body.find("host").get("href") == f"{API}/hosts/{body.find('host').get('id')}"
    rels = {link.get("rel") for link in body.findall("link")}
    assert "numanodes" in rels
    assert {link.get("rel") for link in body.findall("actions/link")} >= {"start", "stop", "migrate"}


def test_json_carries_the_same_tree_with_scalars_as_text(root, world):
    vm = world["vm"]
    r = root.get(f"/vms/{vm.uuid}", json_=True)
    assert r["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["id"] == str(vm.uuid)
    assert body["memory"] == str(2048 * 1024 * 1024)
    assert body["cpu"]["topology"] == {"cores": "2", "sockets": "1", "threads": "2"}
    assert body["high_availability"]["enabled"] == "false"
    listed = root.get("/vms", json_=True).json()
    assert [vm["name"] for vm in listed["vm"]] == ["alpha-vm", "bravo-vm"]


def test_the_root_names_the_product_and_counts_what_runs(root, world):
    body = xml(root.get(""))
    assert body.tag == "api"
    assert body.findtext("product_info/name") == "hpadmin"
    assert body.findtext("summary/vms/active") == "1" and body.findtext("summary/vms/total") == "2"
    assert body.findtext("summary/hosts/total") == "3"
    assert {link.get("rel") for link in body.findall("link")} >= {"vms", "hosts", "clusters", "affinitylabels"}


def test_host_numa_nodes_list_their_cpus_memory_and_distances(root, world):
    host = world["hosts"][0]
    host_id = xml(root.get("/hosts", search=f"name={host.name}")).find("host").get("id")
    nodes = xml(root.get(f"/hosts/{host_id}/numanodes")).findall("host_numa_node")
    assert [node.findtext("index") for node in nodes] == ["0", "1"]
    cpus = {int(core.findtext("index")) for node in nodes for core in node.findall("cpu/cores/core")}
    assert cpus == set(range(16))
    distances = host.numa_nodes.get(index=0).distances
    assert nodes[0].findtext("node_distance") == " ".join(str(distances[k]) for k in sorted(distances, key=int))


# -- faults ---------------------------------------------------------------------------------------------------------


def test_an_unsupported_collection_is_a_404_fault_naming_what_is_offered(root, world):
    r = root.get("/storagedomains")
    assert r.status_code == 404
    assert "storagedomains" in fault(r) and "vms" in fault(r)
    assert xml(r).findtext("reason") == "Not Found"
    assert root.get(f"/vms/{world['vm'].uuid}/diskattachments").status_code == 404


def test_an_unknown_vm_id_is_a_404_fault(root, world):
    assert root.get("/vms/not-a-uuid").status_code == 404
    assert root.get("/vms/00000000-0000-4000-8000-000000000001").status_code == 404
    # The id of a host is no VM's.
    host_id = xml(root.get("/hosts")).find("host").get("id")
    assert root.get(f"/vms/{host_id}").status_code == 404


def test_bad_input_is_a_400_fault_naming_the_attribute_and_saves_nothing(root, world):
    body = "<vm><name>half</name><cluster><name>alpha</name></cluster><memory>1000</memory></vm>"
    r = root.post("/vms", body)
    assert r.status_code == 400 and "memory" in fault(r)
    r = root.post("/vms", "<vm><name>odd</name><cluster><name>alpha</name></cluster><os><type>rhel</type></os></vm>")
    assert r.status_code == 400 and "os" in fault(r)
    r = root.post("/vms", "<vm><name>lost</name><cluster><name>nowhere</name></cluster></vm>")
    assert r.status_code == 400 and "nowhere" in fault(r)
    assert not VirtualMachine.objects.filter(name__in=["half", "odd", "lost"]).exists()


def test_a_models_rule_comes_back_as_a_400_fault(root, world):
    vm = make_vm(world["alpha"], name="small", cores=1, threads=1)
    r = root.post(f"/vms/{vm.uuid}/numanodes", vnode(0, 512, [5], []))
    assert r.status_code == 400
    assert "vCPU 5" in fault(r)
    vm.refresh_from_db()
    assert vm.numa_nodes == []


def test_an_action_the_state_forbids_is_a_409_fault(root, world):
    r = root.post(f"/vms/{world['vm'].uuid}/start")
    assert r.status_code == 409
    assert xml(r).findtext("reason") == "Operation Failed"


def test_malformed_and_hostile_xml_is_refused_with_400(root, world):
    assert root.post("/vms", "<vm><name>x</name>").status_code == 400
    bomb = '<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><vm><name>&b;</name></vm>'
    assert root.post("/vms", bomb).status_code == 400
    deep = "<vm>" + "<cpu>" * 3000 + "</cpu>" * 3000 + "</vm>"
    assert root.post("/vms", deep).status_code == 400


def test_only_version_4_is_spoken(root, world):
    r = root.client.get(f"{API}/vms", HTTP_VERSION="3")
    assert r.status_code == 400 and "version 4" in fault(r)


# -- signing in -----------------------------------------------------------------------------------------------------


def sso(client: Client, username: str, password: str = PASSWORD):
    form = {"grant_type": "password", "scope": "ovirt-app-api", "username": username, "password": password}
    return client.post("/ovirt-engine/sso/oauth/token", form, HTTP_ACCEPT="application/json")


def test_the_sso_token_works_as_bearer_until_logout(root, world):
    client = Client()
    r = sso(client, "admin@internal")
    assert r.status_code == 200 and r.json()["token_type"] == "bearer"
    token = r.json()["access_token"]
    assert client.get(f"{API}/vms", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    logout = client.post("/ovirt-engine/services/sso-logout", {"token": token, "scope": "ovirt-app-api"})
    assert logout.status_code == 200 and logout.json() == {}
    assert client.get(f"{API}/vms", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_a_wrong_password_gets_the_sdks_error_and_an_event(root, world):
    r = sso(Client(), "admin@internal", "wrong")
    assert "error" in r.json() and "access_token" not in r.json()
    assert Event.objects.filter(code="login_failed").exists()
    assert (
        Client(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"admin:wrong").decode()).get(f"{API}/vms").status_code
        == 401
    )


def test_without_credentials_the_api_answers_401(world):
    assert Client().get(f"{API}/vms").status_code == 401


def test_a_user_named_with_the_profile_keeps_their_name(root, world, no_login_throttle):
    user("ops@internal", is_staff=True)
    user("ops")  # another user, whom the profile-less name would find
    assert len(xml(Ovirt("admin@internal", basic_auth=True).get("/hosts")).findall("host")) == 3
    assert len(xml(Ovirt("ops@internal", basic_auth=True).get("/hosts")).findall("host")) == 3
    assert xml(Ovirt("ops", basic_auth=True).get("/hosts")).findall("host") == []  # ops holds no role


# -- search ---------------------------------------------------------------------------------------------------------


def test_search_by_name_pattern_status_and_cluster(root, world):
    names = lambda r: sorted(vm.findtext("name") for vm in xml(r).findall("vm"))  # noqa: E731
    assert names(root.get("/vms", search="name=alpha*")) == ["alpha-vm"]
    assert names(root.get("/vms", search="status=down")) == ["bravo-vm"]
    assert names(root.get("/vms", search="cluster=bravo and status!=up")) == ["bravo-vm"]
    assert names(root.get("/vms", search="name=ALPHA-VM", case_sensitive="false")) == ["alpha-vm"]
    assert len(xml(root.get("/hosts", max="1")).findall("host")) == 1
    r = root.get("/vms", search="name=a or name=b")
    assert r.status_code == 400 and "and" in fault(r)
    assert root.get("/vms", search="memory=5").status_code == 400


def test_migration_target_of_lists_the_hosts_the_scheduler_approves(root, world):
    r = root.get("/hosts", migration_target_of=str(world["vm"].uuid))
    assert [host.findtext("name") for host in xml(r).findall("host")] == ["alpha-2"]


# -- vNUMA nodes ----------------------------------------------------------------------------------------------------


def vnode(index: int, memory: int, vcpus: list[int], pins: list[int], mode: str = "strict") -> str:
    cores = "".join(f"<core><index>{v}</index></core>" for v in vcpus)
    pinned = "".join(f"<numa_node_pin><index>{p}</index></numa_node_pin>" for p in pins)
    return (
        f"<vm_numa_node><index>{index}</index><memory>{memory}</memory><cpu><cores>{cores}</cores></cpu>"
        f"<numa_node_pins>{pinned}</numa_node_pins><numa_tune_mode>{mode}</numa_tune_mode></vm_numa_node>"
    )


def test_vnuma_nodes_are_added_changed_and_removed_highest_first(root, world):
    vm = make_hp_vm(world["alpha"], world["hosts"], name="numa-vm", cpu_pinning_policy="none")
    nodes = f"/vms/{vm.uuid}/numanodes"
    assert root.post(nodes, vnode(0, 1024, [0, 1], [0])).status_code == 201
    assert root.post(nodes, vnode(1, 1024, [2, 3], [1])).status_code == 201
    vm.refresh_from_db()
    assert [(n["index"], n["vcpus"], n["pinned_to"]) for n in vm.numa_nodes] == [(0, [0, 1], [0]), (1, [2, 3], [1])]
    listed = xml(root.get(nodes)).findall("vm_numa_node")
    first = listed[0].get("id")
    r = root.put(f"{nodes}/{first}", "<vm_numa_node><numa_tune_mode>interleave</numa_tune_mode></vm_numa_node>")
    assert r.status_code == 200 and xml(r).findtext("numa_tune_mode") == "interleave"
    r = root.delete(f"{nodes}/{first}")
    assert r.status_code == 409 and "Remove vNUMA node 1 first" in fault(r)
    assert root.delete(f"{nodes}/{listed[1].get('id')}").status_code == 200
    vm.refresh_from_db()
    assert [n["index"] for n in vm.numa_nodes] == [0]
    assert vm.numa_nodes[0]["tune_mode"] == "interleave"
    follow = xml(root.get(f"/vms/{vm.uuid}", follow="numanodes"))
    assert [n.findtext("index") for n in follow.findall("numa_nodes/vm_numa_node")] == ["0"]


def test_a_vm_wide_tune_mode_needs_vnuma_nodes(root, world):
    vm = make_hp_vm(world["alpha"], name="flat")
    r = root.put(f"/vms/{vm.uuid}", "<vm><numa_tune_mode>interleave</numa_tune_mode></vm>")
    assert r.status_code == 400 and "numa_tune_mode" in fault(r)


def test_manual_vcpu_pins_become_the_manual_pinning(root, world):
    body = (
        "<vm><name>pinned</name><cluster><name>alpha</name></cluster><type>server</type>"
        "<cpu><topology><sockets>1</sockets><cores>2</cores><threads>1</threads></topology>"
        "<cpu_tune><vcpu_pins><vcpu_pin><vcpu>0</vcpu><cpu_set>1</cpu_set></vcpu_pin>"
        "<vcpu_pin><vcpu>1</vcpu><cpu_set>2-3</cpu_set></vcpu_pin></vcpu_pins></cpu_tune></cpu>"
        "<placement_policy><hosts><host><name>alpha-1</name></host></hosts></placement_policy></vm>"
    )
    r = root.post("/vms", body)
    assert r.status_code == 201, r.content
    vm = VirtualMachine.objects.get(name="pinned")
    assert vm.cpu_pinning_policy == "manual" and vm.cpu_pinning == "0#1_1#2-3"
    assert [p.findtext("cpu_set") for p in xml(r).findall("cpu/cpu_tune/vcpu_pins/vcpu_pin")] == ["1", "2-3"]
    assert r["Location"] == f"{API}/vms/{vm.uuid}"


# -- affinity -------------------------------------------------------------------------------------------------------


def test_affinity_groups_are_made_and_filled_under_their_cluster(root, world):
    cluster_id = xml(root.get("/clusters", search="name=alpha")).find("cluster").get("id")
    groups = f"/clusters/{cluster_id}/affinitygroups"
    body = (
        "<affinity_group><name>spread</name><priority>2</priority>"
        "<vms_rule><enabled>true</enabled><positive>false</positive><enforcing>true</enforcing></vms_rule>"
        f'<vms><vm id="{world["vm"].uuid}"/></vms></affinity_group>'
    )
    r = root.post(groups, body)
    assert r.status_code == 201, r.content
    group_id = xml(r).get("id")
    other = make_vm(world["alpha"], name="alpha-other")
    assert root.post(f"{groups}/{group_id}/vms", f'<vm id="{other.uuid}"/>').status_code == 201
    group = AffinityGroup.objects.get(name="spread")
    assert (group.vm_rule, group.vm_enforcing, group.priority) == ("negative", True, 2.0)
    assert set(group.vms.values_list("name", flat=True)) == {"alpha-vm", "alpha-other"}
    assert root.delete(f"{groups}/{group_id}/vms/{other.uuid}").status_code == 200
    assert list(group.vms.values_list("name", flat=True)) == ["alpha-vm"]
    # A VM of another cluster is refused by the group's own rules.
    r = root.post(f"{groups}/{group_id}/vms", f'<vm id="{world["bravo_vm"].uuid}"/>')
    assert r.status_code == 400


def test_a_group_hpadmin_manages_refuses_changes_with_409(root, world):
    group = make_affinity_group(world["alpha"], name="HP managed", vms=[world["vm"]], vm_rule="positive")
    AffinityGroup.objects.filter(pk=group.pk).update(managed=True)
    cluster_id = xml(root.get("/clusters", search="name=alpha")).find("cluster").get("id")
    group_id = xml(root.get(f"/clusters/{cluster_id}/affinitygroups")).find("affinity_group").get("id")
    r = root.delete(f"/clusters/{cluster_id}/affinitygroups/{group_id}")
    assert r.status_code == 409 and "managed by hpadmin" in fault(r)
    assert AffinityGroup.objects.filter(pk=group.pk).exists()


# -- roles ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "scope", "start", "migrate"),
    [
        # Allowed: start is refused (409) only because the VM runs, migrate (400) because it lacks force.
        (Role.CLUSTER_ADMIN, "cluster", 409, 400),
        (Role.VIEWER, "cluster", 403, 403),
        (Role.VM_OPERATOR, "vm", 409, 400),
        (Role.USER_VM_MANAGER, "vm", 409, 403),
    ],
)
def test_each_role_sees_and_acts_as_its_grant_says(world, no_login_throttle, role, scope, start, migrate):
    grantee = user("grantee")
    target = {"cluster": {"cluster": world["alpha"]}, "vm": {"vm": world["vm"]}}[scope]
    Grant.objects.create(user=grantee, role=role, **target)
    client = Ovirt("grantee")
    assert [vm.findtext("name") for vm in xml(client.get("/vms")).findall("vm")] == ["alpha-vm"]
    assert client.get(f"/vms/{world['bravo_vm'].uuid}").status_code == 404
    assert client.post(f"/vms/{world['bravo_vm'].uuid}/start").status_code == 404
    assert client.post(f"/vms/{world['vm'].uuid}/start").status_code == start
    assert client.post(f"/vms/{world['vm'].uuid}/migrate").status_code == migrate
    hosts = {host.findtext("name") for host in xml(client.get("/hosts")).findall("host")}
    assert "bravo-1" not in hosts


# -- cost -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/vms", "/hosts", "/templates", "/jobs", "/events", "/clusters"])
def test_lists_cost_the_same_queries_whatever_their_length(root, world, path, django_assert_max_num_queries):
    def count() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as queries:
            assert root.get(path).status_code == 200
        return len(queries)

    few = count()
    cluster = world["alpha"]
    for i in range(12):
        host = make_host(cluster, name=f"more-{i}")
        vm = make_vm(cluster, [host], name=f"more-vm-{i}")
        Event.objects.create(code="note", message="n", vm=vm, host=host, cluster=cluster)
    with django_assert_max_num_queries(few):
        assert root.get(path).status_code == 200


def test_the_v1_openapi_schema_holds_no_ovirt_path(root, world):
    client = Client()
    client.force_login(get_user_model().objects.get(username="admin"))
    schema = json.loads(client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)
    assert schema["paths"] and all(path.startswith("/api/v1/") for path in schema["paths"])


def test_a_running_vms_new_vnuma_node_waits_for_its_next_start(root, world):
    vm = start_hp_vm(world["alpha"], world["hosts"][1], world["hosts"], name="busy", cpu_pinning_policy="none")
    nodes = f"/vms/{vm.uuid}/numanodes"
    assert root.post(nodes, vnode(0, 1024, [0, 1], [0])).status_code == 201
    assert root.post(nodes, vnode(1, 1024, [2, 3], [1])).status_code == 201
    vm.refresh_from_db()
    assert vm.numa_nodes == []  # the guest runs as it started
    assert [n["pinned_to"] for n in vm.next_run["numa_nodes"]] == [[0], [1]]
    assert [n.findtext("index") for n in xml(root.get(nodes)).findall("vm_numa_node")] == ["0", "1"]


def test_updates_keep_the_cluster_and_refuse_attributes_a_template_lacks(root, world):
    vm = world["bravo_vm"]
    r = root.put(f"/vms/{vm.uuid}", "<vm><cluster><name>alpha</name></cluster></vm>")
    assert r.status_code == 400 and "cluster" in fault(r)
    assert root.put(f"/vms/{vm.uuid}", "<vm><cluster><name>bravo</name></cluster><memory>2147483648</memory></vm>")
    vm.refresh_from_db()
    assert (vm.cluster, vm.memory_mib) == (world["bravo"], 2048)
    template = root.post(
        "/templates",
        "<template><name>t</name><cluster><name>alpha</name></cluster><template><name>x</name></template></template>",
    )
    assert template.status_code == 400 and "template" in fault(template)
    assert root.put(f"/hosts/{xml(root.get('/hosts')).find('host').get('id')}", "<host/>").status_code == 405


def test_numbers_beyond_a_columns_range_and_members_without_a_reference_are_400(root, world):
    assert root.get("/events", max="99999999999999999999999").status_code == 400
    label = root.post("/affinitylabels", "<affinity_label><name>gpu</name></affinity_label>")
    assert label.status_code == 201
    r = root.post(f"/affinitylabels/{xml(label).get('id')}/vms", "[]", content_type="application/json")
    assert r.status_code == 400
    r = root.post(f"/affinitylabels/{xml(label).get('id')}/vms", "<vm><name>alpha-vm</name></vm>")
    assert r.status_code == 201
    assert list(world["vm"].affinity_labels.values_list("name", flat=True)) == ["gpu"]


def test_max_counts_the_migration_targets_only(root, world):
    r = root.get("/hosts", migration_target_of=str(world["vm"].uuid), max="1")
    assert [host.findtext("name") for host in xml(r).findall("host")] == ["alpha-2"]


def test_vms_are_searched_by_the_status_oVirt_shows(root, world):
    vm = make_vm(world["alpha"], name="waking")
    VirtualMachine.objects.filter(pk=vm.pk).update(status="starting")
    r = root.get("/vms", search="status=powering_up")
    assert [v.findtext("name") for v in xml(r).findall("vm")] == ["waking"]
    assert xml(r).find("vm").findtext("status") == "powering_up"


def test_next_run_shows_the_configuration_a_running_vm_will_start_with(root, world):
    vm = world["vm"]
    assert root.put(f"/vms/{vm.uuid}", "<vm><memory>4294967296</memory></vm>").status_code == 200
    assert xml(root.get(f"/vms/{vm.uuid}")).findtext("memory") == str(2048 * 1024 * 1024)
    assert xml(root.get(f"/vms/{vm.uuid}", next_run="true")).findtext("memory") == str(4096 * 1024 * 1024)


def test_a_pool_keeps_its_template_and_changes_its_size(root, world):
    template = make_template(world["alpha"], name="base")
    other = make_template(world["alpha"], name="other")
    pool = make_pool(template, size=2, name="desk")
    pool_id = xml(root.get("/vmpools", search="name=desk")).find("vm_pool").get("id")
    r = root.put(f"/vmpools/{pool_id}", "<vm_pool><template><name>other</name></template></vm_pool>")
    assert r.status_code == 400 and "keeps the template" in fault(r)
    r = root.put(f"/vmpools/{pool_id}", "<vm_pool><template><name>base</name></template><size>5</size></vm_pool>")
    assert r.status_code == 200 and xml(r).findtext("size") == "5"
    pool.refresh_from_db()
    assert (pool.template, pool.size) == (template, 5) and other.pools.count() == 0


def test_a_vm_wide_tune_mode_on_a_running_vm_applies_to_the_nodes_it_will_start_with(root, world):
    vm = start_hp_vm(world["alpha"], world["hosts"][1], world["hosts"], name="tuned", cpu_pinning_policy="none")
    assert root.post(f"/vms/{vm.uuid}/numanodes", vnode(0, 1024, [0, 1], [0])).status_code == 201
    assert root.put(f"/vms/{vm.uuid}", "<vm><numa_tune_mode>interleave</numa_tune_mode></vm>").status_code == 200
    vm.refresh_from_db()
    assert [(n["pinned_to"], n["tune_mode"]) for n in vm.next_run["numa_nodes"]] == [([0], "interleave")]
