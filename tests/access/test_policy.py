"""What each role lets a user see and do, inherited from the system to a cluster to a VM."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from hpadmin.access.models import Grant
from hpadmin.access.policy import Access
from hpadmin.access.roles import Permit, Role
from hpadmin.affinity.models import AffinityGroup
from hpadmin.inventory.models import Cluster, Host
from hpadmin.operations import events
from hpadmin.operations.models import Event, MigrationJob
from hpadmin.vms.models import Pool, Template, VirtualMachine
from tests.factories import make_affinity_group, make_cluster, make_host, make_pool, make_template, make_vm

pytestmark = pytest.mark.django_db

KINDS = [Cluster, Host, VirtualMachine, Template, Pool, AffinityGroup, MigrationJob, Event]


def make_user(name: str, **values):
    return get_user_model().objects.create_user(name, password="pw-1234-pw", **values)


def build_cluster(name: str) -> SimpleNamespace:
    """A cluster with one of everything in it; ``objects`` maps each model to the one of this cluster."""
    cluster = make_cluster(name)
    host = make_host(cluster, name=f"{name}-host")
    vm = make_vm(cluster, name=f"{name}-vm")
    other_vm = make_vm(cluster, name=f"{name}-other-vm")
    template = make_template(cluster, name=f"{name}-template")
    job = MigrationJob.objects.create(vm=vm, mode="migratable")
    objects = {
        Cluster: cluster,
        Host: host,
        VirtualMachine: vm,
        Template: template,
        Pool: make_pool(template, name=f"{name}-pool"),
        AffinityGroup: make_affinity_group(cluster, name=f"{name}-group", vms=[vm]),
        MigrationJob: job,
        Event: events.record("test_vm_event", f"Something happened to {vm.name}.", vm=vm),
    }
    host_event = events.record("test_host_event", f"Something happened to {host.name}.", host=host)
    names = {"cluster": Cluster, "host": Host, "vm": VirtualMachine, "template": Template, "job": MigrationJob}
    named = {name: objects[model] for name, model in names.items()}
    return SimpleNamespace(objects=objects, other_vm=other_vm, event=objects[Event], host_event=host_event, **named)


@pytest.fixture
def a(db):
    return build_cluster("a")


@pytest.fixture
def b(db):
    return build_cluster("b")


def seen(access: Access, model) -> set:
    return set(access.scope(model.objects.all()))


def access_with(role: str, *, cluster=None, vm=None, name: str = "someone") -> Access:
    user = make_user(name)
    Grant.objects.create(user=user, role=role, cluster=cluster, vm=vm)
    return Access.of(user)


# -- inheritance -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", KINDS, ids=lambda model: model.__name__)
def test_a_cluster_admin_sees_everything_in_their_cluster_and_nothing_in_another(a, b, model):
    access = access_with(Role.CLUSTER_ADMIN, cluster=a.cluster)
    visible = seen(access, model)
    assert a.objects[model] in visible
    assert b.objects[model] not in visible


def test_a_cluster_admin_sees_exactly_their_clusters_vms_hosts_and_events(a, b):
    access = access_with(Role.CLUSTER_ADMIN, cluster=a.cluster)
    assert seen(access, VirtualMachine) == {a.vm, a.other_vm}
    assert seen(access, Host) == {a.host}
    assert {a.event, a.host_event} <= seen(access, Event)
    assert not seen(access, Event) & {b.event, b.host_event}


def test_a_cluster_admin_manages_and_grants_in_their_cluster_only(a, b):
    access = access_with(Role.CLUSTER_ADMIN, cluster=a.cluster)
    for permit in (Permit.MANAGE_CLUSTER, Permit.GRANT, Permit.EDIT_VM, Permit.MIGRATE, Permit.OPERATE):
        assert access.can(permit, a.vm), permit
        assert not access.can(permit, b.vm), permit
    assert access.can(Permit.MANAGE_CLUSTER, a.host) and not access.can(Permit.MANAGE_CLUSTER, b.host)
    assert not access.can(Permit.MANAGE_SYSTEM) and not access.can(Permit.GRANT)


def test_a_system_viewer_sees_everything_and_may_do_nothing(a, b):
    access = access_with(Role.VIEWER)
    for model in KINDS:
        assert {a.objects[model], b.objects[model]} <= seen(access, model)
    for obj in (a.cluster, a.host, a.vm, a.template, None):
        assert not [permit for permit in Permit if permit != Permit.VIEW and access.can(permit, obj)]
    assert access.can(Permit.VIEW, b.vm)


def test_a_vm_operator_sees_only_that_vm_and_may_start_and_migrate_it_but_not_edit_it(a, b):
    access = access_with(Role.VM_OPERATOR, vm=a.vm)
    assert seen(access, VirtualMachine) == {a.vm}
    assert seen(access, Host) == seen(access, Cluster) == seen(access, Template) == set()
    assert seen(access, MigrationJob) == {a.job}
    assert seen(access, Event) == {a.event}  # not the host's event, though in the same cluster
    assert access.can(Permit.OPERATE, a.vm) and access.can(Permit.MIGRATE, a.vm)
    assert not access.can(Permit.EDIT_VM, a.vm)
    assert not access.can(Permit.OPERATE, a.other_vm)
    assert set(access.scope(VirtualMachine.objects.all(), Permit.MIGRATE)) == {a.vm}


def test_a_user_vm_manager_may_edit_and_start_the_vm_but_not_migrate_it(a):
    access = access_with(Role.USER_VM_MANAGER, vm=a.vm)
    assert seen(access, VirtualMachine) == {a.vm}
    assert access.can(Permit.EDIT_VM, a.vm) and access.can(Permit.OPERATE, a.vm)
    assert not access.can(Permit.MIGRATE, a.vm)
    assert not access.scope(VirtualMachine.objects.all(), Permit.MIGRATE).exists()


def test_the_owner_of_a_vm_holds_user_vm_manager_on_it_without_a_grant(a):
    owner = make_user("owner")
    a.vm.owner = owner
    a.vm.save()
    access = Access.of(owner)
    assert seen(access, VirtualMachine) == {a.vm}
    assert seen(access, MigrationJob) == {a.job}
    assert access.can(Permit.EDIT_VM, a.vm) and access.can(Permit.OPERATE, a.vm)
    assert not access.can(Permit.MIGRATE, a.vm)
    assert set(access.scope(VirtualMachine.objects.all(), Permit.OPERATE)) == {a.vm}
    assert not access.can(Permit.OPERATE, a.other_vm)


def test_a_role_granted_to_a_group_reaches_its_members_only(a, b):
    operators = Group.objects.create(name="operators")
    Grant.objects.create(group=operators, role=Role.CLUSTER_ADMIN, cluster=a.cluster)
    member, outsider = make_user("member"), make_user("outsider")
    member.groups.add(operators)
    assert seen(Access.of(member), VirtualMachine) == {a.vm, a.other_vm}
    assert Access.of(member).can(Permit.GRANT, a.vm)
    assert seen(Access.of(outsider), VirtualMachine) == set()


def test_a_vm_creator_sees_the_cluster_and_its_templates_but_not_its_vms_or_hosts(a, b):
    access = access_with(Role.VM_CREATOR, cluster=a.cluster)
    assert seen(access, Cluster) == {a.cluster}
    assert seen(access, Template) == {a.template}
    assert seen(access, VirtualMachine) == seen(access, Host) == seen(access, Pool) == set()
    assert access.can(Permit.CREATE_VM, a.cluster) and not access.can(Permit.CREATE_VM, b.cluster)
    assert not access.can(Permit.VIEW, a.vm)


def test_roles_on_a_cluster_and_on_one_of_its_vms_add_up(a):
    user = make_user("both")
    Grant.objects.create(user=user, role=Role.VIEWER, cluster=a.cluster)
    Grant.objects.create(user=user, role=Role.VM_OPERATOR, vm=a.vm)
    access = Access.of(user)
    assert seen(access, VirtualMachine) == {a.vm, a.other_vm}
    assert access.can(Permit.OPERATE, a.vm) and not access.can(Permit.OPERATE, a.other_vm)


# -- read_only, verdicts, inactive users, cost ---------------------------------------------------------------------


def test_read_only_holds_for_viewers_only(a):
    assert access_with(Role.VIEWER, name="viewer").read_only
    assert access_with(Role.VIEWER, cluster=a.cluster, name="cluster-viewer").read_only
    assert not access_with(Role.VM_OPERATOR, vm=a.vm, name="operator").read_only
    assert not access_with(Role.VM_CREATOR, cluster=a.cluster, name="creator").read_only
    assert not Access.of(make_user("admin", is_staff=True)).read_only


def test_visible_verdicts_hide_the_hosts_of_clusters_out_of_view(a, b):
    verdicts = [SimpleNamespace(host=a.host), SimpleNamespace(host=b.host)]
    cluster_admin = access_with(Role.CLUSTER_ADMIN, cluster=a.cluster, name="admin-a")
    assert [v.host for v in cluster_admin.visible_verdicts(verdicts)] == [a.host]
    operator = access_with(Role.VM_OPERATOR, vm=a.vm, name="operator")
    assert operator.visible_verdicts(verdicts) == []
    viewer = access_with(Role.VIEWER, name="viewer")
    assert [v.host for v in viewer.visible_verdicts(verdicts)] == [a.host, b.host]


@pytest.mark.parametrize("is_staff", [False, True])
def test_an_inactive_user_sees_nothing_and_may_do_nothing(a, is_staff):
    user = make_user("gone", is_staff=is_staff)
    Grant.objects.create(user=user, role=Role.SUPER_USER)
    a.vm.owner = user
    a.vm.save()
    user.is_active = False
    user.save()
    access = Access.of(user)
    assert not [model for model in KINDS if seen(access, model)]
    assert access.permits(a.vm) == frozenset()
    assert not access.is_admin and not access.anywhere(Permit.VIEW)


def test_access_of_a_user_costs_one_query_whatever_their_grants(a, django_assert_num_queries):
    user = make_user("many-roles")
    team = Group.objects.create(name="team")
    user.groups.add(team)
    Grant.objects.create(user=user, role=Role.VIEWER)
    Grant.objects.create(user=user, role=Role.VM_OPERATOR, vm=a.vm)
    Grant.objects.create(group=team, role=Role.CLUSTER_ADMIN, cluster=a.cluster)
    with django_assert_num_queries(1):
        access = Access.of(user)
    assert access.can(Permit.GRANT, a.vm)  # the group's role was read in that one query


def test_access_of_an_administrator_costs_no_query(django_assert_num_queries):
    admin = make_user("root", is_staff=True)
    with django_assert_num_queries(0):
        access = Access.of(admin)
    assert access.can(Permit.MANAGE_SYSTEM)
