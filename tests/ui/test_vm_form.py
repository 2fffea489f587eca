"""The New/Edit dialog: HP profile by htmx, errors next to their fields with the input kept, live checks,
the HP recommendations step, and creation through prepare_new."""

import pytest
from django.urls import reverse

from hpadmin.vms.models import Pool, Template, VirtualMachine
from tests.factories import make_template

from .conftest import HTMX

pytestmark = pytest.mark.django_db


def form_data(cluster, **values):
    """What the dialog posts for a plain server VM; ``values`` override."""
    data = {
        "name": "new-vm",
        "description": "",
        "cluster": cluster.pk,
        "optimized_for": "server",
        "memory_mib": 4096,
        "sockets": 1,
        "cores": 4,
        "threads": 1,
        "start_running_on": "any",
        "migration_mode": "migratable",
        "auto_converge": "inherit",
        "compression": "inherit",
        "cpu_pinning_policy": "none",
        "io_threads": 1,
        "numa_node_count": 0,
        "numa_tune_mode": "strict",
        "ha_priority": 1,
        "watchdog": "none",
        "virtio_rng": "on",
        "memory_balloon": "on",
    }
    data.update(values)
    return {k: v for k, v in data.items() if v is not None}


def test_choosing_high_performance_applies_the_profile_and_says_why(admin_client, cluster):
    data = form_data(cluster, optimized_for="high_performance", _changed="optimized_for", name="typed-name")
    response = admin_client.get(reverse("vm-new"), data, headers=HTMX)
    content = response.content.decode()
    assert response.status_code == 200 and "<html" not in content and 'id="profile-note"' in content
    assert "High Performance settings applied" in content
    assert "Pass-through host CPU</strong> → on: the guest sees the host&#x27;s CPU model and flags" in content
    assert "Allow manual migration only: High Performance VMs are moved only when an admin asks" in content
    form = response.context["form"]
    assert form["cpu_passthrough"].value() is True and form["memory_balloon"].value() is False
    assert form["migration_mode"].value() == "user_migratable" and form["headless"].value() is True
    assert 'value="typed-name"' in content  # nothing typed is lost


def test_back_to_server_the_migration_mode_note_says_why_automatic_moves_are_allowed(admin_client, cluster):
    was_hp = {"migration_mode": "user_migratable", "cpu_passthrough": "on", "_changed": "optimized_for"}
    response = admin_client.get(reverse("vm-new"), form_data(cluster, **was_hp), headers=HTMX)
    note = response.content.decode().split('id="profile-note"')[1].split("</div>")[0]
    assert response.context["form"]["migration_mode"].value() == "migratable"
    assert (
        "Migration mode</strong> → Allow manual and automatic migration: with no pinning settings to keep, "
        "load balancing may move it too." in note
    )
    assert "only when an admin asks" not in note


def test_a_pinning_setting_moves_the_migration_mode_to_manual_only(admin_client, cluster):
    data = form_data(cluster, cpu_passthrough="on", _changed="cpu_passthrough")
    form = admin_client.get(reverse("vm-new"), data, headers=HTMX).context["form"]
    assert form["migration_mode"].value() == "user_migratable"
    assert form["cpu_passthrough"].value() is True


def test_errors_stand_next_to_their_fields_and_keep_the_input(admin_client, cluster):
    data = form_data(cluster, cpu_pinning_policy="manual", cpu_pinning="0#1_1", memory_mib=3000, hugepage_kib=1048576)
    response = admin_client.post(reverse("vm-new"), data, headers=HTMX)
    content = response.content.decode()
    assert response.status_code == 200 and not VirtualMachine.objects.exists()
    errors = response.context["form"].errors
    assert errors["cpu_pinning"][0].startswith("Invalid CPU pinning at character 5")
    assert "not a whole number of 1024 MiB pages" in errors["hugepage_kib"][0]
    feedback = content.split('id="cpu_pinning-feedback"')[1].split("</div>")[0]
    assert "Invalid CPU pinning at character 5" in feedback
    assert 'value="0#1_1"' in content and 'value="3000"' in content and 'value="new-vm"' in content
    assert 'aria-invalid="true"' in content
    assert 'Resource allocation <span class="badge rounded-pill text-bg-danger" title="This tab has errors">' in content


def test_clean_errors_about_vnuma_nodes_show_under_the_node_count(admin_client, cluster):
    response = admin_client.post(reverse("vm-new"), form_data(cluster, numa_node_count=8), headers=HTMX)
    assert "8 vNUMA nodes need at least as many vCPUs" in response.context["form"].errors["numa_node_count"][0]


def test_live_check_of_the_pinning_string(admin_client, cluster):
    url = reverse("vm-new")
    bad = admin_client.get(
        url, form_data(cluster, cpu_pinning_policy="manual", cpu_pinning="0#", _validate="cpu_pinning"), headers=HTMX
    )
    assert "Invalid CPU pinning at character 2" in bad.content.decode() and b"<html" not in bad.content
    missing = admin_client.get(
        url, form_data(cluster, cpu_pinning_policy="manual", cpu_pinning="7#1", _validate="cpu_pinning"), headers=HTMX
    )
    assert "vCPU 7 does not exist: the VM has 4 vCPUs" in missing.content.decode()
    good = admin_client.get(
        url,
        form_data(cluster, cpu_pinning_policy="manual", cpu_pinning="0#2_1#3-4,^3", _validate="cpu_pinning"),
        headers=HTMX,
    )
    assert "vCPU 0 → pCPU 2 · vCPU 1 → pCPU 4" in good.content.decode()


def test_hp_vm_without_pinning_gets_the_recommendations_before_it_is_saved(admin_client, cluster):
    data = form_data(cluster, optimized_for="high_performance", migration_mode="user_migratable", cpu_passthrough="on")
    response = admin_client.post(reverse("vm-new"), data, headers=HTMX)
    content = response.content.decode()
    assert "High Performance Virtual Machine Settings" in content and not VirtualMachine.objects.exists()
    for what in ("CPU pinning", "vNUMA and NUMA pinning", "Hugepages"):
        assert f"<strong>{what}</strong>" in content
    saved = admin_client.post(reverse("vm-new"), {**data, "confirm_hp": "1"}, headers=HTMX)
    vm = VirtualMachine.objects.get(name="new-vm")
    assert saved["HX-Redirect"] == vm.get_absolute_url()
    assert vm.optimized_for == "high_performance" and vm.cpu_passthrough and vm.migration_mode == "user_migratable"


def test_hp_vm_with_everything_recommended_saves_at_once(admin_client, cluster, hosts):
    data = form_data(
        cluster,
        optimized_for="high_performance",
        cpu_pinning_policy="dedicated",
        hugepage_kib=1048576,
        numa_node_count=2,
    )
    response = admin_client.post(reverse("vm-new"), data, headers=HTMX)
    assert "HX-Redirect" in response, response.context["form"].errors
    vm = VirtualMachine.objects.get(name="new-vm")
    assert [n["vcpus"] for n in vm.numa_nodes] == [[0, 1], [2, 3]]
    assert [n["memory_mib"] for n in vm.numa_nodes] == [2048, 2048]


def test_create_from_a_template_uses_prepare_new(admin_client, cluster):
    template = make_template(
        cluster, optimized_for="high_performance", cpu_pinning_policy="dedicated", hugepage_kib=2048
    )
    refreshed = admin_client.get(reverse("vm-new"), {"template": template.pk}, headers=HTMX)
    form = refreshed.context["form"]
    assert form["optimized_for"].value() == "high_performance" and form["hugepage_kib"].value() == 2048
    assert "Settings of template" in refreshed.content.decode()
    data = form_data(
        cluster,
        template=template.pk,
        optimized_for="high_performance",
        hugepage_kib=2048,
        cpu_pinning_policy="dedicated",
        migration_mode="user_migratable",
        numa_node_count=1,
    )
    response = admin_client.post(reverse("vm-new"), {**data, "confirm_hp": "1"}, headers=HTMX)
    assert "HX-Redirect" in response, response.context["form"].errors
    vm = VirtualMachine.objects.get(name="new-vm")
    assert vm.template == template and vm.hugepage_kib == 2048 and vm.cpu_pinning_policy == "dedicated"


def test_edit_keeps_the_numa_pinning_and_clears_hosts_for_any_host(admin_client, hp_vm):
    url = reverse("vm-edit", args=[hp_vm.pk])
    form = admin_client.get(url, headers=HTMX).context["form"]
    assert form["start_running_on"].value() == "specific" and form["numa_node_count"].value() == 2
    data = form_data(
        hp_vm.cluster,
        name="hp-vm",
        optimized_for="high_performance",
        sockets=2,
        cores=2,
        memory_mib=4096,
        hugepage_kib=1048576,
        migration_mode="user_migratable",
        numa_node_count=2,
        start_running_on="specific",
        placement_hosts=[h.pk for h in hp_vm.placement_hosts.all()],
        description="edited",
        confirm_hp="1",
    )
    response = admin_client.post(url, data, headers=HTMX)
    assert "HX-Redirect" in response, response.context["form"].errors
    hp_vm.refresh_from_db()
    assert hp_vm.description == "edited" and [n["pinned_to"] for n in hp_vm.numa_nodes] == [[0], [1]]
    refused = admin_client.post(url, {**data, "start_running_on": "any"}, headers=HTMX)
    assert (
        "NUMA pinning needs the VM to be pinned to at least one host"
        in refused.context["form"].errors["numa_node_count"][0]
    )
    assert hp_vm.placement_hosts.count() == 2


@pytest.mark.parametrize(("url", "model"), [("template-new", Template), ("pool-new", Pool)])
def test_templates_and_pools_use_the_same_dialog(admin_client, cluster, url, model):
    extra = {}
    if model is Pool:
        extra = {"template": make_template(cluster).pk, "size": 2}
    response = admin_client.post(reverse(url), form_data(cluster, name="cfg", **extra), headers=HTMX)
    assert "HX-Redirect" in response, response.context["form"].errors
    assert model.objects.filter(name="cfg").exists()
