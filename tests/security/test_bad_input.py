"""Input that used to end in a server error (500, or 502 from a simulated host) is a 400, or the form again with
the error next to the field, naming what is wrong."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from hpadmin.inventory.models import Host
from hpadmin.operations.models import Event
from hpadmin.vms.models import VirtualMachine
from tests.factories import make_cluster, make_host, make_template

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
NESTED = "[" * 2000 + "]" * 2000


@pytest.fixture
def admin(db):
    return get_user_model().objects.create_superuser("root", "root@localhost", "pw-root-1234")


@pytest.fixture
def api(admin):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin).key}")
    return client


@pytest.fixture
def ui(client, admin):
    client.force_login(admin)
    return client


@pytest.fixture
def cluster(db):
    return make_cluster("c1")


# -- deeply nested JSON --------------------------------------------------------------------------------------------


def test_deeply_nested_json_is_400_on_a_resource(api):
    r = api.post("/api/v1/vms/", NESTED, content_type="application/json")
    assert r.status_code == 400 and "nested too deeply" in r.json()["detail"]


def test_deeply_nested_json_is_400_on_the_token_endpoint_before_login():
    r = APIClient().post("/api/v1/auth/token/", NESTED, content_type="application/json")
    assert r.status_code == 400 and "nested too deeply" in r.json()["detail"]


# -- search --------------------------------------------------------------------------------------------------------


def test_a_nul_byte_in_the_search_is_400_with_a_message(ui, cluster):
    r = ui.get("/search/", {"q": "c\x001"})
    assert r.status_code == 400
    assert "Null characters are not allowed." in r.content.decode()
    assert ui.get("/search/", {"q": "c1"}).status_code == 302  # one hit opens at once, as before


# -- the New VM dialog ---------------------------------------------------------------------------------------------


def test_new_vm_with_a_cluster_that_is_not_an_id_opens_with_none_chosen(ui, cluster):
    r = ui.get("/vms/new/", {"cluster": "abc"})
    assert r.status_code == 200
    assert f'<option value="{cluster.pk}">c1</option>' in r.content.decode()  # offered, not chosen


def test_new_vm_posted_with_a_cluster_that_is_not_an_id_shows_the_error(ui, cluster):
    r = ui.post("/vms/new/", {"name": "vm1", "cluster": "abc", "optimized_for": "server"}, headers=HTMX)
    assert r.status_code == 200
    assert "Select a valid choice" in r.content.decode()
    assert not VirtualMachine.objects.exists()


# -- simulated hosts and the scheduler's CPU limit -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("hp1g=-5", "hp1g must be from 0 to 2147483647."),
        ("hp2m=99999999999999", "hp2m must be from 0 to 2147483647."),
        ("tsc=-1", "tsc must be from 1 to 2147483647."),
        ("memory=99999999999999999999", "memory must be from 1 to 2147483647."),
        ("sockets=-2", "sockets must be from 1 to 4096."),
        ("nodes=1000000", "nodes must be from 0 to 1024."),
        ("sockets=4096&cores=4096", "16777216 CPUs are too many; a simulated host has at most 32768."),
        ("sockets=2&cores=4&nodes=16", "16 NUMA nodes need at least as many cores."),
    ],
)
def test_simulated_hosts_with_negative_or_huge_values_are_400_on_the_uri(api, cluster, query, message):
    r = api.post("/api/v1/hosts/", {"cluster": cluster.pk, "name": "h1", "uri": f"sim://h1?{query}"}, format="json")
    assert r.status_code == 400
    assert r.json() == {"uri": [f"Simulated host URI sim://h1?{query}: {message}"]}
    assert not Host.objects.exists()


def test_the_host_dialog_shows_a_bad_simulated_value_next_to_the_uri(ui, cluster):
    r = ui.post("/hosts/new/", {"cluster": cluster.pk, "name": "h1", "uri": "sim://h1?hp1g=-5"}, headers=HTMX)
    assert r.status_code == 200
    assert "hp1g must be from 0 to 2147483647." in r.content.decode()
    assert not Host.objects.exists()


BEYOND = "sim://big?sockets=4&cores=4096&threads=2"  # 32,768 CPUs, numbered 0-32767


def test_a_host_beyond_the_schedulers_cpu_numbers_is_400_on_the_uri(api, cluster):
    r = api.post("/api/v1/hosts/", {"cluster": cluster.pk, "name": "big", "uri": BEYOND}, format="json")
    assert r.status_code == 400
    assert r.json() == {
        "uri": [f"{BEYOND} has CPUs up to 32767; hpadmin schedules hosts whose CPUs are numbered 0-16383."]
    }
    assert not Host.objects.exists()


def test_the_host_dialog_refuses_a_host_beyond_the_schedulers_cpu_numbers(ui, cluster):
    r = ui.post("/hosts/new/", {"cluster": cluster.pk, "name": "big", "uri": BEYOND}, headers=HTMX)
    assert r.status_code == 200 and "numbered 0-16383" in r.content.decode()
    assert not Host.objects.exists()


def test_a_host_at_the_schedulers_limit_is_added(api, cluster):
    uri = "sim://edge?sockets=2&cores=4096&threads=2"  # CPUs 0-16383
    r = api.post("/api/v1/hosts/", {"cluster": cluster.pk, "name": "edge", "uri": uri}, format="json")
    assert r.status_code == 201, r.content
    assert Host.objects.get().cpus.count() == 16384


# -- VM configuration ----------------------------------------------------------------------------------------------


def test_a_vm_from_another_clusters_template_is_400(api, cluster):
    template = make_template(make_cluster("c2"))
    r = api.post("/api/v1/vms/", {"name": "vm1", "cluster": cluster.pk, "template": template.pk}, format="json")
    assert r.status_code == 400 and r.json() == {"template": ["The template belongs to another cluster."]}
    r = api.post("/api/v1/vms/", {"name": "vm1", "template": template.pk}, format="json")
    assert r.status_code == 201 and r.json()["cluster"] == template.cluster_id  # its own cluster, as before


def test_a_stopped_vm_made_from_a_template_may_still_move_to_another_cluster(api, cluster):
    template = make_template(cluster)
    vm = VirtualMachine.objects.get(pk=api.post("/api/v1/vms/", {"name": "vm1", "template": template.pk}).json()["id"])
    vm.cluster = make_cluster("c2")
    vm.full_clean()  # the template rule is about making a VM, not about where it goes later


def test_an_unknown_key_in_a_vnuma_node_is_400_naming_it(api, cluster):
    node = {"index": 0, "vcpus": [0, 1], "memory_mib": 1024, "bogus": 1}
    r = api.post(
        "/api/v1/vms/", {"name": "vm1", "cluster": cluster.pk, "cores": 2, "numa_nodes": [node]}, format="json"
    )
    assert r.status_code == 400
    assert r.json() == {"numa_nodes": ["vNUMA node #0 has unknown field(s): bogus."]}


@pytest.mark.parametrize("hosts", [{}, {"1": 1}])
def test_placement_hosts_given_as_an_object_is_400(api, cluster, hosts):
    make_host(cluster, "h1")
    body = {"name": "vm1", "cluster": cluster.pk, "placement_policy": {"hosts": hosts}}
    r = api.post("/api/v1/vms/", body, format="json")
    assert r.status_code == 400
    assert r.json() == {"placement_policy": {"hosts": ['Expected a list of items but got type "dict".']}}


# -- page size -----------------------------------------------------------------------------------------------------


def test_the_api_page_size_has_a_maximum(api):
    Event.objects.bulk_create(Event(code="test", message=f"event {i}") for i in range(520))
    page = api.get("/api/v1/events/", {"limit": 10000}).json()
    assert page["count"] == 520 and len(page["results"]) == 500
    assert len(api.get("/api/v1/events/").json()["results"]) == 50  # the default page is unchanged
