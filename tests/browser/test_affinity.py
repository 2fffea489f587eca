"""Affinity in a real Chromium: the admin creates an enforcing negative VM-to-VM group of two running VMs through
the New group dialog, then opens the Migrate dialog of one of them and sees the other's host refused, naming the
group. Screenshots land in artifacts/screenshots/.

Runs only with HPADMIN_BROWSER_TESTS=1 (``make test-browser``); it drives Debian's /usr/bin/chromium.
"""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model

from hpadmin.affinity.models import AffinityGroup
from hpadmin.operations.models import Event
from hpadmin.operations.services import start_vm
from tests.browser.test_flow import PASSWORD, dialog_open, log_in, page, refresh_after, shot  # noqa: F401 - fixture
from tests.factories import make_cluster, make_host, make_vm

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(os.environ.get("HPADMIN_BROWSER_TESTS") != "1", reason="set HPADMIN_BROWSER_TESTS=1"),
]


@pytest.fixture
def databases(transactional_db):
    """db-1 runs on db-a, db-2 on db-b; db-c is empty. Another cluster's VM must not be offered."""
    cluster = make_cluster("db-cluster")
    hosts = [make_host(cluster, name, numa_nodes=2) for name in ("db-a", "db-b", "db-c")]
    vms = [
        start_vm(make_vm(cluster, name=f"db-{i}", optimized_for="server", memory_mib=1024), host=host)
        for i, host in ((1, hosts[0]), (2, hosts[1]))
    ]
    make_vm(make_cluster("elsewhere"), name="web-1")
    get_user_model().objects.create_superuser("admin", "admin@localhost", PASSWORD)
    return cluster, hosts, vms


def test_negative_group_refuses_the_other_vms_host_in_the_migrate_dialog(page, databases):  # noqa: F811
    cluster, hosts, vms = databases
    log_in(page)

    # New group from the Affinity page: choosing the cluster offers its VMs only.
    page.locator("nav a", has_text="Affinity").click()
    page.wait_for_url("**/affinity/groups/")
    page.locator("a", has_text="New group").click()
    dialog_open(page, "#affinity-group-form")
    dialog = page.locator("#affinity-group-form")
    dialog.locator("#id_name").fill("db-spread")
    dialog.locator("#id_description").fill("Database replicas on different hosts")
    with refresh_after(page, "cluster"):
        dialog.locator("#id_cluster").select_option(label="db-cluster")
    assert dialog.locator("#id_vms option").all_inner_texts() == ["db-1", "db-2"]
    assert dialog.locator("#id_name").input_value() == "db-spread"  # what was typed stays
    dialog.locator("#id_vm_rule").select_option("negative")
    assert dialog.locator("#id_vm_enforcing").is_checked()
    dialog.locator("#id_vms").select_option(["db-1", "db-2"])
    shot(page, "40-new-affinity-group")
    dialog.locator("button[type=submit]", has_text="OK").click()
    page.wait_for_selector("text=Affinity group db-spread created.")
    group = AffinityGroup.objects.get(name="db-spread")
    assert (group.cluster, group.vm_rule, group.vm_enforcing) == (cluster, "negative", True)
    assert sorted(group.vms.values_list("name", flat=True)) == ["db-1", "db-2"]
    assert Event.objects.filter(code="user_add_affinity_group").exists()
    shot(page, "41-affinity-group-page")

    # The VM's page names its group; its Migrate dialog refuses db-2's host, naming the group.
    page.goto(vms[0].get_absolute_url())
    assert "db-spread" in page.locator("#affinity").inner_text()
    page.locator("#vm-panels a", has_text="Migrate").click()
    dialog_open(page, "#migrate-form")
    refused = page.locator("#destination-list tr.refused[data-name='db-b']")
    assert "VM affinity group db-spread: VM db-2 already runs there" in refused.inner_text()
    assert "Affinity" in refused.locator("strong").all_inner_texts()
    eligible = page.locator("#destination-list tr.eligible").evaluate_all("rows => rows.map(r => r.dataset.name)")
    assert eligible == ["db-c"]
    shot(page, "42-migrate-refused-by-affinity")
