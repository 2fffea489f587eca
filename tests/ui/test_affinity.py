"""Affinity pages: the lists of groups and labels (filters, a query count that does not grow with rows), their pages
(labels expanded to the members they stand for in the group's cluster), the New/Edit and Delete dialogs with the
model's errors next to their fields and an audit event per change, groups hpadmin manages read-only, and the
groups and labels on the VM and host pages."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from hpadmin.affinity.models import AffinityGroup, AffinityLabel
from hpadmin.operations.models import Event
from tests.factories import make_affinity_group, make_cluster, make_host, make_label, make_vm

from .conftest import HTMX

pytestmark = pytest.mark.django_db


def feedback(content: str, field: str) -> str:
    """The error text shown under a dialog's field."""
    return content.split(f'id="{field}-feedback"')[1].split("</div>\n")[0]


def options(content: str, name: str) -> list[str]:
    """The option labels of a dialog's select."""
    select = content.split(f'name="{name}"')[1].split("</select>")[0]
    return [part.split(">", 1)[1].split("<")[0] for part in select.split("<option")[1:]]


def row(content: str, name: str) -> str:
    return content.split(f'<tr data-name="{name}">')[1].split("</tr>")[0]


@pytest.fixture
def db_vms(cluster):
    return [make_vm(cluster, name=f"db-{i}") for i in (1, 2, 3)]


@pytest.fixture
def spread(cluster, db_vms):
    """An enforcing negative VM-to-VM group of db-1 and db-2."""
    return make_affinity_group(cluster, "db-spread", vms=db_vms[:2], vm_rule="negative", priority=5)


@pytest.fixture
def managed(cluster, hosts, hp_vm):
    """A group hpadmin keeps: the HP VM on its specific hosts, with why each member is there."""
    group = make_affinity_group(
        cluster,
        "hp-hosts",
        vms=[hp_vm],
        hosts=[hosts["two"], hosts["four"]],
        host_rule="positive",
        host_enforcing=False,
    )
    AffinityGroup.objects.filter(pk=group.pk).update(
        managed=True,
        managed_reasons={
            "hp-vm": "High Performance VM with specific hosts two-nodes and four-nodes",
            "two-nodes": "A specific host of hp-vm",
            "four-nodes": "A specific host of hp-vm",
        },
    )
    group.refresh_from_db()
    return group


def group_post(cluster, **values) -> dict:
    """The New group dialog's input: a negative enforcing VM rule unless ``values`` say otherwise."""
    data = {
        "name": "g",
        "description": "",
        "cluster": cluster.pk,
        "priority": "1",
        "vm_rule": "negative",
        "vm_enforcing": "on",
        "host_rule": "disabled",
        "host_enforcing": "on",
    }
    data.update(values)
    return {key: value for key, value in data.items() if value is not None}


# -- lists -------------------------------------------------------------------------------------------------------


def test_group_list_shows_rules_priority_members_and_managed(admin_client, cluster, hosts, db_vms, spread, managed):
    far = make_vm(make_cluster("far"), name="far-vm")
    label = make_label("databases", vms=[db_vms[2], far])
    make_affinity_group(cluster, "db-soft", vms=[db_vms[0]], vm_labels=[label], vm_rule="positive", vm_enforcing=False)
    page = admin_client.get(reverse("affinity-group-list")).content.decode()
    assert 'href="/affinity/groups/"' in page and ">Affinity</a>" in page  # the navigation
    spread_row = row(page, "db-spread")
    assert ">Negative<" in spread_row and ">enforcing<" in spread_row and ">Disabled<" in spread_row
    assert '<td class="priority">5</td>' in spread_row and '<td class="vms">2</td>' in spread_row
    assert "managed" not in spread_row
    # db-1 named and db-3 through the label; the label's VM of another cluster is no member.
    soft_row = row(page, "db-soft")
    assert ">Positive<" in soft_row and ">soft<" in soft_row and '<td class="vms">2</td>' in soft_row
    managed_row = row(page, "hp-hosts")
    assert ">managed<" in managed_row and '<td class="vms">1</td>' in managed_row
    assert '<td class="hosts">2</td>' in managed_row
    # By priority, highest first.
    assert page.index('data-name="db-spread"') < page.index('data-name="db-soft"')


def test_group_list_filters_by_cluster_and_search(admin_client, cluster, spread):
    other = make_cluster("other")
    make_affinity_group(other, "web-spread", vms=[make_vm(other, name="web-1")], vm_rule="negative")
    by_cluster = admin_client.get(reverse("affinity-group-list"), {"cluster": other.pk}, headers=HTMX).content.decode()
    assert "web-spread" in by_cluster and "db-spread" not in by_cluster and "<html" not in by_cluster
    searched = admin_client.get(reverse("affinity-group-list"), {"q": "DB-"}).content.decode()
    assert "db-spread" in searched and "web-spread" not in searched


def add_groups(cluster, n: int) -> None:
    """``n`` more groups, each with VMs, a host and labels, and labels tagging them."""
    for _ in range(n):
        vms = [make_vm(cluster), make_vm(cluster)]
        host = make_host(cluster, numa_nodes=0, sockets=1)
        vm_label, host_label = make_label(vms=[make_vm(cluster)]), make_label(hosts=[host])
        make_affinity_group(
            cluster, vms=vms, hosts=[host], vm_labels=[vm_label], host_labels=[host_label], vm_rule="negative"
        )


@pytest.mark.parametrize("url", ["affinity-group-list", "affinity-label-list"])
def test_query_count_is_the_same_for_3_and_30_rows(admin_client, cluster, django_assert_num_queries, url):
    add_groups(cluster, 3)
    with CaptureQueriesContext(connection) as few:
        response = admin_client.get(reverse(url))
    assert response.status_code == 200
    add_groups(cluster, 27)
    with django_assert_num_queries(len(few)):
        response = admin_client.get(reverse(url))
    assert response.content.decode().count("<tr data-name=") == (30 if url == "affinity-group-list" else 50)


def test_label_list_counts_what_it_tags_and_the_groups_naming_it(admin_client, cluster, hosts, db_vms):
    label = make_label("databases", vms=db_vms, hosts=[hosts["two"]], description="All database VMs")
    make_affinity_group(cluster, "a", vm_labels=[label], vm_rule="negative")
    make_affinity_group(cluster, "b", vm_labels=[label], host_labels=[label], host_rule="negative")
    page = admin_client.get(reverse("affinity-label-list")).content.decode()
    cells = row(page, "databases")
    assert "All database VMs" in cells
    assert '<td class="vms">3</td>' in cells and '<td class="hosts">1</td>' in cells
    assert '<td class="groups">2</td>' in cells


# -- pages -------------------------------------------------------------------------------------------------------


def test_group_page_shows_rules_members_and_what_labels_stand_for(admin_client, cluster, hosts, db_vms):
    far = make_vm(make_cluster("far"), name="far-vm")
    vm_label = make_label("databases", vms=[db_vms[2], far])
    host_label = make_label("fast", hosts=[hosts["four"]])
    group = make_affinity_group(
        cluster,
        "db-hosts",
        vms=[db_vms[0]],
        hosts=[hosts["two"]],
        vm_labels=[vm_label],
        host_labels=[host_label],
        host_rule="positive",
    )
    page = admin_client.get(reverse("affinity-group-detail", args=[group.pk])).content.decode()
    assert 'data-member="db-1"' in page and 'data-member="two-nodes"' in page
    labels = page.split('id="group-labels"')[1].split("</ul>")[0]
    assert "databases" in labels and "db-3" in labels and "far-vm" not in labels
    assert "fast" in labels and "four-nodes" in labels
    assert "The VMs run on the group's hosts." in page
    assert 'id="group-actions"' in page and "managed-note" not in page


def test_a_managed_group_is_read_only_and_says_why_each_member_is_there(admin_client, managed):
    page = admin_client.get(reverse("affinity-group-detail", args=[managed.pk])).content.decode()
    assert "hpadmin keeps this group" in page and 'id="group-actions"' not in page
    vm = page.split('data-member="hp-vm"')[1].split("</li>")[0]
    assert "High Performance VM with specific hosts two-nodes and four-nodes" in vm
    assert "A specific host of hp-vm" in page.split('data-member="four-nodes"')[1].split("</li>")[0]
    for name in ("affinity-group-edit", "affinity-group-delete"):
        url = reverse(name, args=[managed.pk])
        for response in (admin_client.get(url, headers=HTMX), admin_client.post(url, {"name": "x"}, headers=HTMX)):
            assert response.status_code == 409
            assert "is managed by hpadmin" in response.content.decode()
    managed.refresh_from_db()
    assert managed.name == "hp-hosts" and managed.vms.count() == 1
    assert not Event.objects.filter(code__contains="affinity").exists()


def test_label_page_lists_members_of_every_cluster_and_the_groups_naming_it(admin_client, cluster, db_vms, hosts):
    far = make_vm(make_cluster("far"), name="far-vm")
    label = make_label("databases", vms=[db_vms[0], far], hosts=[hosts["two"]])
    make_affinity_group(cluster, "db-spread", vm_labels=[label], vm_rule="negative")
    page = admin_client.get(reverse("affinity-label-detail", args=[label.pk])).content.decode()
    assert 'data-member="db-1"' in page and 'data-member="far-vm"' in page and 'data-member="two-nodes"' in page
    assert "db-spread" in page.split('id="label-groups"')[1] and "counts its VMs in its cluster" in page


# -- New, Edit, Delete of groups ---------------------------------------------------------------------------------


def test_new_group_offers_the_chosen_clusters_vms_and_hosts(admin_client, cluster, hosts, db_vms):
    other = make_cluster("other")
    make_vm(other, name="web-1")
    make_label("databases")
    dialog = admin_client.get(reverse("affinity-group-new"), headers=HTMX).content.decode()
    assert "New Affinity group" in dialog and "<html" not in dialog
    assert options(dialog, "vms") == [] and "Choose a cluster first." in dialog
    assert options(dialog, "vm_labels") == ["databases"]
    # Another cluster chosen: the fields are re-rendered with its members; what was typed stays.
    url = reverse("affinity-group-new")
    assert 'hx-vals="{&quot;_changed&quot;: &quot;cluster&quot;}"' in dialog and f'hx-get="{url}"' in dialog
    query = {"_changed": "cluster", "name": "typed", "cluster": cluster.pk, "vm_rule": "negative", "vms": "999"}
    fields = admin_client.get(url, query, headers=HTMX).content.decode()
    assert 'id="affinity-group-form"' not in fields and 'value="typed"' in fields
    assert options(fields, "vms") == ["db-1", "db-2", "db-3"]
    assert options(fields, "hosts") == ["four-nodes", "in-maintenance", "no-numa", "two-nodes"]
    assert '<option value="negative" selected>' in fields
    assert 'name="vm_enforcing"' in fields and "checked" not in fields.split('name="vm_enforcing"')[1].split(">")[0]
    other_fields = admin_client.get(url, {**query, "cluster": other.pk}, headers=HTMX).content.decode()
    assert options(other_fields, "vms") == ["web-1"] and options(other_fields, "hosts") == []


def test_new_group_is_created_with_its_members_and_audited(admin_client, cluster, hosts, db_vms):
    label = make_label("databases", vms=[db_vms[2]])
    data = group_post(
        cluster,
        name="db-spread",
        description="Databases apart",
        priority="3",
        vms=[db_vms[0].pk, db_vms[1].pk],
        vm_labels=[label.pk],
    )
    response = admin_client.post(reverse("affinity-group-new"), data, headers=HTMX)
    group = AffinityGroup.objects.get(name="db-spread")
    assert response["HX-Redirect"] == reverse("affinity-group-detail", args=[group.pk])
    assert (group.cluster, group.priority, group.vm_rule, group.vm_enforcing) == (cluster, 3.0, "negative", True)
    assert {vm.name for vm in group.vms.all()} == {"db-1", "db-2"} and list(group.vm_labels.all()) == [label]
    event = Event.objects.get(code="user_add_affinity_group")
    assert event.message == "Affinity group db-spread was added by admin." and event.cluster == cluster
    page = admin_client.get(response["HX-Redirect"]).content.decode()
    assert "Affinity group db-spread created." in page


def test_a_rule_without_members_is_an_error_next_to_the_rule(admin_client, cluster, db_vms):
    response = admin_client.post(reverse("affinity-group-new"), group_post(cluster, name="empty"), headers=HTMX)
    content = response.content.decode()
    assert response.status_code == 200 and "HX-Redirect" not in response
    assert "A negative VM rule needs at least one VM of cluster hp." in feedback(content, "vm_rule")
    assert 'value="empty"' in content and not AffinityGroup.objects.exists()


def test_a_contradiction_with_another_enforcing_group_is_an_error_next_to_the_vms(
    admin_client, cluster, db_vms, spread
):
    data = group_post(cluster, name="db-together", vm_rule="positive", vms=[db_vms[0].pk, db_vms[1].pk])
    content = admin_client.post(reverse("affinity-group-new"), data, headers=HTMX).content.decode()
    assert "VMs db-1 and db-2 must run together (group db-together) and apart (group db-spread)." in feedback(
        content, "vms"
    )
    # As a soft rule it contradicts nothing.
    data.pop("vm_enforcing")
    response = admin_client.post(reverse("affinity-group-new"), data, headers=HTMX)
    assert "HX-Redirect" in response and AffinityGroup.objects.get(name="db-together").vm_enforcing is False


def test_a_name_taken_in_the_cluster_is_refused(admin_client, cluster, db_vms, spread):
    data = group_post(cluster, name="db-spread", vms=[db_vms[2].pk])
    content = admin_client.post(reverse("affinity-group-new"), data, headers=HTMX).content.decode()
    assert "already exists" in content and AffinityGroup.objects.count() == 1


def test_edit_group_keeps_its_cluster_and_audits_what_changed(admin_client, cluster, db_vms, spread):
    url = reverse("affinity-group-edit", args=[spread.pk])
    dialog = admin_client.get(url, headers=HTMX).content.decode()
    assert "Edit Affinity group db-spread" in dialog
    assert "disabled" in dialog.split('name="cluster"')[1].split(">")[0]
    assert "A group stays in the cluster it was created in." in dialog
    other = make_cluster("other")
    data = group_post(other, name="db-spread", priority="5", vm_enforcing=None, vms=[vm.pk for vm in db_vms])
    response = admin_client.post(url, data, headers=HTMX)
    assert response["HX-Redirect"] == reverse("affinity-group-detail", args=[spread.pk])
    spread.refresh_from_db()
    assert spread.cluster == cluster and spread.vm_enforcing is False and spread.vms.count() == 3
    event = Event.objects.get(code="user_update_affinity_group")
    assert event.message == (
        "Affinity group db-spread configuration was updated by admin: VM rule enforcing: Yes → No; "
        "VMs: db-1, db-2 → db-1, db-2, db-3."
    )
    # A save that changes nothing records nothing.
    admin_client.post(url, data, headers=HTMX)
    assert Event.objects.filter(code="user_update_affinity_group").count() == 1


def test_delete_group_asks_then_removes_it(admin_client, cluster, spread):
    url = reverse("affinity-group-delete", args=[spread.pk])
    dialog = admin_client.get(url, headers=HTMX).content.decode()
    assert "Remove Affinity group" in dialog and "<strong>db-spread</strong>" in dialog
    page = admin_client.get(url).content.decode()  # without htmx: a page holding the dialog
    assert "<title>Remove Affinity group db-spread · hpadmin</title>" in page and 'id="delete-form"' in page
    response = admin_client.post(url, headers=HTMX)
    assert response["HX-Redirect"] == reverse("affinity-group-list")
    assert not AffinityGroup.objects.exists()
    event = Event.objects.get(code="user_remove_affinity_group")
    assert event.message == "Affinity group db-spread was removed by admin." and event.cluster == cluster


def test_read_only_users_see_no_actions_and_cannot_change(reader_client, cluster, spread):
    page = reader_client.get(reverse("affinity-group-list")).content.decode()
    assert "db-spread" in page and "New group" not in page
    assert (
        'id="group-actions"'
        not in reader_client.get(reverse("affinity-group-detail", args=[spread.pk])).content.decode()
    )
    for url in (reverse("affinity-group-new"), reverse("affinity-group-delete", args=[spread.pk])):
        assert reader_client.post(url, group_post(cluster)).status_code == 403
    assert AffinityGroup.objects.count() == 1


# -- labels ------------------------------------------------------------------------------------------------------


def test_new_label_tags_vms_and_hosts_of_any_cluster(admin_client, cluster, hosts, db_vms):
    far = make_vm(make_cluster("far"), name="far-vm")
    dialog = admin_client.get(reverse("affinity-label-new"), headers=HTMX).content.decode()
    assert "far-vm (far)" in options(dialog, "vms") and "db-1 (hp)" in options(dialog, "vms")
    data = {"name": "databases", "description": "", "vms": [db_vms[0].pk, far.pk], "hosts": [hosts["two"].pk]}
    response = admin_client.post(reverse("affinity-label-new"), data, headers=HTMX)
    label = AffinityLabel.objects.get(name="databases")
    assert response["HX-Redirect"] == reverse("affinity-label-detail", args=[label.pk])
    assert {vm.name for vm in label.vms.all()} == {"db-1", "far-vm"}
    event = Event.objects.get(code="user_add_affinity_label")
    assert event.message == "Affinity label databases was added by admin." and event.cluster is None


def test_a_label_edit_that_breaks_an_enforcing_group_is_an_error_next_to_the_vms(admin_client, cluster, db_vms, spread):
    label = make_label("pair", vms=[db_vms[2]])
    make_affinity_group(cluster, "pair-together", vms=[db_vms[0]], vm_labels=[label], vm_rule="positive")
    url = reverse("affinity-label-edit", args=[label.pk])
    data = {"name": "pair", "description": "", "vms": [db_vms[1].pk, db_vms[2].pk]}
    content = admin_client.post(url, data, headers=HTMX).content.decode()
    assert "must run together (group pair-together) and apart (group db-spread)" in feedback(content, "vms")
    assert [vm.name for vm in label.vms.all()] == ["db-3"]
    data["vms"] = [db_vms[2].pk]
    data["description"] = "The pair"
    assert "HX-Redirect" in admin_client.post(url, data, headers=HTMX)
    assert Event.objects.get(code="user_update_affinity_label").message == (
        "Affinity label pair configuration was updated by admin: Description: none → The pair."
    )


def test_delete_label_names_the_groups_that_lose_its_members(admin_client, cluster, db_vms):
    label = make_label("databases", vms=db_vms)
    make_affinity_group(cluster, "db-spread", vm_labels=[label], vm_rule="negative")
    url = reverse("affinity-label-delete", args=[label.pk])
    dialog = admin_client.get(url, headers=HTMX).content.decode()
    assert "Remove Affinity label" in dialog and "db-spread" in dialog
    assert admin_client.post(url, headers=HTMX)["HX-Redirect"] == reverse("affinity-label-list")
    assert not AffinityLabel.objects.exists() and AffinityGroup.objects.get().vm_labels.count() == 0
    assert (
        Event.objects.get(code="user_remove_affinity_label").message == "Affinity label databases was removed by admin."
    )


# -- the VM and host pages ---------------------------------------------------------------------------------------


def test_vm_and_host_pages_show_their_groups_and_labels(admin_client, cluster, hosts, db_vms, spread):
    vm_label = make_label("databases", vms=[db_vms[0]])
    host_label = make_label("fast", hosts=[hosts["two"]])
    make_affinity_group(
        cluster, "via-label", vms=[db_vms[2]], vm_labels=[vm_label], vm_rule="positive", vm_enforcing=False
    )
    make_affinity_group(cluster, "on-fast", vms=[db_vms[2]], host_labels=[host_label], host_rule="positive")
    other = make_cluster("other")
    make_affinity_group(other, "elsewhere", vms=[make_vm(other)], vm_labels=[vm_label], vm_rule="negative")
    page = admin_client.get(db_vms[0].get_absolute_url()).content.decode()
    card = page.split('id="affinity"')[1]
    assert f'href="{reverse("affinity-group-detail", args=[spread.pk])}"' in card
    assert (
        'data-group="via-label"' in card
        and "(through a label)" in card.split('data-group="via-label"')[1].split("</li>")[0]
    )
    assert "(through a label)" not in card.split('data-group="db-spread"')[1].split("</li>")[0]
    assert "on-fast" not in card and "elsewhere" not in card
    assert f'href="{reverse("affinity-label-detail", args=[vm_label.pk])}"' in card
    host_card = admin_client.get(hosts["two"].get_absolute_url()).content.decode().split('id="affinity"')[1]
    assert 'data-group="on-fast"' in host_card and "fast</a>" in host_card and "db-spread" not in host_card
    assert "In no affinity group." in admin_client.get(hosts["four"].get_absolute_url()).content.decode()


def test_vm_page_query_count_does_not_grow_with_its_groups(admin_client, cluster, db_vms, django_assert_num_queries):
    vm = db_vms[0]
    make_affinity_group(cluster, vms=[vm], vm_rule="positive", vm_enforcing=False)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(vm.get_absolute_url())
    for _ in range(5):
        make_affinity_group(cluster, vms=[vm], vm_labels=[make_label(vms=[vm])], vm_rule="positive", vm_enforcing=False)
    with django_assert_num_queries(len(few)):
        page = admin_client.get(vm.get_absolute_url()).content.decode()
    assert page.split('id="affinity"')[1].count("data-group=") == 6
