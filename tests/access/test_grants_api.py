"""Granting and revoking roles, quotas and users over the API: who may, what it records, what the grantee gets."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from hpadmin.access.models import Grant
from hpadmin.access.roles import Role
from hpadmin.operations.models import Event
from hpadmin.vms.models import Quota, VirtualMachine
from tests.access.conftest import make_user
from tests.factories import make_vm

pytestmark = pytest.mark.django_db


def api(user) -> APIClient:
    """A client signed in with the user's token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def root(db):
    return make_user("root", is_staff=True)


def grant(client, **body):
    return client.post("/api/v1/grants/", body, format="json")


def listed_ids(response) -> set[int]:
    assert response.status_code == 200, response.json()
    return {row["id"] for row in response.json()["results"]}


# -- granting and revoking ---------------------------------------------------------------------------------------


def test_a_cluster_admin_grants_vm_operator_on_a_vm_of_their_cluster(cadmin, alice, a_vm):
    r = grant(api(cadmin), role="VmOperator", user=alice.pk, vm=a_vm.pk)
    assert r.status_code == 201, r.json()
    assert r.json()["scope"] == "VM a-vm"
    created = Grant.objects.get(user=alice)
    assert (created.role, created.vm, created.granted_by) == ("VmOperator", a_vm, cadmin)
    event = Event.objects.get(code="user_add_permission")
    assert event.user == cadmin and event.vm == a_vm
    assert event.message == "User alice was granted permission for Role VmOperator on VM a-vm, by cadmin."


@pytest.mark.parametrize(("role", "where"), [("VmOperator", "vm"), ("ClusterAdmin", "cluster")])
def test_a_cluster_admin_cannot_grant_in_another_cluster_which_is_unknown_to_them(cadmin, alice, b_vm, role, where):
    target = b_vm if where == "vm" else b_vm.cluster
    r = grant(api(cadmin), role=role, user=alice.pk, **{where: target.pk})
    assert r.status_code == 400
    assert list(r.json()) == [where]
    assert "does not exist" in r.json()[where][0]
    assert not Grant.objects.filter(user=alice).exists()
    assert not Event.objects.filter(code="user_add_permission").exists()


@pytest.mark.parametrize("role", ["SuperUser", "Viewer"])
def test_a_cluster_admin_cannot_grant_on_the_system(cadmin, alice, role):
    r = grant(api(cadmin), role=role, user=alice.pk)
    assert r.status_code == 403
    assert r.json()["detail"] == f"You may not grant {role} on the system."
    assert not Grant.objects.filter(user=alice).exists()


def test_a_cluster_admin_on_the_system_grants_roles_there_but_not_superuser(alice):
    system_admin = make_user("sysadmin")
    Grant.objects.create(user=system_admin, role=Role.CLUSTER_ADMIN)
    client = api(system_admin)
    r = grant(client, role="SuperUser", user=alice.pk)
    assert r.status_code == 403
    assert r.json()["detail"] == "You may not grant SuperUser on the system."
    assert grant(client, role="Viewer", user=alice.pk).status_code == 201
    assert list(Grant.objects.filter(user=alice).values_list("role", flat=True)) == ["Viewer"]


def test_a_superuser_grants_superuser(root, alice):
    r = grant(api(root), role="SuperUser", user=alice.pk)
    assert r.status_code == 201, r.json()
    assert Grant.objects.get(user=alice).role == "SuperUser"
    assert api(alice).get("/api/v1/users/").json()["count"] == get_user_model().objects.count()


def test_revoke_removes_the_grant_and_records_it(cadmin, alice, a_vm):
    held = Grant.objects.create(user=alice, role=Role.VM_OPERATOR, vm=a_vm)
    r = api(cadmin).delete(f"/api/v1/grants/{held.pk}/")
    assert r.status_code == 204
    assert not Grant.objects.filter(pk=held.pk).exists()
    event = Event.objects.get(code="user_remove_permission")
    assert event.user == cadmin and event.vm == a_vm
    assert event.message == "User alice's permission for Role VmOperator on VM a-vm was removed by cadmin."


def test_a_grant_outside_ones_scope_cannot_be_revoked(cadmin, alice, b_vm):
    elsewhere = Grant.objects.create(user=alice, role=Role.VM_OPERATOR, vm=b_vm)
    on_the_system = Grant.objects.create(user=cadmin, role=Role.VIEWER)  # their own: listed, not theirs to take
    client = api(cadmin)
    assert client.delete(f"/api/v1/grants/{elsewhere.pk}/").status_code == 404
    assert client.delete(f"/api/v1/grants/{on_the_system.pk}/").status_code == 403
    assert Grant.objects.filter(pk__in=[elsewhere.pk, on_the_system.pk]).count() == 2
    assert not Event.objects.filter(code="user_remove_permission").exists()


def test_a_duplicate_grant_is_400_on_role(cadmin, alice, a_vm):
    Grant.objects.create(user=alice, role=Role.VM_OPERATOR, vm=a_vm)
    r = grant(api(cadmin), role="VmOperator", user=alice.pk, vm=a_vm.pk)
    assert r.status_code == 400
    assert "User alice already holds VmOperator on VM a-vm." in r.json()["role"]
    assert Grant.objects.filter(user=alice).count() == 1


def test_a_grant_to_both_a_user_and_a_group_is_400_on_user(cadmin, alice, a):
    team = Group.objects.create(name="team")
    r = grant(api(cadmin), role="Viewer", user=alice.pk, group=team.pk, cluster=a.pk)
    assert r.status_code == 400
    assert r.json()["user"] == ["Grant the role to a user or to a group."]
    assert not Grant.objects.filter(role="Viewer").exists()


def test_cluster_admin_on_one_vm_is_400_on_role(cadmin, alice, a_vm):
    r = grant(api(cadmin), role="ClusterAdmin", user=alice.pk, vm=a_vm.pk)
    assert r.status_code == 400
    assert r.json()["role"][0].startswith("ClusterAdmin needs a cluster or the system")
    assert not Grant.objects.filter(user=alice).exists()


def test_the_grantee_may_act_until_the_grant_is_revoked(cadmin, alice, a_vm):
    admin, user = api(cadmin), api(alice)
    assert user.post(f"/api/v1/vms/{a_vm.pk}/start/").status_code == 404
    held = grant(admin, role="VmOperator", user=alice.pk, vm=a_vm.pk).json()["id"]
    r = user.post(f"/api/v1/vms/{a_vm.pk}/start/")
    assert r.status_code == 200, r.json()
    assert r.json()["status"] == "up"
    assert user.patch(f"/api/v1/vms/{a_vm.pk}/", {"memory_mib": 2048}, format="json").status_code == 403
    assert admin.delete(f"/api/v1/grants/{held}/").status_code == 204
    assert user.post(f"/api/v1/vms/{a_vm.pk}/stop/").status_code == 404
    assert user.get(f"/api/v1/vms/{a_vm.pk}/").status_code == 404
    a_vm.refresh_from_db()
    assert a_vm.status == "up"


def test_grants_listed_are_ones_own_and_those_in_ones_scope(cadmin, alice, root, a, a_vm, b_vm):
    alice_on_a = Grant.objects.create(user=alice, role=Role.VM_OPERATOR, vm=a_vm)
    alice_on_b = Grant.objects.create(user=alice, role=Role.USER_VM_MANAGER, vm=b_vm)
    bob_on_b = Grant.objects.create(user=make_user("bob"), role=Role.CLUSTER_ADMIN, cluster=b_vm.cluster)
    bob_viewer = Grant.objects.create(user=bob_on_b.user, role=Role.VIEWER)
    cadmins_own = Grant.objects.get(user=cadmin)
    assert listed_ids(api(alice).get("/api/v1/grants/")) == {alice_on_a.pk, alice_on_b.pk}
    assert listed_ids(api(cadmin).get("/api/v1/grants/")) == {cadmins_own.pk, alice_on_a.pk}
    everything = {alice_on_a.pk, alice_on_b.pk, bob_on_b.pk, bob_viewer.pk, cadmins_own.pk}
    assert listed_ids(api(root).get("/api/v1/grants/")) == everything
    assert api(alice).get(f"/api/v1/grants/{bob_on_b.pk}/").status_code == 404


# -- quotas ------------------------------------------------------------------------------------------------------


def test_a_user_cannot_set_quotas_and_reads_only_their_own(alice, cadmin):
    own = Quota.objects.create(user=alice, max_vms=3)
    others = Quota.objects.create(user=cadmin, max_vms=5)
    client = api(alice)
    r = client.post("/api/v1/quotas/", {"user": cadmin.pk, "max_vms": 50}, format="json")
    assert r.status_code == 403
    assert client.patch(f"/api/v1/quotas/{own.pk}/", {"max_vms": 50}, format="json").status_code == 403
    assert listed_ids(client.get("/api/v1/quotas/")) == {own.pk}
    assert client.get(f"/api/v1/quotas/{others.pk}/").status_code == 404
    assert sorted(Quota.objects.values_list("max_vms", flat=True)) == [3, 5]
    assert not Event.objects.filter(code="user_quota_set").exists()


def test_a_cluster_admin_cannot_set_quotas(cadmin, alice):
    r = api(cadmin).post("/api/v1/quotas/", {"user": alice.pk, "max_vms": 50}, format="json")
    assert r.status_code == 403
    assert not Quota.objects.exists()


def test_an_administrator_sets_a_quota_and_it_is_recorded(root, alice):
    body = {"user": alice.pk, "max_vms": 1, "max_vcpus": 4, "max_memory_mib": 4096}
    r = api(root).post("/api/v1/quotas/", body, format="json")
    assert r.status_code == 201, r.json()
    assert Quota.objects.filter(user=alice, max_vms=1, max_vcpus=4, max_memory_mib=4096).exists()
    event = Event.objects.get(code="user_quota_set")
    assert event.user == root
    assert event.message == "Quota of alice set to 1 VMs, 4 vCPUs and 4096 MiB of memory by root."


@pytest.fixture
def creator(a, alice):
    """alice, VmCreator on cluster a."""
    Grant.objects.create(user=alice, role=Role.VM_CREATOR, cluster=a)
    return alice


def new_vm(cluster, name: str, **values) -> dict:
    return {"name": name, "cluster": cluster.pk, "cores": 2, "memory_mib": 2048, **values}


def test_a_vm_creator_creates_a_vm_that_they_then_own(creator, a):
    r = api(creator).post("/api/v1/vms/", new_vm(a, "mine"), format="json")
    assert r.status_code == 201, r.json()
    assert VirtualMachine.objects.get(name="mine").owner == creator
    assert api(creator).post(f"/api/v1/vms/{r.json()['id']}/start/").status_code == 200


def test_a_vm_over_the_owners_quota_is_refused(creator, root, a):
    set_by_admin = {"user": creator.pk, "max_vms": 2, "max_vcpus": 3, "max_memory_mib": 8192}
    assert api(root).post("/api/v1/quotas/", set_by_admin, format="json").status_code == 201
    client = api(creator)
    assert client.post("/api/v1/vms/", new_vm(a, "first"), format="json").status_code == 201
    r = client.post("/api/v1/vms/", new_vm(a, "second"), format="json")
    assert r.status_code == 400
    assert r.json() == {
        "non_field_errors": ["Over alice's quota: alice's VMs would hold 4 vCPUs (the quota allows 3)."]
    }
    assert list(VirtualMachine.objects.values_list("name", flat=True)) == ["first"]


def test_only_those_who_may_grant_give_a_new_vm_to_another_owner(creator, cadmin, a):
    bob = make_user("bob")
    r = api(creator).post("/api/v1/vms/", new_vm(a, "for-bob", owner=bob.pk), format="json")
    assert r.status_code == 403
    assert not VirtualMachine.objects.exists()
    r = api(cadmin).post("/api/v1/vms/", new_vm(a, "for-bob", owner=bob.pk), format="json")
    assert r.status_code == 201, r.json()
    assert VirtualMachine.objects.get(name="for-bob").owner == bob


def test_an_owner_cannot_give_their_vm_away(alice, a):
    vm = make_vm(a, name="alices", owner=alice)
    bob = make_user("bob")
    r = api(alice).patch(f"/api/v1/vms/{vm.pk}/", {"owner": bob.pk}, format="json")
    assert r.status_code == 403
    vm.refresh_from_db()
    assert vm.owner == alice


# -- users -------------------------------------------------------------------------------------------------------


def test_those_who_may_grant_list_every_user_the_others_only_themselves(cadmin, alice, root):
    everyone = {cadmin.pk, alice.pk, root.pk}
    assert listed_ids(api(cadmin).get("/api/v1/users/")) == everyone
    assert listed_ids(api(root).get("/api/v1/users/")) == everyone
    assert listed_ids(api(alice).get("/api/v1/users/")) == {alice.pk}
    assert api(alice).get(f"/api/v1/users/{cadmin.pk}/").status_code == 404
