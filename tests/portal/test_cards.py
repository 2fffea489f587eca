"""The portal's cards: only the VMs the user may see, what each runs with, and the actions the user may take."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from hpadmin.access.models import Grant
from hpadmin.access.roles import Role
from hpadmin.utilities.templatetags.hpadmin_ui import pinning_words
from hpadmin.vms.models import VirtualMachine
from tests.factories import make_cluster, make_host, make_vm, start_hp_vm

from .conftest import HTMX, grant, make_user

HOME = reverse("portal-home")


def test_cards_show_owned_and_granted_vms_and_never_another_users(alice_client, alice, bob, cluster, hosts):
    make_vm(cluster, name="alice-own", owner=alice)
    shared = make_vm(cluster, name="bob-shared", owner=bob)
    grant(alice, Role.VM_OPERATOR, vm=shared)
    team_cluster = make_cluster("team")
    make_vm(team_cluster, name="team-vm", owner=bob)
    team = Group.objects.create(name="team")
    alice.groups.add(team)
    Grant.objects.create(group=team, role=Role.VM_OPERATOR, cluster=team_cluster)
    make_vm(cluster, name="bob-secret", owner=bob)

    page = alice_client.get(HOME).content.decode()

    for name in ("alice-own", "bob-shared", "team-vm"):
        assert f'data-name="{name}"' in page
    assert "bob-secret" not in page
    assert "Administration portal" not in page


def test_a_card_says_state_host_size_and_pinning_in_words(alice_client, alice, cluster, hosts):
    # Dedicated pinning pins the vNUMA nodes to host nodes itself.
    nodes = [
        {"index": 0, "vcpus": [0, 1], "memory_mib": 1024, "tune_mode": "strict"},
        {"index": 1, "vcpus": [2, 3], "memory_mib": 1024, "tune_mode": "strict"},
    ]
    start_hp_vm(cluster, hosts["one"], owner=alice, name="hp", numa_nodes=nodes)

    card = alice_client.get(HOME).content.decode()

    assert '<span class="badge text-bg-success vm-state">Up</span>' in card
    assert '<dd class="col-8 vm-host">h-one</dd>' in card
    assert "4 vCPUs, 2 GiB" in card
    assert "4 dedicated vCPUs, 2 vNUMA nodes pinned to host nodes, 2 MiB hugepages" in card
    assert hosts["one"].get_absolute_url() not in card  # the host is named, not linked to the admin pages


def test_a_degraded_vm_says_which_settings_its_host_cannot_honour(alice_client, alice, cluster, hosts):
    vm = start_hp_vm(cluster, hosts["one"], owner=alice)
    VirtualMachine.objects.filter(pk=vm.pk).update(
        suspended_settings=[{"setting": "hugepages", "reason": "the host has no 2 MiB pages"}]
    )

    card = alice_client.get(HOME).content.decode()

    assert "Running degraded" in card and "Hugepages (the host has no 2 MiB pages)" in card


def test_actions_follow_the_state_and_the_users_permits(alice_client, alice, bob, cluster, hosts):
    owned = start_hp_vm(cluster, hosts["one"], owner=alice, name="owned")
    operated = start_hp_vm(cluster, hosts["two"], owner=bob, name="operated")
    grant(alice, Role.VM_OPERATOR, vm=operated)
    stopped = make_vm(cluster, name="stopped", owner=alice)

    page = alice_client.get(HOME).content.decode()

    def url(name, vm):
        return reverse(name, args=[vm.pk])

    for vm in (owned, operated):
        for name in ("portal-vm-stop", "portal-vm-reboot", "portal-vm-console"):
            assert url(name, vm) in page
    assert url("portal-vm-start", stopped) in page and url("portal-vm-stop", stopped) not in page
    # Migrating takes VmOperator; an owner holds UserVmManager, which does not include it.
    assert url("portal-vm-migrate", operated) in page
    assert url("portal-vm-migrate", owned) not in page


def test_admins_find_the_way_to_the_administration_portal(client, db):
    client.force_login(make_user("root", is_staff=True))

    assert "Administration portal" in client.get(HOME).content.decode()


def test_without_vms_the_page_says_how_to_get_one(alice_client, alice, cluster):
    page = alice_client.get(HOME).content.decode()
    assert "You have no virtual machines yet" in page and "VmCreator role" in page
    assert reverse("portal-vm-new") not in page

    grant(alice, Role.VM_CREATOR, cluster=cluster)

    page = alice_client.get(HOME).content.decode()
    assert "You have no virtual machines yet" in page and reverse("portal-vm-new") in page


def test_pages_of_24_cards_by_name_and_the_htmx_fragment(alice_client, alice, cluster):
    for i in range(25):
        make_vm(cluster, name=f"vm-{i:02}", owner=alice)

    first = alice_client.get(HOME).content.decode()
    second = alice_client.get(HOME, {"page": 2}, headers=HTMX)

    assert first.count('class="card h-100 vm-card"') == 24
    assert 'data-name="vm-23"' in first and 'data-name="vm-24"' not in first
    assert 'data-name="vm-24"' in second.content.decode() and b"<html" not in second.content
    assert "HX-Request" in second["Vary"]


def test_the_card_list_takes_the_same_number_of_queries_for_3_and_24_vms(
    alice_client, alice, bob, cluster, django_assert_num_queries
):
    """Owned, granted, running (a host to name) and stopped VMs alike."""
    hosts = [make_host(cluster, numa_nodes=2, hp2m=2048) for _ in range(2)]

    def add(count, host):
        start_hp_vm(cluster, host, owner=alice)
        grant(alice, Role.VM_OPERATOR, vm=make_vm(cluster, owner=bob))
        for _ in range(count - 2):
            make_vm(cluster, owner=alice)

    add(3, hosts[0])
    with CaptureQueriesContext(connection) as few:
        assert alice_client.get(HOME).status_code == 200
    add(21, hosts[1])
    with django_assert_num_queries(len(few)):
        assert alice_client.get(HOME).status_code == 200


def test_signing_in_is_required(client, db):
    response = client.get(HOME)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


PINNED_NODE = {"index": 0, "vcpus": [0, 1], "memory_mib": 1024, "pinned_to": [1]}


@pytest.mark.parametrize(
    "values, expected",
    [
        ({}, "2 shared vCPUs"),
        ({"cpu_pinning_policy": "isolate_threads"}, "2 dedicated vCPUs, one per host core"),
        ({"cpu_pinning_policy": "manual", "cpu_pinning": "0#1_1#2"}, "2 vCPUs pinned to chosen host CPUs"),
        (
            {"numa_nodes": [PINNED_NODE], "hugepage_kib": 1048576},
            "2 shared vCPUs, 1 vNUMA node pinned to host nodes, 1 GiB hugepages",
        ),
        ({"numa_nodes": [{**PINNED_NODE, "pinned_to": []}]}, "2 shared vCPUs, 1 vNUMA node"),
    ],
)
def test_pinning_in_words(values, expected):
    assert pinning_words(VirtualMachine(sockets=1, cores=2, threads=1, **values)) == expected
