"""The audit trail of configuration: creations, changes (old → new) and removals of VMs, templates, pools, NUMA
pinning, hosts and clusters, and refused starts, through the portal and the API alike, with who did it."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from hpadmin.operations import audit
from hpadmin.operations.models import Event
from hpadmin.operations.services import start_vm
from hpadmin.vms.models import Pool, Template, VirtualMachine
from tests.factories import make_cluster, make_host, make_template, make_vm

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def cluster():
    return make_cluster("c1")


@pytest.fixture
def host(cluster):
    """2 NUMA nodes x 4 cores x 2 threads, 64 GiB, eight 1 GiB pages per node."""
    return make_host(cluster, "h1", numa_nodes=2, cores=4, threads=2, hp1g=8)


@pytest.fixture
def admin(db):
    return get_user_model().objects.create_user("alice", password="pw-alice-1234", is_staff=True)


@pytest.fixture
def portal(client, admin):
    client.force_login(admin)
    return client


@pytest.fixture
def api(admin):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin).key}")
    return client


def events(code: str) -> list[Event]:
    return list(Event.objects.filter(code=code).order_by("pk"))


def the_event(code: str) -> Event:
    [event] = events(code)
    return event


def dialog_values(portal, url: str) -> dict:
    """What the Edit dialog posts when OK is clicked without changing anything."""
    form = portal.get(url, headers=HTMX).context["form"]
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if field.disabled or value is None or value is False:
            continue
        data[name] = "on" if value is True else value
    return data


def new_vm_values(cluster, **values) -> dict:
    """What the New VM dialog posts for a plain server VM."""
    return {
        "name": "web",
        "cluster": cluster.pk,
        "optimized_for": "server",
        "memory_mib": 4096,
        "sockets": 1,
        "cores": 2,
        "threads": 1,
        "start_running_on": "any",
        "migration_mode": "migratable",
        "auto_converge": "inherit",
        "compression": "inherit",
        "cpu_pinning_policy": "none",
        "io_threads": 0,
        "numa_node_count": 0,
        "numa_tune_mode": "strict",
        "ha_priority": 1,
        "watchdog": "none",
        "memory_balloon": "on",
        **values,
    }


# -- the portal ---------------------------------------------------------------------------------------------------


def test_new_vm_in_the_dialog_records_who_created_it(portal, admin, cluster):
    response = portal.post(reverse("vm-new"), new_vm_values(cluster), headers=HTMX)
    assert "HX-Redirect" in response, response.context["form"].errors
    vm = VirtualMachine.objects.get(name="web")
    event = the_event("user_add_vm")
    assert event.message == "VM web was created by alice."
    assert (event.user, event.vm, event.cluster, event.severity) == (admin, vm, cluster, "info")


def test_edit_in_the_dialog_lists_each_changed_setting_old_to_new(portal, admin, cluster, host):
    vm = make_vm(cluster, name="web", memory_mib=4096, cores=2)
    url = reverse("vm-edit", args=[vm.pk])
    data = dialog_values(portal, url)
    data.update(memory_mib=8192, high_availability="on", start_running_on="specific", placement_hosts=[host.pk])
    response = portal.post(url, data, headers=HTMX)
    assert "HX-Redirect" in response, response.context["form"].errors
    event = the_event("user_update_vm")
    assert event.message == (
        "VM web configuration was updated by alice: Memory size (MiB): 4096 → 8192; "
        "Start running on specific hosts: none → h1; Highly available: No → Yes."
    )
    assert (event.user, event.vm, event.severity) == (admin, vm, "info")


def test_ok_without_a_change_records_nothing(portal, cluster):
    vm = make_vm(cluster, name="web")
    url = reverse("vm-edit", args=[vm.pk])
    response = portal.post(url, dialog_values(portal, url), headers=HTMX)
    assert "HX-Redirect" in response, response.context["form"].errors
    assert not Event.objects.exists()


def test_choice_settings_read_as_the_dialog_words_them(portal, cluster):
    vm = make_vm(cluster, name="web")
    url = reverse("vm-edit", args=[vm.pk])
    data = {**dialog_values(portal, url), "migration_mode": "pinned", "watchdog": "i6300esb"}
    data.update(start_running_on="specific", placement_hosts=[make_host(cluster, "h2").pk])
    portal.post(url, data, headers=HTMX)
    message = the_event("user_update_vm").message
    assert "Migration mode: Allow manual and automatic migration → Do not allow migration" in message
    assert "Watchdog: No watchdog → i6300esb" in message


@pytest.mark.parametrize(
    ("kind", "model", "noun", "code"),
    [("template", Template, "Template", "vm_template"), ("pool", Pool, "VM Pool", "vm_pool")],
)
def test_templates_and_pools_in_the_dialog(portal, admin, cluster, kind, model, noun, code):
    extra = {"template": make_template(cluster, name="base").pk, "size": 2} if model is Pool else {}
    response = portal.post(reverse(f"{kind}-new"), new_vm_values(cluster, name="cfg", **extra), headers=HTMX)
    assert "HX-Redirect" in response, response.context["form"].errors
    created = the_event(f"user_add_{code}")
    assert created.message == f"{noun} cfg was created by alice."
    assert (created.user, created.cluster, created.vm) == (admin, cluster, None)

    config = model.objects.get(name="cfg")
    url = reverse(f"{kind}-edit", args=[config.pk])
    portal.post(url, {**dialog_values(portal, url), "description": "for the web tier", "cores": 4}, headers=HTMX)
    updated = the_event(f"user_update_{code}")
    assert updated.message == (
        f"{noun} cfg configuration was updated by alice: Description: none → for the web tier; Cores per socket: 2 → 4."
    )
    assert updated.cluster == cluster


@pytest.fixture
def pinned_vm(cluster, host):
    """An HP VM whose two vNUMA nodes are pinned to host nodes 0 and 1 of h1 and h2."""
    nodes = [
        {"index": 0, "vcpus": [0, 1], "memory_mib": 2048, "tune_mode": "strict", "pinned_to": [0]},
        {"index": 1, "vcpus": [2, 3], "memory_mib": 2048, "tune_mode": "strict", "pinned_to": [1]},
    ]
    second = make_host(cluster, "h2", numa_nodes=2, cores=4, threads=2, hp1g=8)
    return make_vm(
        cluster,
        hosts=[host, second],
        name="db",
        optimized_for="high_performance",
        sockets=2,
        cores=2,
        memory_mib=4096,
        hugepage_kib=1048576,
        numa_nodes=nodes,
    )


def test_numa_pinning_saved_in_the_editor_says_which_node_moved_where(portal, admin, pinned_vm):
    h1, h2 = pinned_vm.placement_hosts.order_by("name")
    data = {"tune-0": "strict", "tune-1": "interleave", f"pin-{h1.pk}-0": "0", f"pin-{h1.pk}-1": "0"}
    data.update({f"pin-{h2.pk}-0": "0", f"pin-{h2.pk}-1": "1"})  # h2 keeps node 1 where it was
    response = portal.post(reverse("vm-numa", args=[pinned_vm.pk]), data, headers=HTMX)
    assert "HX-Redirect" in response
    event = the_event("user_update_vm_numa_pinning")
    assert event.message == (
        "NUMA pinning of VM db was updated by alice: vNUMA node 1: vCPUs 2-3, 2048 MiB, strict, pinned to host "
        "node 1 → vCPUs 2-3, 2048 MiB, interleave, pinned to host node 0, on h2 to host node 1."
    )
    assert (event.user, event.vm) == (admin, pinned_vm)
    assert not events("user_update_vm")


def test_numa_pinning_saved_unchanged_records_nothing(portal, pinned_vm):
    h1, h2 = pinned_vm.placement_hosts.order_by("name")
    data = {"tune-0": "strict", "tune-1": "strict", f"pin-{h1.pk}-0": "0", f"pin-{h1.pk}-1": "1", f"same-{h2.pk}": "on"}
    response = portal.post(reverse("vm-numa", args=[pinned_vm.pk]), data, headers=HTMX)
    assert "HX-Redirect" in response
    assert not Event.objects.exists()


def test_a_start_refused_for_want_of_a_host_is_an_error_with_the_reason(portal, admin, cluster, host):
    vm = make_vm(cluster, name="huge", memory_mib=1024 * 1024)
    response = portal.post(reverse("vm-start", args=[vm.pk]), follow=True)
    [shown] = [str(m) for m in response.context["messages"]]
    event = the_event("user_failed_run_vm")
    assert event.message == f"Failed to run VM huge (User: alice). {shown}"
    assert "h1" in shown
    assert (event.user, event.vm, event.severity) == (admin, vm, "error")


def test_a_start_refused_because_the_vm_runs_is_a_warning(portal, cluster, host):
    vm = start_vm(make_vm(cluster, name="web"))
    response = portal.post(reverse("vm-start", args=[vm.pk]), follow=True)
    [shown] = [str(m) for m in response.context["messages"]]
    event = the_event("user_failed_run_vm")
    assert event.message == f"Failed to run VM web (User: alice). {shown}"
    assert event.severity == "warning"


def test_the_events_page_shows_the_change(portal, cluster):
    portal.post(reverse("vm-new"), new_vm_values(cluster), headers=HTMX)
    content = portal.get(reverse("event-list")).content.decode()
    assert "VM web was created by alice." in content


# -- the API ------------------------------------------------------------------------------------------------------


def test_api_vm_create_update_delete(api, admin, cluster):
    r = api.post("/api/v1/vms/", {"name": "web", "cluster": cluster.pk, "memory_mib": 2048}, format="json")
    assert r.status_code == 201, r.json()
    vm = VirtualMachine.objects.get(name="web")
    created = the_event("user_add_vm")
    assert created.message == "VM web was created by alice." and (created.user, created.vm) == (admin, vm)

    r = api.patch(f"/api/v1/vms/{vm.pk}/", {"memory_mib": 3072, "name": "www", "watchdog": "i6300esb"}, format="json")
    assert r.status_code == 200, r.json()
    updated = the_event("user_update_vm")
    assert updated.message == (
        "VM www configuration was updated by alice: Name: web → www; Memory size (MiB): 2048 → 3072; "
        "Watchdog: No watchdog → i6300esb."
    )

    assert api.delete(f"/api/v1/vms/{vm.pk}/").status_code == 204
    removed = the_event("user_remove_vm")
    assert removed.message == "VM www was removed by alice."
    assert (removed.user, removed.vm, removed.cluster) == (admin, None, cluster)
    # The VM's earlier events stay, their link gone and its name in their words.
    created.refresh_from_db()
    assert created.vm is None and created.message == "VM web was created by alice."


def test_api_update_that_changes_nothing_records_nothing(api, cluster):
    vm = make_vm(cluster, name="web", memory_mib=2048)
    r = api.patch(f"/api/v1/vms/{vm.pk}/", {"memory_mib": 2048, "description": ""}, format="json")
    assert r.status_code == 200, r.json()
    assert not Event.objects.exists()


def test_api_vnuma_change_names_the_nodes(api, cluster, host):
    vm = make_vm(cluster, hosts=[host], name="db", sockets=2, memory_mib=4096)
    nodes = [
        {"index": 0, "vcpus": [0], "memory_mib": 2048, "pinned_to": [0]},
        {"index": 1, "vcpus": [1], "memory_mib": 2048, "pinned_to": [1]},
    ]
    r = api.patch(f"/api/v1/vms/{vm.pk}/", {"numa_nodes": nodes}, format="json")
    assert r.status_code == 200, r.json()
    assert the_event("user_update_vm").message == (
        "VM db configuration was updated by alice: "
        "vNUMA node 0: none → vCPUs 0, 2048 MiB, strict, pinned to host node 0; "
        "vNUMA node 1: none → vCPUs 1, 2048 MiB, strict, pinned to host node 1."
    )


def test_api_edit_of_a_running_vm_says_what_waits_for_its_next_start(api, cluster, host):
    vm = start_vm(make_vm(cluster, name="web", memory_mib=1024))
    r = api.patch(f"/api/v1/vms/{vm.pk}/", {"memory_mib": 2048, "description": "front"}, format="json")
    assert r.status_code == 200, r.json()
    assert the_event("user_update_vm").message == (
        "VM web configuration was updated by alice: Description: none → front; "
        "Memory size (MiB): 1024 → 2048 (at its next start)."
    )
    # Edited again while still running: compared with what waits, not with what runs.
    api.patch(f"/api/v1/vms/{vm.pk}/", {"memory_mib": 4096}, format="json")
    assert events("user_update_vm")[1].message == (
        "VM web configuration was updated by alice: Memory size (MiB): 2048 → 4096 (at its next start)."
    )


@pytest.mark.parametrize(
    ("path", "noun", "code"), [("templates", "Template", "vm_template"), ("pools", "VM Pool", "vm_pool")]
)
def test_api_template_and_pool_create_update_delete(api, admin, cluster, path, noun, code):
    values = {"name": "cfg", "cluster": cluster.pk}
    if path == "pools":
        values = {"name": "cfg", "template": make_template(cluster, name="base").pk, "size": 3}
    r = api.post(f"/api/v1/{path}/", values, format="json")
    assert r.status_code == 201, r.json()
    pk = r.json()["id"]
    assert the_event(f"user_add_{code}").message == f"{noun} cfg was created by alice."
    api.patch(f"/api/v1/{path}/{pk}/", {"hugepage_kib": 2048}, format="json")
    updated = the_event(f"user_update_{code}")
    assert updated.message == f"{noun} cfg configuration was updated by alice: Hugepage size: none → 2 MiB."
    assert (updated.user, updated.cluster) == (admin, cluster)
    assert api.delete(f"/api/v1/{path}/{pk}/").status_code == 204
    assert the_event(f"user_remove_{code}").message == f"{noun} cfg was removed by alice."


def test_api_pool_size_is_audited(api, cluster):
    pool = Pool.objects.create(name="p", cluster=cluster, template=make_template(cluster), size=2)
    api.patch(f"/api/v1/pools/{pool.pk}/", {"size": 5}, format="json")
    assert the_event("user_update_vm_pool").message == "VM Pool p configuration was updated by alice: Size: 2 → 5."


def test_api_cluster_create_update_delete(api, admin):
    r = api.post("/api/v1/clusters/", {"name": "prod"}, format="json")
    assert r.status_code == 201, r.json()
    pk = r.json()["id"]
    added = the_event("user_add_cluster")
    assert added.message == "Cluster prod was added by alice." and added.cluster_id == pk
    api.patch(
        f"/api/v1/clusters/{pk}/", {"threads_as_cores": True, "cpu_level_flags": ["avx2", "sse4_2"]}, format="json"
    )
    assert the_event("user_update_cluster").message == (
        "Cluster prod configuration was updated by alice: CPU level flags: none → avx2, sse4_2; "
        "Count threads as cores: No → Yes."
    )
    assert api.delete(f"/api/v1/clusters/{pk}/").status_code == 204
    removed = the_event("user_remove_cluster")
    assert removed.message == "Cluster prod was removed by alice." and removed.user == admin


def test_a_refused_removal_records_nothing(api, cluster, host):
    assert api.delete(f"/api/v1/clusters/{cluster.pk}/").status_code == 409
    assert not Event.objects.exists()


def test_api_host_add_and_refresh(api, admin, cluster):
    uri = "sim://h9?sockets=2&cores=4&threads=2&nodes=2&memory=65536&hp1g=4"
    r = api.post("/api/v1/hosts/", {"cluster": cluster.pk, "name": "h9", "uri": uri}, format="json")
    assert r.status_code == 201, r.json()
    added = the_event("user_add_host")
    assert added.message == "Host h9 was added by alice."
    assert (added.user, added.host.name, added.cluster) == (admin, "h9", cluster)

    # The hypervisor reports what the record lost: the refresh says what it put back.
    host = added.host
    host.numa_nodes.all().delete()
    host.hugepage_pools.all().delete()
    type(host).objects.filter(pk=host.pk).update(memory_mib=1)
    assert api.post(f"/api/v1/hosts/{host.pk}/refresh/").status_code == 200
    refreshed = the_event("host_refreshed_capabilities")
    assert refreshed.message == (
        "Successfully refreshed the capabilities of host h9 (User: alice): Memory (MiB): 1 → 65536; "
        "NUMA nodes: none → 2; Hugepages: none → node 0: 4 × 1 GiB, node 1: 4 × 1 GiB."
    )
    assert (refreshed.user, refreshed.host) == (admin, host)
    api.post(f"/api/v1/hosts/{host.pk}/refresh/")
    assert events("host_refreshed_capabilities")[1].message == (
        "Successfully refreshed the capabilities of host h9 (User: alice); nothing changed."
    )


def test_api_refused_start_is_recorded(api, admin, cluster, host):
    vm = make_vm(cluster, name="huge", memory_mib=1024 * 1024)
    r = api.post(f"/api/v1/vms/{vm.pk}/start/")
    assert r.status_code == 400
    event = the_event("user_failed_run_vm")
    assert event.message == f"Failed to run VM huge (User: alice). {r.json()['detail']}"
    assert (event.user, event.vm, event.severity) == (admin, vm, "error")
    assert api.get("/api/v1/events/", {"code": "user_failed_run_vm"}).json()["results"][0]["user"] == admin.pk


def test_a_fence_command_is_set_by_superusers_only_and_never_shown_in_the_trail(api, admin, host):
    """The workers run it as a shell command and it may carry its BMC's password: staff may not set it, and the
    event a change records tells only that it is set, with a fingerprint that tells one command from another."""
    command = "ipmitool -I lanplus -H bmc-h1 -U admin -P s3cret chassis power off"
    r = api.patch(f"/api/v1/hosts/{host.pk}/", {"fence_command": command}, format="json")
    assert r.status_code == 400
    assert r.json()["fence_command"] == [
        "Only a superuser may set the fence command: the workers run it as a shell command."
    ]
    assert "fence_command" not in api.get(f"/api/v1/hosts/{host.pk}/").json()

    admin.is_superuser = True
    admin.save()
    assert api.patch(f"/api/v1/hosts/{host.pk}/", {"fence_command": command}, format="json").status_code == 200
    assert api.get(f"/api/v1/hosts/{host.pk}/").json()["fence_command"] == command
    first = the_event("user_update_host").message
    assert "s3cret" not in first and "Fence command: none → set (fingerprint " in first
    api.patch(f"/api/v1/hosts/{host.pk}/", {"fence_command": command.replace("s3cret", "other")}, format="json")
    second = events("user_update_host")[1].message
    assert "other" not in second and second.count("set (fingerprint ") == 2


def test_a_hosts_status_and_load_are_not_configuration(admin, host):
    """What a maintenance or a heartbeat changed while an admin edited the host is left to the host's own events:
    the edit's event lists the edit only."""
    before = audit.snapshot(host)
    host.status, host.status_reason, host.cpu_load_percent = "non_operational", "CPU flag missing", 93.0
    host.name = "h1-renamed"
    host.save()
    assert audit.record_changed(host, before, admin).message == (
        "Host h1-renamed configuration was updated by alice: Name: h1 → h1-renamed."
    )
