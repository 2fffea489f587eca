"""Create VM in the portal: from the templates the user may use, within their quota, recorded with the user."""

import pytest
from django.urls import reverse

from hpadmin.access.roles import Role
from hpadmin.operations.models import Event
from hpadmin.vms.models import Quota, VirtualMachine
from tests.factories import HP_VM, make_cluster, make_template, make_vm

from .conftest import HTMX, grant

NEW = reverse("portal-vm-new")


@pytest.fixture
def template(cluster, hosts):
    return make_template(cluster, hosts=[hosts["one"], hosts["two"]], name="hp-small", **HP_VM)


@pytest.fixture
def creator(alice, cluster):
    grant(alice, Role.VM_CREATOR, cluster=cluster)
    return alice


def test_the_form_offers_the_templates_of_the_users_clusters_and_what_they_give(alice_client, creator, template):
    make_template(make_cluster("elsewhere"), name="not-yours")
    Quota.objects.create(user=creator, max_vms=2, max_vcpus=8, max_memory_mib=16384)
    make_vm(template.cluster, owner=creator, cores=2, threads=2, memory_mib=2048)

    page = alice_client.get(NEW).content.decode()
    assert "hp-small (c1)" in page and "not-yours" not in page
    assert "Your quota: 1 of 2 VMs, 4 of 8 vCPUs, 2048 of 16384 MiB." in page

    fields = alice_client.get(NEW, {"template": template.pk, "name": "typed"}, headers=HTMX).content.decode()
    assert "<html" not in fields and 'value="typed"' in fields
    assert "4 vCPUs, 2 GiB" in fields and "4 dedicated vCPUs, 2 MiB hugepages" in fields


def test_create_a_vm_from_a_template(alice_client, creator, template, hosts):
    response = alice_client.post(NEW, {"name": "new-vm", "template": template.pk}, headers=HTMX)

    assert response["HX-Redirect"] == reverse("portal-home")
    vm = VirtualMachine.objects.get(name="new-vm")
    assert (vm.owner, vm.template, vm.cluster, vm.status) == (creator, template, template.cluster, "down")
    assert (vm.vcpus, vm.memory_mib, vm.hugepage_kib, vm.cpu_pinning_policy) == (4, 2048, 2048, "dedicated")
    assert set(vm.placement_hosts.all()) == {hosts["one"], hosts["two"]}
    event = Event.objects.get(code="user_add_vm", vm=vm)
    assert event.user == creator and "alice" in event.message
    page = alice_client.get(reverse("portal-home")).content.decode()
    assert "VM new-vm created from template hp-small." in page and 'data-name="new-vm"' in page


def test_over_quota_nothing_is_created(alice_client, creator, template):
    Quota.objects.create(user=creator, max_vms=2, max_vcpus=6, max_memory_mib=16384)
    make_vm(template.cluster, owner=creator, cores=2, threads=2, memory_mib=2048, name="existing")

    response = alice_client.post(NEW, {"name": "one-too-many", "template": template.pk})

    page = response.content.decode()
    assert response.status_code == 200
    assert "Over alice&#x27;s quota" in page and "8 vCPUs (the quota allows 6)" in page
    assert not VirtualMachine.objects.filter(name="one-too-many").exists()
    assert not Event.objects.filter(code="user_add_vm").exists()


def test_a_taken_name_is_refused_next_to_the_field(alice_client, creator, template):
    make_vm(template.cluster, name="taken")

    fields = alice_client.post(NEW, {"name": "taken", "template": template.pk}, headers=HTMX).content.decode()

    assert 'class="form-control is-invalid"' in fields and "already exists" in fields
    assert VirtualMachine.objects.filter(name="taken").count() == 1


def test_a_template_of_another_cluster_is_refused(alice_client, creator, template):
    foreign = make_template(make_cluster("elsewhere"), name="not-yours")

    fields = alice_client.post(NEW, {"name": "sneaky", "template": foreign.pk}, headers=HTMX).content.decode()

    assert "Select a valid choice" in fields and not VirtualMachine.objects.filter(name="sneaky").exists()


def test_without_the_right_to_create_vms_the_form_is_refused(alice_client, alice, template):
    assert alice_client.get(NEW).status_code == 403
    assert alice_client.post(NEW, {"name": "x", "template": template.pk}).status_code == 403
    assert not VirtualMachine.objects.filter(name="x").exists()
