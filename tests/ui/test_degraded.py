"""Degraded hosts in the Migrate dialog, the confirmation they ask for, and a degraded VM's page, list row and
"Restore settings" action."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from hpadmin.operations.models import MigrationJob
from hpadmin.operations.services import start_vm
from tests.factories import make_cluster, make_host, make_vm, start_hp_vm

from .conftest import HTMX

pytestmark = pytest.mark.django_db

#: Two vNUMA nodes bound to host nodes 0 and 1: a host without NUMA takes the VM only without that binding.
PINNED_NODES = [
    {"index": 0, "vcpus": [0, 1], "memory_mib": 1024, "tune_mode": "strict", "pinned_to": [0]},
    {"index": 1, "vcpus": [2, 3], "memory_mib": 1024, "tune_mode": "strict", "pinned_to": [1]},
]


@pytest.fixture
def cluster():
    return make_cluster("degrade")


@pytest.fixture
def hosts(cluster):
    """The VM's NUMA host, a like one, and a host without NUMA; all with 2 MiB pages."""
    return {
        "home": make_host(cluster, "numa-a", numa_nodes=2, hp2m=2048),
        "twin": make_host(cluster, "numa-b", numa_nodes=2, hp2m=2048),
        "flat": make_host(cluster, "flat", numa_nodes=0, sockets=1, hp2m=2048),
    }


@pytest.fixture
def pinned(cluster, hosts):
    """An HP VM on numa-a whose vNUMA nodes are pinned to host nodes (its CPUs float)."""
    return start_hp_vm(
        cluster,
        hosts["home"],
        hosts=[hosts["home"]],
        name="pinned",
        sockets=2,
        cores=1,
        threads=2,
        cpu_pinning_policy="none",
        numa_nodes=PINNED_NODES,
    )


def row_of(content: str, host) -> str:
    """The destination table's row of ``host``."""
    match = re.search(rf'<tr class="(\w+)" data-name="{host.name}">(.*?)</tr>', content, re.S)
    assert match, f"no row for {host.name}"
    return match.group(1) + " " + match.group(2)


def migrate_degraded(client, vm, host, capture):
    """Migrate ``vm`` to ``host`` through the dialog, confirming the suspensions, and run the job."""
    with capture(execute=True):
        response = client.post(
            reverse("vm-migrate"), {"vm": vm.pk, "destination": host.pk, "allow_degraded": "1"}, headers=HTMX
        )
    assert response["HX-Redirect"] == vm.get_absolute_url()
    vm.refresh_from_db()
    return response


# -- the Migrate dialog -----------------------------------------------------------------------------------------


def test_a_degraded_host_is_listed_in_amber_after_the_hosts_that_fit_whole(admin_client, pinned, hosts):
    response = admin_client.get(reverse("vm-migrate"), {"vm": pinned.pk}, headers=HTMX)
    content = response.content.decode()
    assert [row["host"].name for row in response.context["eligible"]] == ["numa-b", "flat"]
    flat = row_of(content, hosts["flat"])
    assert flat.startswith("degraded ") and "Degraded" in flat
    assert "Suspends: NUMA pinning (" in flat and "does not support NUMA" in flat
    assert f'name="destination" id="dest-{hosts["flat"].pk}"' in flat and "disabled" not in flat
    twin = row_of(content, hosts["twin"])
    assert twin.startswith("eligible ") and "Suspends" not in twin and "best suited" in twin
    # The automatic choice says what the policy does (the cluster's default: refuse), and names no degraded host.
    assert "If no host fits a VM&#x27;s whole configuration, its migration is refused." in content
    assert "(now: numa-b)" in content


def test_the_automatic_choice_explains_a_policy_that_suspends(admin_client, pinned, hosts):
    pinned.degraded_policy = "suspend"
    pinned.save(update_fields=["degraded_policy"])
    content = admin_client.get(reverse("vm-migrate"), {"vm": pinned.pk}, headers=HTMX).content.decode()
    assert "the settings that host cannot honour suspended until a fitting host is free" in content
    assert "its owner and the admins are told" in content


def test_a_degraded_host_asks_for_confirmation_naming_the_settings(
    admin_client, pinned, hosts, django_capture_on_commit_callbacks
):
    flat = hosts["flat"]
    asked = admin_client.post(reverse("vm-migrate"), {"vm": pinned.pk, "destination": flat.pk}, headers=HTMX)
    content = asked.content.decode()
    assert asked.status_code == 200 and "HX-Redirect" not in asked
    warning = content.split('id="migrate-degraded"')[1].split("</div>\n    </div>")[0]
    assert "flat cannot honour every setting" in warning and "NUMA pinning (" in warning
    assert '<button type="submit" name="allow_degraded" value="1"' in warning
    assert "Migrate with settings suspended" in warning
    assert f'value="{flat.pk}" checked' in content  # confirming posts the same destination
    assert not MigrationJob.objects.exists()

    migrate_degraded(admin_client, pinned, flat, django_capture_on_commit_callbacks)
    job = MigrationJob.objects.get(vm=pinned)
    assert job.allow_degraded and job.requested_destination == flat and job.state == "succeeded"
    assert pinned.host == flat and "numa_pinning" in {item["setting"] for item in pinned.suspended_settings}


def test_a_host_that_fits_whole_migrates_without_confirmation(
    admin_client, pinned, hosts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("vm-migrate"), {"vm": pinned.pk, "destination": hosts["twin"].pk}, headers=HTMX
        )
    assert response["HX-Redirect"] == pinned.get_absolute_url()
    job = MigrationJob.objects.get(vm=pinned)
    assert not job.allow_degraded and job.state == "succeeded"
    pinned.refresh_from_db()
    assert pinned.host == hosts["twin"] and not pinned.degraded


def test_for_several_vms_a_host_is_degraded_if_it_is_for_any_of_them(
    admin_client, cluster, pinned, hosts, django_capture_on_commit_callbacks
):
    plain = start_vm(make_vm(cluster, name="plain", memory_mib=1024), host=hosts["home"])
    selection = {"vm": [pinned.pk, plain.pk]}
    content = admin_client.get(reverse("vm-migrate"), selection, headers=HTMX).content.decode()
    flat = row_of(content, hosts["flat"])
    assert flat.startswith("degraded ") and "Suspends: NUMA pinning (" in flat
    suspends = re.findall(r"<li>Suspends: (.*?)</li>", flat)
    assert suspends and all(item.endswith(">for pinned</span>") for item in suspends)
    asked = admin_client.post(reverse("vm-migrate"), {**selection, "destination": hosts["flat"].pk}, headers=HTMX)
    assert "Migrate with settings suspended" in asked.content.decode() and not MigrationJob.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        done = admin_client.post(
            reverse("vm-migrate"),
            {**selection, "destination": hosts["flat"].pk, "allow_degraded": "1"},
            headers=HTMX,
        )
    assert "HX-Redirect" in done
    assert set(MigrationJob.objects.values_list("vm__name", "allow_degraded")) == {("pinned", True), ("plain", True)}


# -- a degraded VM ----------------------------------------------------------------------------------------------


def test_a_degraded_vm_shows_running_degraded_and_restores_its_settings(
    admin_client, pinned, hosts, django_capture_on_commit_callbacks
):
    migrate_degraded(admin_client, pinned, hosts["flat"], django_capture_on_commit_callbacks)
    since = timezone.localtime(pinned.degraded_since).strftime("%Y-%m-%d %H:%M:%S")

    page = admin_client.get(pinned.get_absolute_url()).content.decode()
    box = page.split('id="vm-degraded"')[1].split("</form>")[0]
    assert "Running degraded" in box and "On <strong>flat</strong>" in box and f"since {since}" in box
    assert "<strong>NUMA pinning</strong> suspended: " in box and "does not support NUMA" in box
    restore_url = reverse("vm-restore-settings", args=[pinned.pk])
    assert f'hx-post="{restore_url}"' in box and "Restore settings</button>" in box
    panels = admin_client.get(pinned.get_absolute_url(), headers=HTMX).content.decode()
    assert "<html" not in panels and 'id="vm-degraded"' in panels  # refreshed with the panels

    row = admin_client.get(reverse("vm-list")).content.decode().split(f'id="vm-row-{pinned.pk}"')[1].split("</tr>")[0]
    assert ">Degraded</span>" in row and "NUMA pinning" in row

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(restore_url, headers={**HTMX, "HX-Current-URL": pinned.get_absolute_url()})
    assert response["HX-Redirect"] == pinned.get_absolute_url()
    job = MigrationJob.objects.filter(vm=pinned).latest("created_at")
    assert job.reason == "restore" and job.state == "succeeded"
    pinned.refresh_from_db()
    assert pinned.host in {hosts["home"], hosts["twin"]} and not pinned.degraded
    page = admin_client.get(pinned.get_absolute_url()).content.decode()
    assert "requested: its settings are restored there." in page
    assert 'id="vm-degraded"' not in page
    row = admin_client.get(reverse("vm-list")).content.decode().split(f'id="vm-row-{pinned.pk}"')[1].split("</tr>")[0]
    assert ">Degraded</span>" not in row

    again = admin_client.post(restore_url, follow=True).content.decode()
    assert "runs with its whole configuration: nothing to restore." in again


def test_restore_says_why_when_no_host_fits_the_whole_configuration(
    admin_client, pinned, hosts, django_capture_on_commit_callbacks
):
    migrate_degraded(admin_client, pinned, hosts["flat"], django_capture_on_commit_callbacks)
    for host in (hosts["home"], hosts["twin"]):
        host.status = "maintenance"
        host.save(update_fields=["status"])
    page = admin_client.post(reverse("vm-restore-settings", args=[pinned.pk]), follow=True).content.decode()
    assert "Cannot restore the settings of VM pinned now:" in page
    assert MigrationJob.objects.filter(vm=pinned, reason="restore").count() == 0
    assert 'id="vm-degraded"' in page


def test_only_admins_restore_settings(reader_client, pinned):
    assert reader_client.post(reverse("vm-restore-settings", args=[pinned.pk])).status_code == 403
    assert not MigrationJob.objects.exists()
