"""The user portal in a real Chromium: a portal user signs in, finds only their own VM, starts it, reads its
console details, and reaches neither an administration page nor another user's VM by URL. Screenshots (one at a
phone's size) land in artifacts/screenshots/.

Runs only with HPADMIN_BROWSER_TESTS=1 (``make test-browser``); it drives Debian's /usr/bin/chromium.
"""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from hpadmin.operations.models import Event
from tests.factories import make_cluster, make_host, make_vm

from .test_flow import dialog_open, page, shot  # noqa: F401 - fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(os.environ.get("HPADMIN_BROWSER_TESTS") != "1", reason="set HPADMIN_BROWSER_TESTS=1"),
]

PASSWORD = "portal-test-password"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def vms(transactional_db):
    """pat owns one stopped VM with a display; olga owns another VM in the same cluster."""
    cluster = make_cluster("portal-cluster")
    make_host(cluster, "portal-host", numa_nodes=2, hp2m=2048)
    users = get_user_model().objects
    pat, olga = (users.create_user(name, password=PASSWORD) for name in ("pat", "olga"))
    return make_vm(cluster, name="pat-desktop", owner=pat), make_vm(cluster, name="olga-secret", owner=olga)


def test_a_portal_user_runs_their_vm_and_reaches_nothing_else(page, vms):  # noqa: F811
    mine, theirs = vms
    page.goto(f"{reverse('login')}?next={reverse('portal-home')}")
    page.fill("input[name=username]", "pat")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/portal/")

    # Only their VM, and no way into the administration portal.
    card = page.locator(".vm-card[data-name='pat-desktop']")
    assert card.locator(".vm-state").inner_text() == "Down"
    assert page.locator(".vm-card").count() == 1
    body = page.locator("body").inner_text()
    assert "olga-secret" not in body and "Administration portal" not in body
    shot(page, "portal-01-my-vms")

    # On a phone the cards take the whole width, one under the other.
    page.set_viewport_size(PHONE)
    assert card.bounding_box()["width"] > PHONE["width"] * 0.8
    shot(page, "portal-02-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # Start it: the page comes back with the VM up on its host.
    card.locator("button", has_text="Start").click()
    page.wait_for_selector("text=VM pat-desktop started on portal-host.")
    card.locator(".vm-state", has_text="Up").wait_for()
    assert card.locator(".vm-host").inner_text() == "portal-host"
    assert Event.objects.get(code="vm_started", vm=mine).user.get_username() == "pat"
    shot(page, "portal-03-started")

    # The console details: where the display listens and the SSH tunnel that reaches it.
    card.locator("a", has_text="Console").click()
    dialog_open(page, "#console-details")
    details = page.locator("#console-details").inner_text()
    assert "ssh -L 5900:127.0.0.1:5900 root@portal-host" in details and "vncviewer localhost:5900" in details
    shot(page, "portal-04-console")

    # By URL: an administration page is refused, another user's VM is not found.
    refused = page.goto(reverse("vm-list"))
    assert refused.status == 403 and "olga-secret" not in page.content()
    shot(page, "portal-05-admin-page-refused")
    for url in (reverse("portal-vm-console", args=[theirs.pk]), reverse("vm-detail", args=[theirs.pk])):
        response = page.goto(url)
        assert response.status in (403, 404) and "olga-secret" not in page.content(), url
    assert page.goto(reverse("portal-vm-console", args=[theirs.pk])).status == 404
