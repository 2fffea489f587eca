"""The permissions and users pages: what each admin sees there, Add Permission, Remove, quotas, query counts, CSRF."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from hpadmin.access.models import Grant
from hpadmin.access.roles import Role
from hpadmin.operations.models import Event
from hpadmin.vms.models import Quota, VirtualMachine
from tests.access.conftest import make_user
from tests.factories import make_vm
from tests.ui.test_vm_form import form_data

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
PERMISSIONS = reverse("permission-list")
USERS = reverse("user-list")
# One row of the permissions table: its role, user and group cells, and whether it offers Remove.
ROW = re.compile(r'<tr data-role="([^"]+)">\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>(.*?)</tr>', re.S)


def signed_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def rows(response) -> set[tuple[str, str, bool]]:
    """The table's grants as (user or group, role, removable)."""
    assert response.status_code == 200
    return {(user or group, role, "Remove" in rest) for role, user, group, rest in ROW.findall(response.text)}


@pytest.fixture
def viewer(db):
    user = make_user("viewer")
    Grant.objects.create(user=user, role=Role.VIEWER)
    return user


@pytest.fixture
def root(db):
    return make_user("root", is_staff=True)


@pytest.fixture
def some_grants(alice, cadmin, a_vm, b, b_vm):
    """alice operates a-vm and manages b-vm; bob administers cluster b; cadmin also views the system."""
    Grant.objects.create(user=alice, role=Role.VM_OPERATOR, vm=a_vm)
    Grant.objects.create(user=alice, role=Role.USER_VM_MANAGER, vm=b_vm)
    Grant.objects.create(user=make_user("bob"), role=Role.CLUSTER_ADMIN, cluster=b)
    Grant.objects.create(user=cadmin, role=Role.VIEWER)


# -- the permissions list ----------------------------------------------------------------------------------------


def test_a_cluster_admin_lists_their_own_grants_and_those_in_their_cluster(cadmin, some_grants):
    assert rows(signed_in(cadmin).get(PERMISSIONS)) == {
        ("cadmin", "ClusterAdmin", True),
        ("cadmin", "Viewer", False),  # their own, on the system: not theirs to remove
        ("alice", "VmOperator", True),
    }


def test_a_superuser_lists_every_grant(root, some_grants):
    assert rows(signed_in(root).get(PERMISSIONS)) == {
        ("cadmin", "ClusterAdmin", True),
        ("cadmin", "Viewer", True),
        ("alice", "VmOperator", True),
        ("alice", "UserVmManager", True),
        ("bob", "ClusterAdmin", True),
    }


def test_the_permissions_of_one_vm_or_one_cluster(cadmin, a, a_vm, some_grants):
    client = signed_in(cadmin)
    on_vm = client.get(PERMISSIONS, {"vm": a_vm.pk})
    assert rows(on_vm) == {("alice", "VmOperator", True)}
    assert f'href="{reverse("grant-new")}?vm={a_vm.pk}"' in on_vm.text
    assert rows(client.get(PERMISSIONS, {"cluster": a.pk})) == {("cadmin", "ClusterAdmin", True)}


def test_another_clusters_permissions_are_not_found(cadmin, b, b_vm):
    client = signed_in(cadmin)
    for query in ({"cluster": b.pk}, {"vm": b_vm.pk}, {"cluster": "abc"}):
        assert client.get(PERMISSIONS, query).status_code == 404, query


def test_a_viewer_sees_only_their_own_grant_and_no_add_button(viewer, some_grants):
    response = signed_in(viewer).get(PERMISSIONS)
    assert rows(response) == {("viewer", "Viewer", False)}
    assert reverse("grant-new") not in response.text


def test_a_portal_user_is_refused_the_permissions_page(alice, some_grants):
    assert signed_in(alice).get(PERMISSIONS).status_code == 403


# -- Add Permission and Remove -----------------------------------------------------------------------------------


def test_add_permission_on_a_vm_grants_the_role(cadmin, alice, a_vm):
    url = f"{reverse('grant-new')}?vm={a_vm.pk}"
    client = signed_in(cadmin)
    dialog = client.get(url, headers=HTMX)
    assert dialog.status_code == 200 and "Add Permission" in dialog.text and "<html" not in dialog.text
    response = client.post(url, {"user": alice.pk, "role": "VmOperator"}, headers=HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"{PERMISSIONS}?vm={a_vm.pk}"
    grant = Grant.objects.get(user=alice)
    assert (grant.role, grant.vm, grant.granted_by) == ("VmOperator", a_vm, cadmin)
    assert Event.objects.get(code="user_add_permission").user == cadmin
    assert rows(client.get(PERMISSIONS, {"vm": a_vm.pk})) == {("alice", "VmOperator", True)}


def test_add_permission_on_the_system_without_the_right_is_a_form_error(cadmin, alice):
    response = signed_in(cadmin).post(reverse("grant-new"), {"user": alice.pk, "role": "Viewer"}, headers=HTMX)
    assert response.status_code == 200
    assert "You may not grant Viewer on the system." in response.text
    assert not Grant.objects.filter(user=alice).exists()


def test_add_permission_offers_and_accepts_only_clusters_one_may_grant_on(cadmin, alice, a, b):
    client = signed_in(cadmin)
    dialog = client.get(reverse("grant-new"), headers=HTMX)
    clusters = re.search(r'<select name="cluster".*?</select>', dialog.text, re.S).group()
    assert re.findall(r'<option value="(\d+)"', clusters) == [str(a.pk)]
    response = client.post(reverse("grant-new"), {"user": alice.pk, "role": "ClusterAdmin", "cluster": b.pk})
    assert response.status_code == 200
    assert "Select a valid choice" in response.text
    assert not Grant.objects.filter(user=alice).exists()


def test_remove_revokes_the_grant(cadmin, alice, a_vm):
    grant = Grant.objects.create(user=alice, role=Role.VM_OPERATOR, vm=a_vm)
    url = reverse("grant-remove", args=[grant.pk])
    client = signed_in(cadmin)
    dialog = client.get(url, headers=HTMX)
    assert "<strong>VmOperator</strong> on VM a-vm of user alice" in dialog.text
    response = client.post(url)
    assert response.status_code == 302 and response["Location"] == f"{PERMISSIONS}?vm={a_vm.pk}"
    assert not Grant.objects.filter(pk=grant.pk).exists()
    assert Event.objects.get(code="user_remove_permission").user == cadmin


def test_remove_of_a_grant_out_of_ones_scope_is_not_found(cadmin, alice, b_vm):
    grant = Grant.objects.create(user=alice, role=Role.USER_VM_MANAGER, vm=b_vm)
    assert signed_in(cadmin).post(reverse("grant-remove", args=[grant.pk])).status_code == 404
    assert Grant.objects.filter(pk=grant.pk).exists()


# -- users and quotas --------------------------------------------------------------------------------------------


def test_a_viewer_may_not_list_users(viewer):
    assert signed_in(viewer).get(USERS).status_code == 403


def test_a_superuser_lists_users_with_their_quotas(root, alice, cadmin):
    Quota.objects.create(user=alice, max_vms=1, max_vcpus=4, max_memory_mib=4096)
    response = signed_in(root).get(USERS)
    assert response.status_code == 200
    quotas = dict(re.findall(r'<tr data-name="([^"]+)">.*?<td class="quota small">([^<]*)</td>', response.text, re.S))
    assert quotas == {"alice": "1 VMs, 4 vCPUs, 4096 MiB", "cadmin": "none", "root": "none"}
    assert reverse("quota-edit", args=[alice.pk]) in response.text


def test_a_cluster_admin_lists_users_but_may_not_set_quotas(cadmin, alice):
    client = signed_in(cadmin)
    response = client.get(USERS)
    assert response.status_code == 200 and 'data-name="alice"' in response.text
    assert reverse("quota-edit", args=[alice.pk]) not in response.text
    assert client.post(reverse("quota-edit", args=[alice.pk]), {"max_vms": 9}).status_code == 403
    assert not Quota.objects.exists()


def test_the_quota_dialog_saves_the_quota(root, alice):
    url = reverse("quota-edit", args=[alice.pk])
    client = signed_in(root)
    assert "Quota of alice" in client.get(url, headers=HTMX).text
    for vms in (3, 4):  # set, then changed
        response = client.post(url, {"max_vms": vms, "max_vcpus": 6, "max_memory_mib": 8192}, headers=HTMX)
        assert response["HX-Redirect"] == USERS
    quota = Quota.objects.get(user=alice)
    assert (quota.max_vms, quota.max_vcpus, quota.max_memory_mib) == (4, 6, 8192)
    assert Event.objects.filter(code="user_quota_set", user=root).count() == 2


# -- query counts, navigation, CSRF ------------------------------------------------------------------------------


def add_people(n: int, cluster, vm) -> None:
    """``n`` more users, each with a quota, a VM of their own, a role on ``cluster`` and one on ``vm``."""
    User = get_user_model()
    start = User.objects.count()
    for i in range(start, start + n):
        person = User.objects.create(username=f"person-{i}")
        Quota.objects.create(user=person)
        make_vm(cluster, name=f"vm-of-{i}", owner=person)
        Grant.objects.create(user=person, role=Role.VIEWER, cluster=cluster)
        Grant.objects.create(user=person, role=Role.VM_OPERATOR, vm=vm)


@pytest.mark.parametrize("url", [PERMISSIONS, USERS])
def test_query_count_is_the_same_for_5_and_50_people(cadmin, a, a_vm, django_assert_num_queries, url):
    client = signed_in(cadmin)
    add_people(5, a, a_vm)
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    add_people(45, a, a_vm)
    with django_assert_num_queries(len(few)):
        response = client.get(url)
    assert response.text.count("<tr data-") == 50  # a full page


def test_the_permissions_and_users_links_are_for_those_who_may_grant(cadmin, viewer):
    for user, shown in ((cadmin, True), (viewer, False)):
        page = signed_in(user).get(reverse("cluster-list")).text
        assert (f'href="{PERMISSIONS}"' in page, f'href="{USERS}"' in page) == (shown, shown), user


def test_posts_without_a_csrf_token_are_refused(root, alice, a_vm):
    grant = Grant.objects.create(user=alice, role=Role.VM_OPERATOR, vm=a_vm)
    client = signed_in(root, enforce_csrf_checks=True)
    posts = [
        (reverse("grant-new"), {"user": alice.pk, "role": "Viewer"}),
        (reverse("grant-remove", args=[grant.pk]), {}),
        (reverse("quota-edit", args=[alice.pk]), {"max_vms": 1, "max_vcpus": 1, "max_memory_mib": 1}),
    ]
    assert [client.post(url, data).status_code for url, data in posts] == [403, 403, 403]
    assert list(Grant.objects.filter(user=alice)) == [grant]
    assert not Quota.objects.exists()


# -- the New VM dialog ---------------------------------------------------------------------------------------------


def test_a_vm_made_in_the_dialog_belongs_to_its_maker_in_a_cluster_they_may_create_in(cadmin, a, b):
    client = signed_in(cadmin)
    offered = client.get(reverse("vm-new"), headers=HTMX).context["form"].fields["cluster"].queryset
    assert list(offered) == [a]
    refused = client.post(reverse("vm-new"), form_data(b, name="elsewhere"), headers=HTMX)
    assert "Select a valid choice" in refused.text and not VirtualMachine.objects.filter(name="elsewhere").exists()
    made = client.post(reverse("vm-new"), form_data(a, name="mine"), headers=HTMX)
    assert "HX-Redirect" in made, made.context["form"].errors
    assert VirtualMachine.objects.get(name="mine").owner == cadmin


def test_the_dialog_refuses_a_vm_beyond_its_makers_quota(cadmin, a):
    Quota.objects.create(user=cadmin, max_vms=5, max_vcpus=2, max_memory_mib=65536)
    response = signed_in(cadmin).post(reverse("vm-new"), form_data(a, name="big", cores=4), headers=HTMX)
    assert "Over cadmin's quota: cadmin's VMs would hold 4 vCPUs (the quota allows 2)." in html.unescape(response.text)
    assert not VirtualMachine.objects.filter(name="big").exists()
