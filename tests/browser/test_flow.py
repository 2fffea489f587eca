"""The admin's whole flow in a real Chromium: create an HP VM, pin its vNUMA nodes on two hosts of different
NUMA layouts by drag and drop, start it, see the Migrate dialog's verdicts, migrate it automatically and find
it on its new host with its new pinning. Then two dialogs that must not lose things: the first OK click after
typing a pinning, and a migration of a running VM selected with a stopped one. A screenshot of every step lands
in artifacts/screenshots/.

Runs only with HPADMIN_BROWSER_TESTS=1 (``make test-browser``); it drives Debian's /usr/bin/chromium.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from hpadmin.operations.models import Event, MigrationJob
from hpadmin.operations.services import start_vm
from hpadmin.vms.models import VirtualMachine
from scheduler.models import Allocation
from tests.factories import make_cluster, make_host, make_vm
from tests.operations.test_worker import workers  # noqa: F401 - fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(os.environ.get("HPADMIN_BROWSER_TESTS") != "1", reason="set HPADMIN_BROWSER_TESTS=1"),
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
PASSWORD = "browser-test-password"


@pytest.fixture
def inventory(transactional_db):
    """hp-left (2 NUMA nodes) and hp-right (4 nodes) with 1 GiB pages, a host without NUMA, one in maintenance."""
    cluster = make_cluster("hp-cluster")
    hosts = {
        "left": make_host(cluster, "hp-left", numa_nodes=2, hp1g=8),
        "right": make_host(cluster, "hp-right", numa_nodes=4, sockets=4, cores=2, hp1g=8),
        "flat": make_host(cluster, "flat-1", numa_nodes=0, sockets=1),
        "maintenance": make_host(cluster, "hp-maint", numa_nodes=2, hp1g=8, status="maintenance"),
    }
    get_user_model().objects.create_superuser("admin", "admin@localhost", PASSWORD)
    return cluster, hosts


@pytest.fixture
def page(live_server, monkeypatch):
    """A Chromium page; Playwright's sync API runs an event loop, so Django must allow sync calls under it."""
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": 1440, "height": 1000}, base_url=live_server.url, reduced_motion="reduce"
        )
        context.set_default_timeout(15_000)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # Chromium reports what the Content-Security-Policy blocked as console errors.
        page.on(
            "console",
            lambda msg: errors.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None,
        )
        yield page
        browser.close()
    assert not errors, errors


def log_in(page) -> None:
    page.goto("/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/")


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


@contextmanager
def refresh_after(page, changed: str):
    """Wait for the dialog's re-render that a change of field ``changed`` triggers, swapped in and settled
    (typing into a field the swap is about to replace would be lost)."""
    with page.expect_response(lambda r: f"_changed={changed}" in r.url):
        yield
    settled(page)


def wait_until(page, expression: str, timeout_s: float = 15) -> None:
    """Wait until the JavaScript ``expression`` holds in the page. (Playwright's wait_for_function compiles its
    predicate inside the page, which hpadmin's Content-Security-Policy refuses: no eval. evaluate() is not.)"""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout_s} s: {expression}"
        page.wait_for_timeout(50)


def settled(page) -> None:
    wait_until(page, "!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")


def drag(page, source, target) -> None:
    """Drag with real mouse moves, as SortableJS (fallback mode) expects them."""
    start = source.bounding_box()
    end = target.bounding_box()
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + 12)
    page.mouse.down()
    page.mouse.move(start["x"] + start["width"] / 2 + 5, start["y"] + 20, steps=5)
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=20)
    page.mouse.up()


def dialog_open(page, selector: str) -> None:
    """Wait until the dialog holding ``selector`` is shown and has stopped moving."""
    page.locator(selector).wait_for()
    wait_until(page, "getComputedStyle(document.querySelector('#modal .modal-dialog')).transform === 'none'")


def host_section(page, name: str):
    return page.locator(f"section.numa-host[data-host='{name}']")


def zone(page, host: str, node: int | str):
    return host_section(page, host).locator(f"[data-numa-zone][data-node='{node}']")


def chip(page, host: str, vnode: int):
    return host_section(page, host).locator(f".vnuma-chip[data-vnode='{vnode}']")


def test_hp_vm_from_creation_to_migration(page, inventory, workers):  # noqa: F811
    cluster, hosts = inventory

    # Log in.
    page.goto("/login/")
    shot(page, "01-login")
    log_in(page)

    # New VM: choosing "High Performance" applies the profile at once and says what changed and why.
    page.goto("/vms/")
    page.click("text=New VM")
    dialog = page.locator("#modal-content")
    dialog.locator("#id_name").fill("hp-flow")
    with refresh_after(page, "cluster"):
        dialog.locator("#id_cluster").select_option(str(cluster.pk))
    with refresh_after(page, "optimized_for"):
        dialog.locator("#id_optimized_for").select_option("high_performance")
    note = dialog.locator("#profile-note")
    note.wait_for()
    assert "Pass-through host CPU" in note.inner_text() and "Allow manual migration only" in note.inner_text()
    assert dialog.locator("#id_name").input_value() == "hp-flow"
    shot(page, "02-new-vm-high-performance-defaults")

    dialog.locator("#tab-system").click()
    dialog.locator("#id_memory_mib").fill("4096")
    dialog.locator("#id_hugepage_kib").select_option("1048576")
    dialog.locator("#id_sockets").fill("2")
    dialog.locator("#id_cores").fill("2")

    # The pinning string is checked against clean() while it is typed.
    dialog.locator("#tab-resources").click()
    with refresh_after(page, "cpu_pinning_policy"):
        dialog.locator("#id_cpu_pinning_policy").select_option("manual")
    with page.expect_response(lambda r: "_validate=cpu_pinning" in r.url):
        dialog.locator("#id_cpu_pinning").fill("0#1_1")
    page.locator("#cpu_pinning-feedback .invalid-feedback", has_text="Invalid CPU pinning at character 5").wait_for()
    settled(page)
    dialog.locator("#id_cpu_pinning").fill("0#1_1#2-3,^3")
    page.locator("#cpu_pinning-feedback .valid-feedback", has_text="vCPU 1 → pCPU 2").wait_for()
    shot(page, "03-live-pinning-check")
    dialog.locator("#id_cpu_pinning").fill("")
    with refresh_after(page, "cpu_pinning_policy"):
        dialog.locator("#id_cpu_pinning_policy").select_option("none")

    dialog.locator("#tab-host").click()
    assert dialog.locator("#id_cpu_passthrough").is_checked()
    assert dialog.locator("#id_migration_mode").input_value() == "user_migratable"
    dialog.locator("#id_start_running_on_1").check()
    dialog.locator("#id_placement_hosts").select_option([str(hosts["left"].pk), str(hosts["right"].pk)])
    shot(page, "04-new-vm-host-tab")
    dialog.locator("#tab-numa").click()
    dialog.locator("#id_numa_node_count").fill("2")
    dialog.locator("button[type=submit]", has_text="OK").click()

    # On save, the HP recommendations: CPU and NUMA pinning are still missing.
    recommendations = dialog.locator("#hp-recommendations")
    recommendations.wait_for()
    assert "High Performance Virtual Machine Settings" in recommendations.inner_text()
    assert "CPU pinning" in recommendations.inner_text() and "NUMA pinning" in recommendations.inner_text()
    shot(page, "05-hp-recommendations-on-save")
    recommendations.locator("text=Save anyway").click()
    page.wait_for_url("**/vms/*/")
    vm = VirtualMachine.objects.get(name="hp-flow")
    assert vm.optimized_for == "high_performance" and vm.migration_mode == "user_migratable" and vm.cpu_passthrough
    assert [n["memory_mib"] for n in vm.numa_nodes] == [2048, 2048]

    # NUMA pinning: on hp-left vNUMA 0 -> node 0 and 1 -> node 1; hp-right gets its own: vNUMA 1 -> node 3.
    page.click("text=NUMA pinning…")
    dialog_open(page, "#numa-form")
    for vnode, node in ((0, 0), (1, 1)):
        with page.expect_response(lambda r: "/numa/" in r.url and r.request.method == "POST"):
            drag(page, chip(page, "hp-left", vnode), zone(page, "hp-left", node))
        zone(page, "hp-left", node).locator(f".vnuma-chip[data-vnode='{vnode}']").wait_for()
    assert zone(page, "hp-right", 1).locator(".vnuma-chip.disabled[data-vnode='1']").count() == 1
    with page.expect_response(lambda r: "/numa/" in r.url and r.request.method == "POST"):
        page.locator(f"#same-{hosts['right'].pk}").uncheck()
    chip(page, "hp-right", 1).locator("select:not([disabled])").wait_for()
    with page.expect_response(lambda r: "/numa/" in r.url and r.request.method == "POST"):
        drag(page, chip(page, "hp-right", 1), zone(page, "hp-right", 3))
    zone(page, "hp-right", 3).locator(".vnuma-chip[data-vnode='1']").wait_for()
    assert "The pinning fits hp-left" in host_section(page, "hp-left").inner_text()
    assert "The pinning fits hp-right" in host_section(page, "hp-right").inner_text()
    shot(page, "06-numa-pinning-editor")
    page.locator("#numa-form button[type=submit]").click()
    page.wait_for_selector("text=NUMA pinning of hp-flow saved.")
    vm.refresh_from_db()
    assert [n["pinned_to"] for n in vm.numa_nodes] == [[0], [1]]
    assert [n["pinned_to_by_host"] for n in vm.numa_nodes] == [{}, {str(hosts["right"].pk): [3]}]
    shot(page, "07-numa-pinning-saved")

    # Start it.
    page.locator("#vm-panels button", has_text="Start").click()
    page.wait_for_selector("#vm-status:text('Up')")
    vm.refresh_from_db()
    source = vm.host
    assert source in (hosts["left"], hosts["right"])
    shot(page, "08-vm-started")

    # The Migrate dialog: eligible hosts with their rank, the host without NUMA in amber with what it would
    # suspend, refused ones with every filter's reason.
    page.locator("#vm-panels a", has_text="Migrate").click()
    migrate = page.locator("#migrate-form")
    migrate.wait_for()
    text = migrate.inner_text()
    assert "Select Host Automatically" in text
    target = hosts["right"] if source == hosts["left"] else hosts["left"]
    assert migrate.locator(f"tr.eligible[data-name='{target.name}']").count() == 1
    assert "NUMA pinning" in migrate.locator("tr.degraded[data-name='flat-1']").inner_text()
    for name, reason in (
        ("hp-maint", "the host is in maintenance"),
        (source.name, "it currently runs the VM"),
    ):
        row = migrate.locator(f"tr.refused[data-name='{name}']")
        assert row.count() == 1 and reason in row.inner_text(), (name, row.inner_text())
    shot(page, "09-migrate-dialog")

    # Migrate with the automatic choice: a real worker process carries it out at real-time speed (4 GiB over
    # a simulated 10 GbE link takes a few seconds) while the page polls the job's progress to its end.
    assert migrate.locator("#destination-auto").is_checked()
    workers(speed=1.0)
    migrate.locator("button[type=submit]", has_text="Migrate").click()
    page.wait_for_selector("text=Migration of hp-flow requested.")
    history = page.locator("#vm-panels")
    page.locator(".job-progress", has_text="Migrating").first.wait_for(timeout=30_000)
    shot(page, "10-migration-in-progress")
    history.locator(".job-progress .badge", has_text="Succeeded").wait_for(timeout=60_000)
    shot(page, "11-migration-finished")

    # The VM runs on its new host with the pinning of that host.
    job = MigrationJob.objects.get(vm=vm)
    vm.refresh_from_db()
    assert job.state == "succeeded" and job.mode == "automatic" and vm.host == target
    assert page.locator("#vm-host").inner_text() == target.name
    mapping = Allocation.objects.get(vm=vm, state="active").numa_mapping
    expected = {"0": 0, "1": 3 if target == hosts["right"] else 1}
    assert mapping == expected
    applied = page.locator("#applied-pinning").inner_text()
    assert f"Pinning applied on {target.name}" in applied
    assert f"vNUMA 1 (2 GiB) → node {expected['1']}" in applied
    assert Event.objects.filter(vm=vm, job=job).exists()
    assert f"{source.name} → {target.name}" in history.inner_text()

    page.goto(target.get_absolute_url())
    page.locator(".topology").wait_for()
    assert "hp-flow" in page.locator("body").inner_text()
    shot(page, "12-new-host-topology")
    page.goto("/events/")
    assert "hp-flow" in page.locator("#list").inner_text()
    shot(page, "13-events")


def slow_click(page, button, field: str) -> None:
    """Click as a person does: the button stays pressed until the check that the field's blur sent has been
    answered and its feedback shown."""
    box = button.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    with page.expect_response(lambda r: f"_validate={field}" in r.url):
        page.mouse.down()
    page.wait_for_timeout(100)  # htmx swaps and settles the answer
    page.mouse.up()


def test_the_first_ok_click_after_typing_a_pinning_saves(page, inventory):
    """The blur of a typed pinning field sends its check as the mouse goes down on OK, and its answer shows
    below the field before a person lets the button go: the click must still submit the dialog, in New and in
    Edit."""
    cluster, _ = inventory
    log_in(page)
    dialog = page.locator("#modal-content")
    ok = dialog.locator("button[type=submit]", has_text="OK")

    page.goto("/vms/")
    page.click("text=New VM")
    # Keys typed while the dialog still fades in go where Bootstrap moves the focus once it is shown.
    dialog_open(page, "#vm-form")
    dialog.locator("#id_name").press_sequentially("typed-new")
    with refresh_after(page, "cluster"):
        dialog.locator("#id_cluster").select_option(str(cluster.pk))
    dialog.locator("#tab-resources").click()
    with refresh_after(page, "cpu_pinning_policy"):
        dialog.locator("#id_cpu_pinning_policy").select_option("manual")
    dialog.locator("#id_cpu_pinning").press_sequentially("0#1")
    slow_click(page, ok, "cpu_pinning")
    page.wait_for_selector("text=Virtual machine typed-new created.")
    assert VirtualMachine.objects.get(name="typed-new").cpu_pinning == "0#1"

    vm = make_vm(cluster, name="typed-edit")
    page.goto(vm.get_absolute_url())
    page.locator(f"a[hx-get='{reverse('vm-edit', args=[vm.pk])}']").click()
    dialog_open(page, "#vm-form")
    dialog.locator("#tab-resources").click()
    dialog.locator("#id_emulator_pinning").press_sequentially("0-1")
    slow_click(page, ok, "emulator_pinning")
    page.wait_for_selector("text=Virtual machine typed-edit saved.")
    vm.refresh_from_db()
    assert vm.emulator_pinning == "0-1"


def test_a_stopped_vm_in_the_selection_does_not_block_the_running_one(page, inventory):
    cluster, hosts = inventory
    mover = start_vm(make_vm(cluster, name="mover"), host=hosts["left"])
    sleeper = make_vm(cluster, name="sleeper")
    log_in(page)
    page.goto("/vms/")
    for vm in (mover, sleeper):
        page.locator(f"#list input[name=vm][value='{vm.pk}']").check()
    page.locator("button", has_text="Migrate selected").click()
    dialog_open(page, "#migrate-form")
    migrate = page.locator("#migrate-form")
    assert "Migrate 1 Virtual Machine to the selected Host." in migrate.inner_text()
    assert "Cannot migrate VM sleeper: it is not running." in migrate.locator("#migrate-skipped").inner_text()
    assert migrate.locator("#destination-auto").is_checked()
    assert migrate.locator("tr.eligible[data-name='hp-right']").count() == 1
    shot(page, "14-migrate-with-a-stopped-vm")

    migrate.locator("button[type=submit]", has_text="Migrate").click()
    page.wait_for_selector("text=Migration of mover requested.")
    page.wait_for_selector("text=Not migrated: Cannot migrate VM sleeper: it is not running.")
    mover.refresh_from_db()
    assert MigrationJob.objects.get(vm=mover).state == "succeeded" and mover.host != hosts["left"]
    assert not MigrationJob.objects.filter(vm=sleeper).exists()
    shot(page, "15-mixed-migration-done")
