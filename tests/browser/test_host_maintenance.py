"""Host maintenance in a real Chromium: the admin opens the Maintenance dialog of a host running HP VMs, sees where
each VM will go and oVirt's warning that they may run slower there, confirms, and watches the host page follow
the migrations (run by a real worker process) until the host is empty and in maintenance, each VM on the host
the dialog named. Screenshots land in artifacts/screenshots/.

Runs only with HPADMIN_BROWSER_TESTS=1 (``make test-browser``); it drives Debian's /usr/bin/chromium.
"""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model

from hpadmin.inventory.models import HostStatus
from hpadmin.operations.models import Evacuation, MigrationJob
from hpadmin.operations.services import start_vm
from hpadmin.vms.models import VirtualMachine
from scheduler.models import Allocation
from tests.browser.test_flow import PASSWORD, dialog_open, log_in, page, shot  # noqa: F401 - fixture
from tests.factories import make_cluster, make_host, make_vm
from tests.operations.test_notifications import Webhook
from tests.operations.test_worker import wait_for, workers  # noqa: F401 - fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(os.environ.get("HPADMIN_BROWSER_TESTS") != "1", reason="set HPADMIN_BROWSER_TESTS=1"),
]


@pytest.fixture
def busy_host(transactional_db):
    """hp-a runs two dedicated HP VMs in 1 GiB pages and a Server VM; hp-b and hp-c are empty and alike."""
    cluster = make_cluster("hp-cluster")
    hosts = [make_host(cluster, name, numa_nodes=2, hp1g=8) for name in ("hp-a", "hp-b", "hp-c")]
    hp = {
        "optimized_for": "high_performance",
        "cpu_pinning_policy": "dedicated",
        "cores": 2,
        "threads": 2,
        "memory_mib": 4096,
        "hugepage_kib": 1048576,
    }
    for name in ("hp-db", "hp-cache"):
        start_vm(make_vm(cluster, name=name, **hp), host=hosts[0])
    start_vm(make_vm(cluster, name="web", optimized_for="server", memory_mib=2048), host=hosts[0])
    get_user_model().objects.create_superuser("admin", "admin@localhost", PASSWORD)
    return hosts


def test_maintenance_of_a_host_with_hp_vms(page, busy_host, workers):  # noqa: F811
    source = busy_host[0]
    log_in(page)
    page.goto("/hosts/")
    assert page.locator("#list a", has_text="Maintenance").count() == 3
    shot(page, "19-host-list-with-actions")
    page.goto(source.get_absolute_url())
    page.locator("#host-status a", has_text="Maintenance").click()
    dialog_open(page, "#maintenance-form")
    dialog = page.locator("#maintenance-form")
    assert "Are you sure you want to place the following host into maintenance mode?" in dialog.inner_text()

    # The plan: every VM with its destination, none on the host itself.
    planned = {}
    for name in ("hp-db", "hp-cache", "web"):
        cell = dialog.locator(f"#maintenance-plan tr[data-vm='{name}'] td").nth(1).inner_text()
        planned[name] = cell.removeprefix("→").strip()
    assert set(planned.values()) <= {"hp-b", "hp-c"}, planned
    slower = dialog.locator("#maintenance-slower").inner_text()
    assert "may result in the performance of the following VM(s) to decrease" in slower
    assert "hp-db (hp-a)" in slower and "hp-cache (hp-a)" in slower and "web" not in slower
    dialog.locator("#id_reason").fill("Firmware update")
    shot(page, "20-maintenance-dialog")

    # OK: a real worker moves the VMs at real-time speed while the page polls the evacuation.
    workers(speed=1.0)
    dialog.locator("button[type=submit]", has_text="OK").click()
    page.wait_for_selector("text=Host hp-a is preparing for maintenance: migrating 3 VMs.")
    evacuation = page.locator("#evacuation")
    evacuation.wait_for()
    assert "User: admin · Reason: Firmware update" in evacuation.inner_text()
    assert evacuation.locator("#evacuation-jobs tr[data-vm]").count() == 3
    shot(page, "21-maintenance-in-progress")

    # The host empties and ends in maintenance; the page shows it without a reload.
    page.locator("#host-status-badge", has_text="Maintenance").filter(has_not_text="Preparing").wait_for(timeout=90_000)
    assert page.locator("#evacuation").count() == 0
    page.locator("#host-body", has_text="Nothing allocated.").wait_for()
    assert page.locator("#host-status a", has_text="Remove").count() == 1
    shot(page, "22-host-in-maintenance")

    source.refresh_from_db()
    assert source.status == HostStatus.MAINTENANCE
    assert not Allocation.objects.filter(host=source).exists()
    assert {vm.name: vm.host.name for vm in VirtualMachine.objects.select_related("host")} == planned
    assert set(MigrationJob.objects.values_list("state", "reason")) == {("succeeded", "maintenance")}
    assert Evacuation.objects.get().state == "done"

    page.goto("/jobs/")
    rows = page.locator("#list tbody").inner_text()
    assert rows.count("User: admin") == 3 and rows.count("Host maintenance") == 3
    shot(page, "23-jobs-of-the-maintenance")


def test_a_maintenance_that_degrades_a_vm_and_its_restore(page, transactional_db, workers, monkeypatch):  # noqa: F811
    """No other host has NUMA: with its cluster's policy "suspend settings and notify", the maintenance moves the
    NUMA-pinned VM with NUMA pinning suspended; the dialog says so first, the VM page shows it amber, the webhook
    is told; Restore settings brings it back once its host is active again."""
    cluster = make_cluster("deg-cluster", degraded_policy="suspend")
    numa = make_host(cluster, "numa-a", numa_nodes=2, cores=4, threads=2, hp2m=2048)
    make_host(cluster, "flat-b", numa_nodes=0, cores=8, threads=2, hp2m=2048)
    nodes = [
        {"index": 0, "vcpus": [0, 1], "memory_mib": 1024, "pinned_to": [0]},
        {"index": 1, "vcpus": [2, 3], "memory_mib": 1024, "pinned_to": [1]},
    ]
    vm = make_vm(
        cluster,
        [numa],
        name="hp-numa",
        optimized_for="high_performance",
        cpu_pinning_policy="manual",
        cpu_pinning="0#1_1#2_2#9_3#10",
        cores=2,
        threads=2,
        memory_mib=2048,
        hugepage_kib=2048,
        numa_nodes=nodes,
    )
    start_vm(vm, host=numa)
    get_user_model().objects.create_superuser("admin", "admin@localhost", PASSWORD)
    hook = Webhook()
    monkeypatch.setenv("HPADMIN_NOTIFY_WEBHOOK_URL", hook.url)
    workers(speed=1.0)
    try:
        log_in(page)
        page.goto(numa.get_absolute_url())
        page.locator("#host-status a", has_text="Maintenance").click()
        dialog_open(page, "#maintenance-form")
        degraded = page.locator("#maintenance-degraded").inner_text()
        assert "hp-numa on flat-b: NUMA pinning suspended" in degraded
        shot(page, "24-maintenance-that-degrades")
        page.locator("#maintenance-form button[type=submit]", has_text="OK").click()
        page.locator("#host-status-badge", has_text="Maintenance").filter(has_not_text="Preparing").wait_for(
            timeout=90_000
        )

        page.goto(vm.get_absolute_url())
        box = page.locator("#vm-degraded")
        box.wait_for()
        assert "On flat-b" in box.inner_text() and "NUMA pinning" in box.inner_text()
        shot(page, "25-vm-running-degraded")
        wait_for(lambda: hook.received, 30, "the webhook")
        assert [body["kind"] for _, _, body in hook.received] == ["vm_degraded"]

        page.goto(numa.get_absolute_url())
        page.locator("#host-status button, #host-status a", has_text="Activate").first.click()
        page.locator("#host-status-badge", has_text="Up").wait_for()
        page.goto(vm.get_absolute_url())
        page.locator("#vm-degraded button", has_text="Restore settings").click()
        page.locator("#vm-degraded").wait_for(state="detached", timeout=60_000)
        shot(page, "26-vm-restored")
        vm.refresh_from_db()
        assert vm.host == numa and not vm.degraded
        wait_for(lambda: len(hook.received) == 2, 30, "the webhook")
        assert hook.received[1][2]["kind"] == "vm_restored"
    finally:
        hook.close()
