"""The host lifecycle in the portal: New host (its topology imported; a bad or unreachable URI is an error next to
the field), Edit (the cluster only in maintenance), Refresh capabilities, the Maintenance dialog with the planned
destination of every VM and oVirt's warnings, the evacuation's progress on the host page, Activate and Remove;
and who started each migration on the Jobs page."""

import pytest
from django.urls import reverse

from hpadmin.hypervisor.models import FaultKind, SimulatedFault
from hpadmin.inventory.models import Host, HostStatus
from hpadmin.operations.models import EvacuationState, Event, MigrationJob
from hpadmin.operations.services import start_vm
from tests.factories import make_cluster, make_vm

from .conftest import HTMX

pytestmark = pytest.mark.django_db


def feedback(content: str, field: str) -> str:
    """The error text shown under a dialog's field."""
    return content.split(f'id="{field}-feedback"')[1].split("</div>\n")[0]


def select(content: str, name: str) -> str:
    """The opening tag of a dialog's select."""
    return content.split(f'<select name="{name}"')[1].split(">")[0]


def section(content: str, element_id: str) -> str:
    return content.split(f'id="{element_id}"')[1].split("</div>")[0]


def reload(host: Host) -> Host:
    host.refresh_from_db()
    return host


@pytest.fixture
def hp_running(hp_vm, hosts):
    """The HP VM (pinned to 'two-nodes' and 'four-nodes', dedicated to neither) running on 'two-nodes'."""
    return start_vm(hp_vm, host=hosts["two"])


@pytest.fixture
def server_running(cluster, hosts):
    """A Server VM without pinning settings on 'two-nodes'."""
    return start_vm(make_vm(cluster, name="web", optimized_for="server", memory_mib=1024), host=hosts["two"])


@pytest.fixture
def stuck(cluster, hosts):
    """A VM holding 12 pCPUs of 'two-nodes' exclusively, which no other host has free: 'four-nodes' has 8 of its
    16 left, 'no-numa' 8 in all."""
    shape = {"optimized_for": "server", "cpu_pinning_policy": "dedicated", "threads": 2, "memory_mib": 1024}
    start_vm(make_vm(cluster, name="filler", sockets=2, cores=2, **shape), host=hosts["four"])
    return start_vm(make_vm(cluster, name="stuck", sockets=2, cores=3, **shape), host=hosts["two"])


# -- New host ----------------------------------------------------------------------------------------------------------


def test_new_host_imports_its_topology(admin_client, cluster):
    dialog = admin_client.get(reverse("host-new"), headers=HTMX).content.decode()
    assert "New Host" in dialog and 'name="uri"' in dialog and "<html" not in dialog
    response = admin_client.post(
        reverse("host-new"),
        {"name": "fresh", "cluster": cluster.pk, "uri": "sim://fresh?sockets=2&nodes=2&cores=2&hp1g=4"},
        headers=HTMX,
    )
    host = Host.objects.get(name="fresh")
    assert response["HX-Redirect"] == host.get_absolute_url()
    assert (host.sockets, host.numa_nodes.count(), host.cpus.count()) == (2, 2, 4)
    assert Event.objects.get(code="user_add_host").message == "Host fresh was added by admin."
    page = admin_client.get(host.get_absolute_url()).content.decode()
    assert "Host fresh added." in page and "2 NUMA nodes" in page


def test_a_bare_name_gets_the_drivers_scheme(admin_client, cluster):
    admin_client.post(reverse("host-new"), {"name": "plain", "cluster": cluster.pk, "uri": "plain"}, headers=HTMX)
    assert Host.objects.get(name="plain").uri == "sim://plain"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("qemu+ext://h1/system", "qemu+ext"),  # a transport that runs a program of its own
        ("sim://odd?sockets=2&nodes=3", "3 NUMA nodes do not divide 2 sockets"),  # the hypervisor refuses it
        ("sim://gone", "does not answer"),  # unreachable
    ],
)
def test_a_bad_or_unreachable_uri_is_an_error_next_to_the_field(admin_client, cluster, uri, message):
    SimulatedFault.objects.create(host_uri="sim://gone", kind=FaultKind.UNREACHABLE)
    response = admin_client.post(reverse("host-new"), {"name": "bad", "cluster": cluster.pk, "uri": uri}, headers=HTMX)
    content = response.content.decode()
    assert response.status_code == 200 and "HX-Redirect" not in response
    assert message in feedback(content, "uri")
    assert 'value="bad"' in content  # what was typed stays
    assert not Host.objects.filter(name="bad").exists()


def test_a_uri_or_name_already_registered_is_refused(admin_client, cluster, hosts):
    response = admin_client.post(
        reverse("host-new"), {"name": "two-nodes", "cluster": cluster.pk, "uri": hosts["two"].uri}, headers=HTMX
    )
    content = response.content.decode()
    assert "already exists" in feedback(content, "name") and "already exists" in feedback(content, "uri")
    assert Host.objects.count() == 4


def test_new_host_from_the_cluster_page_has_the_cluster_chosen(admin_client, cluster, hosts):
    make_cluster("other")
    page = admin_client.get(cluster.get_absolute_url()).content.decode()
    url = f"{reverse('host-new')}?cluster={cluster.pk}"
    assert f'hx-get="{url}"' in page
    for host in hosts.values():
        assert f'data-host="{host.name}"' in page
    dialog = admin_client.get(url, headers=HTMX).content.decode()
    assert f'<option value="{cluster.pk}" selected>hp</option>' in dialog


# -- Edit, Refresh -----------------------------------------------------------------------------------------------------


def test_edit_renames_a_host_and_records_the_change(admin_client, hosts):
    host = hosts["two"]
    dialog = admin_client.get(reverse("host-edit", args=[host.pk]), headers=HTMX).content.decode()
    assert "Edit Host two-nodes" in dialog
    assert "disabled" in select(dialog, "cluster")  # up: the cluster stays
    response = admin_client.post(
        reverse("host-edit", args=[host.pk]), {"name": "renamed", "fence_command": ""}, headers=HTMX
    )
    assert response["HX-Redirect"] == host.get_absolute_url()
    assert reload(host).name == "renamed" and host.status == HostStatus.UP
    event = Event.objects.get(code="user_update_host")
    assert event.message == "Host renamed configuration was updated by admin: Name: two-nodes → renamed."


def test_the_cluster_changes_only_in_maintenance(admin_client, cluster, hosts):
    other = make_cluster("other")
    up, parked = hosts["two"], hosts["down"]
    # A host that is up keeps its cluster, whatever the request says.
    admin_client.post(reverse("host-edit", args=[up.pk]), {"name": up.name, "cluster": other.pk}, headers=HTMX)
    assert reload(up).cluster == cluster
    dialog = admin_client.get(reverse("host-edit", args=[parked.pk]), headers=HTMX).content.decode()
    assert "disabled" not in select(dialog, "cluster")
    response = admin_client.post(
        reverse("host-edit", args=[parked.pk]), {"name": parked.name, "cluster": other.pk}, headers=HTMX
    )
    assert response["HX-Redirect"] == parked.get_absolute_url()
    assert reload(parked).cluster == other and parked.status == HostStatus.MAINTENANCE


def test_a_host_that_vms_are_set_to_run_on_keeps_its_cluster(admin_client, cluster, hosts):
    other = make_cluster("other")
    make_vm(cluster, hosts=[hosts["down"]], name="needs-it")
    response = admin_client.post(
        reverse("host-edit", args=[hosts["down"].pk]), {"name": "in-maintenance", "cluster": other.pk}, headers=HTMX
    )
    error = feedback(response.content.decode(), "cluster")
    assert "The following VMs are set to run specifically only on this Host: needs-it." in error
    assert reload(hosts["down"]).cluster == cluster


def test_refresh_reads_the_topology_again_and_a_failure_is_a_message(admin_client, hosts):
    host = hosts["four"]
    host.numa_nodes.all().delete()
    page = host.get_absolute_url()
    response = admin_client.post(reverse("host-refresh", args=[host.pk]), headers={**HTMX, "HX-Current-URL": page})
    assert response["HX-Redirect"] == page
    assert host.numa_nodes.count() == 4
    assert Event.objects.filter(code="host_refreshed_capabilities", host=host).exists()
    SimulatedFault.objects.create(host_uri=host.uri, kind=FaultKind.UNREACHABLE)
    failed = admin_client.post(reverse("host-refresh", args=[host.pk]), follow=True)
    assert failed.status_code == 200
    assert "Failed to refresh the capabilities of host four-nodes." in failed.content.decode()


# -- Maintenance -------------------------------------------------------------------------------------------------------


def test_the_host_page_offers_the_actions_its_status_allows(admin_client, hosts):
    def buttons(host) -> set[str]:
        content = admin_client.get(host.get_absolute_url()).content.decode()
        actions = content.split('class="d-inline-flex gap-1 flex-wrap host-actions"')[1].split("\n</div>")[0]
        return {
            name for name in ("Edit", "Refresh capabilities", "Maintenance", "Activate", "Remove") if name in actions
        }

    assert buttons(hosts["two"]) == {"Edit", "Refresh capabilities", "Maintenance"}
    assert buttons(hosts["down"]) == {"Edit", "Refresh capabilities", "Activate", "Remove"}
    Host.objects.filter(pk=hosts["flat"].pk).update(status="non_operational", status_reason="CPU flag avx512f missing")
    assert buttons(hosts["flat"]) == {"Edit", "Refresh capabilities", "Maintenance", "Activate"}
    page = admin_client.get(hosts["flat"].get_absolute_url()).content.decode()
    assert "Non operational" in page and "CPU flag avx512f missing" in section(page, "host-status-reason")


def test_the_maintenance_dialog_shows_where_each_vm_goes_and_warns_about_hp_vms(
    admin_client, hosts, hp_running, server_running
):
    url = reverse("host-maintenance", args=[hosts["two"].pk])
    response = admin_client.get(url, headers=HTMX)
    content = response.content.decode()
    assert "Are you sure you want to place the following host into maintenance mode?" in content
    plan = {vm.name: host.name for vm, host in response.context["plan"].moves}
    assert plan["hp-vm"] == "four-nodes"  # the only other host it is set to run on
    assert set(plan) == {"hp-vm", "web"} and "two-nodes" not in plan.values()
    for vm, host in plan.items():
        row = content.split(f'<tr data-vm="{vm}">')[1].split("</tr>")[0]
        assert f"→ <strong>{host}</strong>" in row
    slower = section(content, "maintenance-slower")
    assert "may result in the performance of the following VM(s) to decrease" in slower
    assert "hp-vm (two-nodes)" in slower and "web" not in slower
    assert 'name="reason"' in content and '<button type="submit" class="btn btn-primary">OK</button>' in content
    assert "valid-feedback" not in content  # nothing under the reason field until it is sent


def test_a_vm_that_cannot_move_is_listed_with_why(admin_client, hosts, stuck):
    response = admin_client.get(reverse("host-maintenance", args=[hosts["two"].pk]), headers=HTMX)
    stays = section(response.content.decode(), "maintenance-stays")
    assert "<strong>stuck</strong>:" in stays
    assert [vm.name for vm, _ in response.context["plan"].stays] == ["stuck"]


def test_a_do_not_migrate_vm_blocks_maintenance_with_ovirts_message(admin_client, cluster, hosts, hp_running):
    start_vm(make_vm(cluster, hosts=[hosts["two"]], name="db", migration_mode="pinned"), host=hosts["two"])
    url = reverse("host-maintenance", args=[hosts["two"].pk])
    content = admin_client.get(url, headers=HTMX).content.decode()
    message = (
        "Cannot switch the following Hosts to Maintenance mode: two-nodes. One or more running VMs are indicated "
        "as non-migratable. The non-migratable VMs are: db."
    )
    assert message in section(content, "maintenance-blocked")
    assert ">OK</button>" not in content and "maintenance-plan" not in content
    refused = admin_client.post(url, {"reason": ""}, headers=HTMX)
    assert refused.status_code == 200 and "HX-Redirect" not in refused
    assert message in section(refused.content.decode(), "maintenance-error")
    assert reload(hosts["two"]).status == HostStatus.UP and not MigrationJob.objects.exists()


def test_ok_moves_every_vm_where_the_dialog_said_and_the_host_ends_in_maintenance(
    admin_client, hosts, hp_running, server_running, django_capture_on_commit_callbacks
):
    host = hosts["two"]
    url = reverse("host-maintenance", args=[host.pk])
    planned = {vm.pk: dest.pk for vm, dest in admin_client.get(url, headers=HTMX).context["plan"].moves}
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"reason": "BIOS update"}, headers=HTMX)
    assert response["HX-Redirect"] == host.get_absolute_url()
    assert reload(host).status == HostStatus.MAINTENANCE
    for vm in (hp_running, server_running):
        vm.refresh_from_db()
        assert vm.host_id == planned[vm.pk]
    assert Event.objects.filter(
        message="Host two-nodes was switched to Maintenance mode by admin (Reason: BIOS update)."
    )
    page = admin_client.get(host.get_absolute_url()).content.decode()
    assert '<span class="badge text-bg-warning" id="host-status-badge">Maintenance</span>' in page
    assert 'id="evacuation"' not in page and "Nothing allocated." in page


def test_the_host_page_follows_the_evacuation_until_it_ends(
    admin_client, hosts, hp_running, server_running, monkeypatch, django_capture_on_commit_callbacks
):
    """No worker takes the jobs: the page shows the host preparing, with each VM's job, and polls; activating
    the host cancels it, and the last poll stops (286) with the host up again."""
    monkeypatch.setattr("hpadmin.operations.tasks.run_migration.delay", lambda pk: None)
    host = hosts["two"]
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("host-maintenance", args=[host.pk]), {"reason": ""}, headers=HTMX)
    assert reload(host).status == HostStatus.PREPARING_FOR_MAINTENANCE
    page = admin_client.get(host.get_absolute_url()).content.decode()
    assert "Host two-nodes is preparing for maintenance: migrating 2 VMs." in page
    assert "Preparing for maintenance" in section(page, "host-status-badge")
    assert "0 of 2 VMs migrated" in page and "User: admin" in page
    jobs = page.split('id="evacuation-jobs"')[1].split("</table>")[0]
    assert 'data-vm="hp-vm"' in jobs and 'data-vm="web"' in jobs and "four-nodes" in jobs
    status_url = reverse("host-status", args=[host.pk])
    assert f'hx-get="{status_url}" hx-trigger="every 1s"' in page

    polled = admin_client.get(status_url, headers=HTMX)
    assert polled.status_code == 200 and "0 of 2 VMs migrated" in polled.content.decode()
    assert ">Activate<" in polled.content.decode() and ">Maintenance<" not in polled.content.decode()

    admin_client.post(reverse("host-activate", args=[host.pk]), headers=HTMX)
    done = admin_client.get(status_url, headers=HTMX)
    content = done.content.decode()
    assert done.status_code == 286 and "host-changed" in done["HX-Trigger"]
    assert 'id="host-status-badge">Up<' in content and "hx-trigger" not in content
    assert host.evacuations.get().state == EvacuationState.CANCELLED


def test_a_vm_that_could_not_move_is_said_on_the_host_page(
    admin_client, hosts, stuck, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("host-maintenance", args=[hosts["two"].pk]), {"reason": ""}, headers=HTMX)
    assert reload(hosts["two"]).status == HostStatus.PREPARING_FOR_MAINTENANCE
    page = admin_client.get(hosts["two"].get_absolute_url()).content.decode()
    assert "VM stuck could not move: " in section(page, "evacuation-error")


def test_maintenance_of_a_host_in_maintenance_offers_no_ok(admin_client, hosts):
    content = admin_client.get(reverse("host-maintenance", args=[hosts["down"].pk]), headers=HTMX).content.decode()
    assert "Host in-maintenance is maintenance" in section(content, "maintenance-not-allowed")
    assert ">OK</button>" not in content
    refused = admin_client.post(reverse("host-maintenance", args=[hosts["down"].pk]), {"reason": ""}, headers=HTMX)
    assert "Cannot switch host in-maintenance to maintenance mode" in section(
        refused.content.decode(), "maintenance-error"
    )


# -- Activate, Remove --------------------------------------------------------------------------------------------------


def test_activate_brings_a_host_in_maintenance_up(admin_client, hosts):
    host = hosts["down"]
    response = admin_client.post(reverse("host-activate", args=[host.pk]), follow=True)
    assert reload(host).status == HostStatus.UP
    assert "Host in-maintenance was activated." in response.content.decode()
    again = admin_client.post(reverse("host-activate", args=[host.pk]), follow=True)
    assert "Cannot activate host in-maintenance: it is up." in again.content.decode()


def test_remove_is_refused_while_vms_run_on_the_host(admin_client, hosts, hp_running):
    url = reverse("host-remove", args=[hosts["two"].pk])
    response = admin_client.post(url, headers=HTMX)
    assert response.status_code == 200 and "HX-Redirect" not in response
    error = section(response.content.decode(), "remove-error")
    assert "Cannot remove host two-nodes: it is up; switch it to maintenance first." in error
    assert Host.objects.filter(pk=hosts["two"].pk).exists()


def test_remove_a_host_in_maintenance(admin_client, hosts):
    host = hosts["down"]
    dialog = admin_client.get(reverse("host-remove", args=[host.pk]), headers=HTMX).content.decode()
    assert "Are you sure you want to remove the following items?" in dialog and "in-maintenance" in dialog
    response = admin_client.post(reverse("host-remove", args=[host.pk]), headers=HTMX)
    assert response["HX-Redirect"] == reverse("host-list")
    assert not Host.objects.filter(pk=host.pk).exists()
    assert Event.objects.filter(code="host_removed", message="Host in-maintenance was removed by admin.").exists()
    assert "Host in-maintenance was removed." in admin_client.get(reverse("host-list")).content.decode()


# -- lists, access, jobs -----------------------------------------------------------------------------------------------


def test_the_host_list_has_new_host_and_each_hosts_actions(admin_client, hosts):
    content = admin_client.get(reverse("host-list")).content.decode()
    assert f'hx-get="{reverse("host-new")}"' in content
    assert f'hx-get="{reverse("host-maintenance", args=[hosts["two"].pk])}"' in content
    assert f'hx-post="{reverse("host-activate", args=[hosts["down"].pk])}"' in content
    assert f'hx-get="{reverse("host-remove", args=[hosts["down"].pk])}"' in content
    assert f'hx-get="{reverse("host-maintenance", args=[hosts["down"].pk])}"' not in content


def test_dialogs_open_as_fragments_and_as_pages(admin_client, hosts):
    for url in (
        reverse("host-new"),
        reverse("host-edit", args=[hosts["two"].pk]),
        reverse("host-maintenance", args=[hosts["two"].pk]),
        reverse("host-remove", args=[hosts["down"].pk]),
    ):
        page = admin_client.get(url)
        fragment = admin_client.get(url, headers=HTMX)
        assert page.status_code == fragment.status_code == 200, url
        assert b"<html" in page.content and b"<html" not in fragment.content, url
        assert b'class="modal-header"' in fragment.content and "HX-Request" in fragment["Vary"]


def test_read_only_users_see_no_host_actions_and_cannot_use_them(reader_client, hosts):
    content = reader_client.get(hosts["down"].get_absolute_url()).content.decode()
    assert (
        "host-actions" not in content and ">New host<" not in reader_client.get(reverse("host-list")).content.decode()
    )
    two, down = hosts["two"].pk, hosts["down"].pk
    for url in (reverse("host-new"), reverse("host-edit", args=[two]), reverse("host-maintenance", args=[two])):
        assert reader_client.get(url).status_code == 403, url
    for url in (
        reverse("host-refresh", args=[two]),
        reverse("host-maintenance", args=[two]),
        reverse("host-activate", args=[down]),
        reverse("host-remove", args=[down]),
    ):
        assert reader_client.post(url).status_code == 403, url
    assert reload(hosts["two"]).status == HostStatus.UP and reload(hosts["down"]).status == HostStatus.MAINTENANCE


def test_the_jobs_page_says_why_each_vm_moved_and_who_started_it(admin_client, admin_user, cluster, hosts, hp_running):
    other = start_vm(make_vm(cluster, name="auto", memory_mib=512), host=hosts["four"])
    maintenance = {"reason": "maintenance", "reason_text": "Host two-nodes maintenance", "requested_by": admin_user}
    MigrationJob.objects.create(vm=hp_running, source=hosts["two"], mode="automatic", state="succeeded", **maintenance)
    MigrationJob.objects.create(vm=other, source=hosts["four"], mode="automatic", reason="balancing", state="failed")
    rows = admin_client.get(reverse("job-list")).content.decode().split("<tbody>")[1].split("</tr>")
    row = {vm: next(r for r in rows if f">{vm}</a>" in r) for vm in ("hp-vm", "auto")}
    assert "User: admin" in row["hp-vm"] and "Host maintenance: Host two-nodes maintenance" in row["hp-vm"]
    assert "Initiated by system" in row["auto"] and "Load balancing" in row["auto"]
