"""Start, Stop, the Migrate dialog, live progress with 286, cancel, the jobs panel, and the pages that show
where a VM runs and what it holds there."""

import pytest
from django.urls import reverse

from hpadmin.operations.models import Event, MigrationJob
from hpadmin.operations.services import start_vm
from scheduler.models import Allocation

from .conftest import HTMX

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(hp_vm):
    return start_vm(hp_vm)


def test_start_and_stop_buttons(admin_client, hp_vm):
    page = hp_vm.get_absolute_url()
    response = admin_client.post(reverse("vm-start", args=[hp_vm.pk]), headers={**HTMX, "HX-Current-URL": page})
    assert response["HX-Redirect"] == page
    hp_vm.refresh_from_db()
    assert hp_vm.status == "up" and hp_vm.host.name in {"two-nodes", "four-nodes"}
    again = admin_client.post(reverse("vm-start", args=[hp_vm.pk]), follow=True)
    assert "Cannot run VM hp-vm: it is up." in again.content.decode()
    admin_client.post(reverse("vm-stop", args=[hp_vm.pk]))
    hp_vm.refresh_from_db()
    assert hp_vm.status == "down" and not Allocation.objects.filter(vm=hp_vm).exists()
    assert admin_client.get(reverse("vm-start", args=[hp_vm.pk])).status_code == 405


def test_migrate_dialog_lists_every_host_with_its_verdict(admin_client, running, hosts):
    response = admin_client.get(reverse("vm-migrate"), {"vm": running.pk}, headers=HTMX)
    content = response.content.decode()
    assert response.status_code == 200 and "<html" not in content
    assert "Migrate 1 Virtual Machine to the selected Host." in content
    assert "Select Host Automatically" in content and "recommended" in content
    eligible = [row["host"].name for row in response.context["eligible"]]
    refused = {row["host"].name: row["reasons"] for row in response.context["refused"]}
    other = {"two-nodes", "four-nodes"} - {running.host.name}
    assert eligible == [*other, "no-numa"]  # the host without NUMA takes the VM only with settings suspended
    assert set(refused) == {running.host.name, "in-maintenance"}
    [degraded] = [row for row in response.context["eligible"] if row["host"].name == "no-numa"]
    assert any(label == "NUMA pinning" for _, label, _ in degraded["suspended"])
    assert any(name == "HostStatus" for _, name, _ in refused["in-maintenance"])
    assert any(name == "Migration" for _, name, _ in refused[running.host.name])
    for host in refused:
        assert f'aria-label="{host} (refused)"' in content


def test_migrate_with_automatic_choice_runs_the_job_and_moves_the_vm(
    admin_client, running, django_capture_on_commit_callbacks
):
    source = running.host
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("vm-migrate"), {"vm": running.pk, "destination": ""}, headers=HTMX)
    assert response["HX-Redirect"] == running.get_absolute_url()
    job = MigrationJob.objects.get(vm=running)
    assert job.mode == "automatic" and job.force and job.requested_by.username == "admin"
    running.refresh_from_db()
    assert job.state == "succeeded" and running.host != source
    progress = admin_client.get(reverse("job-progress", args=[job.pk]), headers=HTMX)
    assert progress.status_code == 286 and "job-finished" in progress["HX-Trigger"]
    assert "Succeeded" in progress.content.decode() and "hx-trigger" not in progress.content.decode()
    page = admin_client.get(running.get_absolute_url()).content.decode()
    assert f"Pinning applied on {running.host.name}" in page and "vNUMA 0 (2 GiB) → node" in page
    assert f"{source.name} → {running.host.name}" in page
    assert Event.objects.filter(vm=running, job=job).exists()
    panels = admin_client.get(running.get_absolute_url(), headers=HTMX)
    assert b"<html" not in panels.content and b"Migration history" in panels.content


def test_a_refused_migration_keeps_the_dialog_open_with_the_reason(admin_client, running, hosts):
    response = admin_client.post(
        reverse("vm-migrate"), {"vm": running.pk, "destination": hosts["down"].pk}, headers=HTMX
    )
    content = response.content.decode()
    assert response.status_code == 200 and "HX-Redirect" not in response
    assert "The migration was refused." in content and "in-maintenance: the host is maintenance" in content
    assert not MigrationJob.objects.exists()


def test_migrate_without_a_selection(admin_client):
    content = admin_client.get(reverse("vm-migrate"), headers=HTMX).content.decode()
    assert "Select at least one running VM to migrate." in content


def test_progress_polls_while_the_job_runs_and_cancel_stops_it(admin_client, running):
    job = MigrationJob.objects.create(vm=running, source=running.host, mode="automatic", progress=42)
    progress = admin_client.get(reverse("job-progress", args=[job.pk]) + "?style=cell", headers=HTMX)
    content = progress.content.decode()
    assert progress.status_code == 200 and 'hx-trigger="every 1s"' in content and "42%" in content
    panel = admin_client.get(reverse("jobs-panel"), headers=HTMX)
    assert panel.status_code == 200 and "hp-vm" in panel.content.decode()
    row = admin_client.get(reverse("vm-list")).content.decode()
    assert f'hx-get="/jobs/{job.pk}/progress/?style=cell"' in row
    cancelled = admin_client.post(reverse("job-cancel", args=[job.pk]) + "?style=cell", headers=HTMX)
    assert "jobs-changed" in cancelled["HX-Trigger"] and "Cancelled" in cancelled.content.decode()
    job.refresh_from_db()
    assert job.state == "cancelled"
    assert admin_client.get(reverse("jobs-panel"), headers=HTMX).status_code == 286


def test_read_only_users_cannot_cancel(reader_client, running):
    job = MigrationJob.objects.create(vm=running, source=running.host, mode="automatic")
    assert reader_client.post(reverse("job-cancel", args=[job.pk])).status_code == 403
    job.refresh_from_db()
    assert job.state == "pending"


def test_host_page_shows_who_holds_which_pcpu_and_what_is_free(admin_client, cluster):
    from tests.factories import make_host, make_vm

    host = make_host(cluster, "h", numa_nodes=2, cores=2, threads=2, memory_mib=8192, hp1g=2)
    vm = start_vm(
        make_vm(
            cluster,
            hosts=[host],
            name="dedicated",
            cpu_pinning_policy="dedicated",
            cores=2,
            migration_mode="pinned",
            memory_mib=1024,
            hugepage_kib=1048576,
        )
    )
    response = admin_client.get(reverse("host-detail", args=[host.pk]))
    content = response.content.decode()
    held = Allocation.objects.get(vm=vm).exclusive_cpus
    assert len(held) == 2
    for cpu in held:
        assert f"pCPU {cpu} · dedicated (exclusive)" in content
    nodes = {node.index: node for node in response.context["nodes"]}
    node = next(n for n in nodes.values() if any(p["used"] for p in n.hugepages))
    assert node.hugepages == [{"size_kib": 1048576, "total": 2, "used": 1, "free": 1}]
    assert node.free_mib == 4096 - 2048 - node.allocated_mib
    assert [s["index"] for s in response.context["sockets"]] == [0, 1]


def test_migrate_dialog_for_several_vms_judges_each_host_for_all(admin_client, running, cluster, hosts):
    from tests.factories import make_vm

    other = start_vm(make_vm(cluster, name="small", memory_mib=512))
    response = admin_client.get(reverse("vm-migrate"), {"vm": [running.pk, other.pk]}, headers=HTMX)
    content = response.content.decode()
    assert "Migrate 2 Virtual Machines to the selected Host." in content
    for row in response.context["eligible"]:
        assert {vm.name for vm, _ in row["ranks"]} == {"hp-vm", "small"}
    suspended = {row["host"].name: row["suspended"] for row in response.context["eligible"]}
    assert {vm.name for vm, _, _ in suspended["no-numa"]} == {"hp-vm"}  # only the NUMA-pinned VM is degraded there
    assert "(hp-vm)" in content


def test_a_stopped_vm_in_the_selection_is_listed_and_the_running_one_still_migrates(
    admin_client, running, cluster, django_capture_on_commit_callbacks
):
    from tests.factories import make_vm

    stopped = make_vm(cluster, name="stopped")
    selection = {"vm": [running.pk, stopped.pk]}
    response = admin_client.get(reverse("vm-migrate"), selection, headers=HTMX)
    content = response.content.decode()
    assert "Migrate 1 Virtual Machine to the selected Host." in content
    skipped = content.split('id="migrate-skipped"')[1].split("</div>")[0]
    assert "Not migrated:" in skipped and "Cannot migrate VM stopped: it is not running." in skipped
    other = ({"two-nodes", "four-nodes"} - {running.host.name}).pop()
    assert [row["host"].name for row in response.context["eligible"]] == [other, "no-numa"]
    assert all("stopped" not in str(row["reasons"]) for row in response.context["refused"])
    assert "Select Host Automatically" in content
    assert '<button type="submit" class="btn btn-primary">Migrate</button>' in content

    with django_capture_on_commit_callbacks(execute=True):
        done = admin_client.post(reverse("vm-migrate"), {**selection, "destination": ""}, headers=HTMX)
    assert done["HX-Redirect"] == "/"
    assert MigrationJob.objects.get(vm=running).state == "succeeded"
    assert not MigrationJob.objects.filter(vm=stopped).exists()
    page = admin_client.get("/").content.decode()
    assert "Migration of hp-vm requested." in page
    assert "Not migrated: Cannot migrate VM stopped: it is not running." in page


def test_a_vm_that_may_not_migrate_says_why_and_offers_no_host(admin_client, cluster, hosts):
    from tests.factories import make_vm

    pinned = start_vm(make_vm(cluster, hosts=[hosts["two"]], name="pinned", migration_mode="pinned"))
    content = admin_client.get(reverse("vm-migrate"), {"vm": pinned.pk}, headers=HTMX).content.decode()
    skipped = content.split('id="migrate-skipped"')[1].split("</div>")[0]
    assert "Nothing can be migrated." in skipped
    assert "its migration mode does not allow migration" in skipped
    assert "Select Host Automatically" not in content and "destination-list" not in content
    assert "No available host" not in content
    assert '<button type="submit" class="btn btn-primary" disabled>Migrate</button>' in content


def test_the_vms_own_hosts_come_first_among_the_refused(admin_client, hp_vm, hosts):
    running = start_vm(hp_vm, host=hosts["two"])
    response = admin_client.get(reverse("vm-migrate"), {"vm": running.pk}, headers=HTMX)
    refused = response.context["refused"]
    assert [(row["host"].name, row["own"]) for row in refused] == [
        ("two-nodes", "placement host"),
        ("in-maintenance", ""),
    ]
    assert '<span class="badge text-bg-secondary">placement host</span>' in response.content.decode()


def test_vms_with_no_common_host_still_migrate_with_the_automatic_choice(
    admin_client, django_capture_on_commit_callbacks
):
    from tests.factories import make_cluster, make_host, make_vm

    cluster = make_cluster("swap")
    left, right = (make_host(cluster, name=name, numa_nodes=1, cores=4, threads=1) for name in ("left", "right"))
    one = start_vm(make_vm(cluster, name="one"), host=left)
    two = start_vm(make_vm(cluster, name="two"), host=right)
    selection = {"vm": [one.pk, two.pk]}
    response = admin_client.get(reverse("vm-migrate"), selection, headers=HTMX)
    content = response.content.decode()
    # Each may go only where the other runs: no host takes both, yet each has one.
    assert response.context["eligible"] == [] and response.context["homeless"] == []
    assert "No one host takes all 2 VMs" in content and "No available host" not in content
    assert '<button type="submit" class="btn btn-primary">Migrate</button>' in content

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("vm-migrate"), {**selection, "destination": ""}, headers=HTMX)
    one.refresh_from_db()
    two.refresh_from_db()
    assert (one.host, two.host) == (right, left)


def test_a_vm_no_host_takes_is_named_and_migrate_is_disabled(admin_client, running, hosts):
    for host in hosts.values():
        if host != running.host:
            host.status = "maintenance"
            host.save(update_fields=["status"])
    content = admin_client.get(reverse("vm-migrate"), {"vm": running.pk}, headers=HTMX).content.decode()
    assert "No available host to migrate hp-vm to." in content
    assert '<button type="submit" class="btn btn-primary" disabled>Migrate</button>' in content
