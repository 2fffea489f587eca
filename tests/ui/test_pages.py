"""Every page: login required, read-only users may look but not change (403), htmx gets fragments."""

import pytest
from django.urls import reverse

from tests.factories import make_pool, make_template

from .conftest import HTMX

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(cluster, hosts, hp_vm):
    template = make_template(cluster, name="tpl")
    return {"vm": hp_vm, "host": hosts["two"], "template": template, "pool": make_pool(template, name="pool")}


def page_urls(o):
    return [
        reverse("overview"),
        reverse("search") + "?q=hp",
        reverse("cluster-list"),
        reverse("cluster-detail", args=[o["vm"].cluster_id]),
        reverse("host-list"),
        reverse("host-detail", args=[o["host"].pk]),
        reverse("vm-list"),
        reverse("vm-detail", args=[o["vm"].pk]),
        reverse("template-list"),
        reverse("template-detail", args=[o["template"].pk]),
        reverse("pool-list"),
        reverse("pool-detail", args=[o["pool"].pk]),
        reverse("job-list"),
        reverse("event-list"),
    ]


def change_urls(o):
    vm = o["vm"].pk
    return [
        reverse("vm-new"),
        reverse("vm-edit", args=[vm]),
        reverse("vm-numa", args=[vm]),
        reverse("vm-migrate") + f"?vm={vm}",
        reverse("template-new"),
        reverse("template-edit", args=[o["template"].pk]),
        reverse("pool-edit", args=[o["pool"].pk]),
    ]


def test_every_page_needs_a_login(client, objects):
    for url in page_urls(objects) + change_urls(objects):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("login")), url


def test_read_only_users_see_every_page(reader_client, objects):
    for url in page_urls(objects):
        response = reader_client.get(url)
        assert response.status_code == 200, url
        assert b"<html" in response.content


def test_read_only_users_cannot_change_anything(reader_client, objects):
    for url in change_urls(objects):
        assert reader_client.get(url).status_code == 403, url
    vm = objects["vm"].pk
    for url in (reverse("vm-start", args=[vm]), reverse("vm-stop", args=[vm]), reverse("vm-migrate")):
        assert reader_client.post(url, {"vm": vm}).status_code == 403, url
    assert reader_client.post(reverse("vm-edit", args=[vm]), {"name": "renamed"}).status_code == 403
    objects["vm"].refresh_from_db()
    assert objects["vm"].name == "hp-vm" and objects["vm"].status == "down"


def test_read_only_users_get_no_change_buttons(reader_client, objects):
    content = reader_client.get(reverse("vm-list")).content.decode()
    assert "New VM" not in content and ">Start<" not in content and ">Edit<" not in content


def test_admins_open_every_dialog(admin_client, objects):
    for url in change_urls(objects):
        page = admin_client.get(url)
        fragment = admin_client.get(url, headers=HTMX)
        assert page.status_code == fragment.status_code == 200, url
        assert b"<html" in page.content and b"<html" not in fragment.content, url
        assert b'class="modal-header"' in fragment.content


@pytest.mark.parametrize("name", ["cluster-list", "host-list", "vm-list", "template-list", "pool-list", "job-list"])
def test_lists_answer_htmx_with_the_table_only(admin_client, objects, name):
    response = admin_client.get(reverse(name), headers=HTMX)
    assert response.status_code == 200
    assert b"<html" not in response.content and b"<table" in response.content
    assert "HX-Request" in response["Vary"]
    boosted = admin_client.get(reverse(name), headers={**HTMX, "HX-Boosted": "true"})
    assert b"<html" in boosted.content


def test_search_opens_a_single_hit(admin_client, objects):
    response = admin_client.get(reverse("search") + "?q=four-nod")
    assert (
        response.status_code == 302
        and response.url == objects["host"].cluster.hosts.get(name="four-nodes").get_absolute_url()
    )
    many = admin_client.get(reverse("search") + "?q=o").content.decode()
    assert "two-nodes" in many and "hp-vm" not in many


def test_login_page_and_logout(client, admin_user):
    assert b"Log in" in client.get(reverse("login")).content
    response = client.post(reverse("login"), {"username": "admin", "password": "password"})
    assert response.status_code == 302
    assert client.post(reverse("logout")).status_code == 302
