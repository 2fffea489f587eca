"""The policy for a VM no host fits whole, in the VM/template/pool dialog (Host tab, next to the migration mode),
on the detail pages and on the cluster's page."""

import pytest
from django.urls import reverse

from hpadmin.vms.models import Pool, Template, VirtualMachine
from tests.factories import make_template, make_vm

from .conftest import HTMX
from .test_vm_form import form_data

pytestmark = pytest.mark.django_db


def test_the_host_tab_offers_the_policy_after_the_migration_mode(admin_client, cluster):
    form = admin_client.get(reverse("vm-new"), headers=HTMX).context["form"]
    [host_tab] = [tab for tab in form.tabs if tab["key"] == "host"]
    names = [field.name for field in host_tab["fields"]]
    assert names[names.index("migration_mode") + 1] == "degraded_policy"
    assert list(form.fields["degraded_policy"].choices) == [
        ("", "Cluster default"),
        ("refuse", "Refuse the migration"),
        ("suspend", "Suspend settings and notify"),
    ]
    assert form["degraded_policy"].value() == ""


def test_a_new_vm_gets_the_chosen_policy(admin_client, cluster):
    response = admin_client.post(reverse("vm-new"), form_data(cluster, degraded_policy="suspend"), headers=HTMX)
    assert "HX-Redirect" in response, response.context["form"].errors
    vm = VirtualMachine.objects.get(name="new-vm")
    assert vm.degraded_policy == "suspend" and vm.allows_degraded()


def test_editing_back_to_the_cluster_default(admin_client, cluster):
    vm = make_vm(cluster, name="web", degraded_policy="suspend", cores=4, memory_mib=4096)
    data = form_data(cluster, name="web", degraded_policy="", io_threads=vm.io_threads)
    response = admin_client.post(reverse("vm-edit", args=[vm.pk]), data, headers=HTMX)
    assert "HX-Redirect" in response, response.context["form"].errors
    vm.refresh_from_db()
    assert vm.degraded_policy == "" and not vm.allows_degraded()


def test_an_unknown_policy_is_refused_next_to_the_field(admin_client, cluster):
    response = admin_client.post(reverse("vm-new"), form_data(cluster, degraded_policy="ignore"), headers=HTMX)
    assert "degraded_policy" in response.context["form"].errors
    assert not VirtualMachine.objects.exists()


@pytest.mark.parametrize(("url", "model"), [("template-new", Template), ("pool-new", Pool)])
def test_templates_and_pools_take_the_policy(admin_client, cluster, url, model):
    extra = {"template": make_template(cluster).pk, "size": 2} if model is Pool else {}
    data = form_data(cluster, name="cfg", degraded_policy="refuse", **extra)
    response = admin_client.post(reverse(url), data, headers=HTMX)
    assert "HX-Redirect" in response, response.context["form"].errors
    assert model.objects.get(name="cfg").degraded_policy == "refuse"


def test_choosing_a_template_in_the_dialog_brings_its_policy(admin_client, cluster):
    template = make_template(cluster, name="degradable", degraded_policy="suspend")
    response = admin_client.get(reverse("vm-new"), {"template": template.pk, "_changed": "template"}, headers=HTMX)
    assert response.context["form"]["degraded_policy"].value() == "suspend"


def test_detail_pages_show_the_vm_and_the_cluster_policy(admin_client, cluster):
    cluster.degraded_policy = "suspend"
    cluster.save()
    vm = make_vm(cluster, name="web")
    vm_page = admin_client.get(reverse("vm-detail", args=[vm.pk])).content.decode()
    assert "When no host fits the whole configuration</dt>" in vm_page
    assert "Cluster default</dd>" in vm_page
    cluster_page = admin_client.get(reverse("cluster-detail", args=[cluster.pk])).content.decode()
    assert "When no host fits a VM's whole configuration</dt>" in cluster_page
    assert "Suspend settings and notify</dd>" in cluster_page
