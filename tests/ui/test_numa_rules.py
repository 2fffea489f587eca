"""NumaValidator's rules on every page that writes vNUMA nodes or placement hosts: the New/Edit dialog, the NUMA
pinning editor and Django's admin site."""

import json

import pytest
from django.urls import reverse

from hpadmin.vms.models import VirtualMachine
from tests.factories import make_vm

from .conftest import HTMX
from .test_vm_form import form_data

pytestmark = pytest.mark.django_db

NO_NUMA = "Host no-numa does not support NUMA; it cannot take NUMA pinning."


def test_the_dialog_refuses_preferred_mode_for_several_vnuma_nodes(admin_client, cluster):
    data = form_data(cluster, numa_node_count=2, numa_tune_mode="preferred")
    response = admin_client.post(reverse("vm-new"), data, headers=HTMX)
    assert response.context["form"].errors["numa_node_count"] == [
        "Preferred NUMA tune mode is allowed for a single vNUMA node only; the VM has 2."
    ]
    assert not VirtualMachine.objects.exists()
    one = admin_client.post(reverse("vm-new"), {**data, "numa_node_count": 1}, headers=HTMX)
    assert "HX-Redirect" in one, one.context["form"].errors
    assert [n["tune_mode"] for n in VirtualMachine.objects.get().numa_nodes] == ["preferred"]


def test_the_dialog_refuses_moving_numa_pinning_to_a_host_without_numa(admin_client, hp_vm, hosts):
    url = reverse("vm-edit", args=[hp_vm.pk])
    data = form_data(
        hp_vm.cluster,
        name=hp_vm.name,
        optimized_for="high_performance",
        sockets=2,
        cores=2,
        memory_mib=4096,
        hugepage_kib=1048576,
        migration_mode="user_migratable",
        numa_node_count=2,
        start_running_on="specific",
        placement_hosts=[hosts["four"].pk, hosts["flat"].pk],
        confirm_hp="1",
    )
    response = admin_client.post(url, data, headers=HTMX)
    assert response.context["form"].errors["numa_node_count"] == [NO_NUMA]
    assert set(hp_vm.placement_hosts.values_list("name", flat=True)) == {"two-nodes", "four-nodes"}


def test_the_editor_refuses_pinning_on_a_host_without_numa(admin_client, cluster, hosts):
    flat, two = hosts["flat"], hosts["two"]
    nodes = [{"index": 0, "vcpus": [0, 1], "memory_mib": 2048, "tune_mode": "strict", "pinned_to": []}]
    vm = make_vm(cluster, hosts=[flat, two], name="vm", cores=2, memory_mib=2048, numa_nodes=nodes)
    # no-numa is the first host (name order); two-nodes mirrors it.
    response = admin_client.post(
        reverse("vm-numa", args=[vm.pk]), {"tune-0": "strict", f"pin-{flat.pk}-0": "0", f"same-{two.pk}": "on"}
    )
    assert response.context["general"] == [NO_NUMA]
    vm.refresh_from_db()
    assert vm.numa_nodes[0]["pinned_to"] == []


def test_the_editor_saves_pinning_that_leaves_a_host_without_numa_unbound(admin_client, cluster, hosts):
    flat, two = hosts["flat"], hosts["two"]
    nodes = [{"index": 0, "vcpus": [0, 1], "memory_mib": 2048, "tune_mode": "strict", "pinned_to": []}]
    vm = make_vm(cluster, hosts=[flat, two], name="vm", cores=2, memory_mib=2048, numa_nodes=nodes)
    data = {"tune-0": "strict", f"pin-{flat.pk}-0": "", f"same-{two.pk}": "", f"pin-{two.pk}-0": "1"}
    response = admin_client.post(reverse("vm-numa", args=[vm.pk]), data, headers=HTMX)
    assert response["HX-Redirect"] == vm.get_absolute_url(), response.context["general"]
    vm.refresh_from_db()
    assert vm.vnuma()[0].pinning_for(two.pk) == (1,) and vm.vnuma()[0].pinning_for(flat.pk) == ()


def test_the_admin_site_judges_the_placement_hosts_it_is_given(admin_client, hp_vm, hosts):
    url = reverse("admin:vms_virtualmachine_change", args=[hp_vm.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, list | dict) and name != "placement_hosts":
            data[name] = json.dumps(value)
        elif value is not None:
            data[name] = value
    response = admin_client.post(url, {**data, "placement_hosts": [hosts["flat"].pk]})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["numa_nodes"] == [NO_NUMA]
    assert set(hp_vm.placement_hosts.values_list("name", flat=True)) == {"two-nodes", "four-nodes"}
