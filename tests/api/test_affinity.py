"""Affinity groups and labels over the API: CRUD, membership actions, the models' rules as 400s, managed groups
refused with 409, the audit trail."""

import pytest

from hpadmin.affinity.models import AffinityGroup
from hpadmin.operations.models import Event
from tests.factories import make_affinity_group, make_cluster, make_label, make_vm

pytestmark = pytest.mark.django_db

GROUPS = "/api/v1/affinity-groups/"
LABELS = "/api/v1/affinity-labels/"
PAIR_AND_SPREAD = "VMs db-1 and db-2 must run together (group db-pair) and apart (group db-spread)."


@pytest.fixture
def vms(cluster):
    return [make_vm(cluster, name=f"db-{i}") for i in (1, 2, 3)]


@pytest.fixture
def pair(cluster, vms):
    """A positive enforcing group of db-1 and db-2."""
    return make_affinity_group(cluster, "db-pair", vms=vms[:2], vm_rule="positive")


def ids(objs):
    return [obj.pk for obj in objs]


def last_event():
    return Event.objects.order_by("-pk").first()


# -- groups -----------------------------------------------------------------------------------------------------


def test_create_a_group_with_members(api, cluster, vms, hosts):
    label = make_label("db")
    r = api.post(
        GROUPS,
        {
            "name": "db-spread",
            "cluster": cluster.pk,
            "vm_rule": "negative",
            "vm_enforcing": False,
            "host_rule": "positive",
            "priority": 2.5,
            "vms": ids(vms),
            "hosts": ids(hosts[:1]),
            "vm_labels": [label.pk],
            "managed": True,
        },
        format="json",
    )
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["vms"] == sorted(ids(vms)) and body["hosts"] == [hosts[0].pk] and body["vm_labels"] == [label.pk]
    assert body["vm_rule"] == "negative" and body["vm_enforcing"] is False and body["host_enforcing"] is True
    assert body["priority"] == 2.5 and body["managed"] is False and body["managed_reasons"] == {}
    group = AffinityGroup.objects.get(name="db-spread")
    assert group.cluster == cluster and not group.managed
    assert set(group.vms.values_list("name", flat=True)) == {"db-1", "db-2", "db-3"}
    event = last_event()
    assert event.code == "user_add_affinity_group" and event.cluster == cluster
    assert event.message == "Affinity group db-spread was added by root."


def test_defaults_are_disabled_hard_rules_of_priority_one(api, cluster):
    r = api.post(GROUPS, {"name": "empty", "cluster": cluster.pk}, format="json")
    assert r.status_code == 201, r.json()
    body = r.json()
    assert (body["vm_rule"], body["vm_enforcing"], body["host_rule"], body["host_enforcing"]) == (
        "disabled",
        True,
        "disabled",
        True,
    )
    assert body["priority"] == 1.0 and body["vms"] == [] and body["hosts"] == []


def test_list_filters_by_cluster(api, cluster, pair):
    other = make_cluster("c2")
    make_affinity_group(other, "db-pair")
    r = api.get(GROUPS, {"cluster": cluster.pk})
    assert [(g["name"], g["cluster"]) for g in r.json()["results"]] == [("db-pair", cluster.pk)]
    assert len(api.get(GROUPS).json()["results"]) == 2


def test_list_queries_do_not_grow_with_groups(api, cluster, vms, django_assert_max_num_queries):
    for i in range(5):
        make_affinity_group(cluster, f"g{i}", vms=vms, vm_labels=[make_label(f"l{i}")])
    with django_assert_max_num_queries(10):
        r = api.get(GROUPS)
    assert len(r.json()["results"]) == 5


def test_an_update_is_audited_with_what_changed(api, cluster, vms, pair):
    r = api.patch(f"{GROUPS}{pair.pk}/", {"vm_enforcing": False, "vms": ids(vms)}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["vms"] == sorted(ids(vms))
    assert last_event().message == (
        "Affinity group db-pair configuration was updated by root: VM rule enforcing: Yes → No; "
        "VMs: db-1, db-2 → db-1, db-2, db-3."
    )


def test_the_cluster_is_kept_once_created(api, pair):
    other = make_cluster("c2")
    r = api.patch(f"{GROUPS}{pair.pk}/", {"cluster": other.pk, "description": "x"}, format="json")
    assert r.status_code == 200 and r.json()["cluster"] == pair.cluster_id


def test_a_contradiction_is_400_on_vms(api, cluster, vms, pair):
    r = api.post(
        GROUPS, {"name": "db-spread", "cluster": cluster.pk, "vm_rule": "negative", "vms": ids(vms)}, format="json"
    )
    assert r.status_code == 400
    assert r.json() == {"vms": [PAIR_AND_SPREAD]}
    assert not AffinityGroup.objects.filter(name="db-spread").exists()


def test_members_of_another_cluster_and_rules_without_members_are_400(api, cluster):
    stranger = make_vm(make_cluster("c2"), name="web-1")
    r = api.post(
        GROUPS, {"name": "g", "cluster": cluster.pk, "vms": [stranger.pk], "host_rule": "negative"}, format="json"
    )
    assert r.status_code == 400
    assert r.json() == {
        "vms": ["VM web-1 is not in cluster c1."],
        "host_rule": [
            "A negative host rule needs at least one VM of cluster c1.",
            "A negative host rule needs at least one host of cluster c1.",
        ],
    }


def test_a_name_is_unique_in_its_cluster(api, cluster, pair):
    taken = {"non_field_errors": ["The cluster has an affinity group of this name already."]}
    r = api.post(GROUPS, {"name": "db-pair", "cluster": cluster.pk}, format="json")
    assert r.status_code == 400 and r.json() == taken
    other = make_affinity_group(cluster, "other")
    r = api.patch(f"{GROUPS}{other.pk}/", {"name": "db-pair"}, format="json")
    assert r.status_code == 400 and r.json() == taken
    assert api.post(GROUPS, {"name": "db-pair", "cluster": make_cluster("c2").pk}, format="json").status_code == 201


def test_a_priority_must_be_finite(api, cluster):
    r = api.post(GROUPS, {"name": "g", "cluster": cluster.pk, "priority": "nan"}, format="json")
    assert r.status_code == 400 and "priority" in r.json()


def test_delete_a_group(api, pair):
    assert api.delete(f"{GROUPS}{pair.pk}/").status_code == 204
    assert not AffinityGroup.objects.filter(pk=pair.pk).exists()
    assert last_event().message == "Affinity group db-pair was removed by root."


# -- membership actions -----------------------------------------------------------------------------------------


def test_add_and_remove_vms_and_hosts(api, cluster, vms, hosts, pair):
    r = api.post(f"{GROUPS}{pair.pk}/add-vms/", {"ids": [vms[2].pk, vms[0].pk]}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["vms"] == sorted(ids(vms))
    r = api.post(f"{GROUPS}{pair.pk}/remove-vms/", {"ids": [vms[0].pk]}, format="json")
    assert r.json()["vms"] == sorted(ids(vms[1:]))
    r = api.post(f"{GROUPS}{pair.pk}/add-hosts/", {"ids": ids(hosts)}, format="json")
    assert r.json()["hosts"] == sorted(ids(hosts))
    r = api.post(f"{GROUPS}{pair.pk}/remove-hosts/", {"ids": [hosts[1].pk]}, format="json")
    assert r.json()["hosts"] == [hosts[0].pk]
    assert set(pair.vms.values_list("name", flat=True)) == {"db-2", "db-3"}
    assert list(pair.hosts.all()) == [hosts[0]]
    assert last_event().message == "Affinity group db-pair configuration was updated by root: Hosts: h1, h2 → h1."


def test_a_member_action_is_judged_as_an_edit(api, cluster, vms, pair):
    spread = make_affinity_group(cluster, "db-spread", vms=vms[1:], vm_rule="negative")
    r = api.post(f"{GROUPS}{spread.pk}/add-vms/", {"ids": [vms[0].pk]}, format="json")
    assert r.status_code == 400 and r.json() == {"vms": [PAIR_AND_SPREAD]}
    assert set(spread.vms.values_list("name", flat=True)) == {"db-2", "db-3"}
    r = api.post(f"{GROUPS}{spread.pk}/remove-vms/", {"ids": ids(vms[1:])}, format="json")
    assert r.status_code == 400 and r.json() == {"vm_rule": ["A negative VM rule needs at least one VM of cluster c1."]}


def test_unknown_or_malformed_ids_are_400_on_ids(api, pair):
    r = api.post(f"{GROUPS}{pair.pk}/add-vms/", {"ids": [999999]}, format="json")
    assert r.status_code == 400 and "ids" in r.json()
    r = api.post(f"{GROUPS}{pair.pk}/add-hosts/", {"ids": "h1"}, format="json")
    assert r.status_code == 400 and "ids" in r.json()


# -- managed groups and permissions -----------------------------------------------------------------------------


def test_a_managed_group_is_shown_but_refused_any_change(api, cluster, vms, pair):
    AffinityGroup.objects.filter(pk=pair.pk).update(managed=True, managed_reasons={"db-1": "shares host h1"})
    detail = f"{GROUPS}{pair.pk}/"
    body = api.get(detail).json()
    assert body["managed"] is True and body["managed_reasons"] == {"db-1": "shares host h1"}
    message = (
        "Affinity group db-pair is managed by hpadmin, which keeps it current for High Performance VMs: "
        "it cannot be changed or removed."
    )
    for r in [
        api.patch(detail, {"description": "mine"}, format="json"),
        api.put(detail, {"name": "db-pair", "cluster": cluster.pk}, format="json"),
        api.delete(detail),
        api.post(f"{detail}add-vms/", {"ids": [vms[2].pk]}, format="json"),
        api.post(f"{detail}remove-hosts/", {"ids": []}, format="json"),
    ]:
        assert r.status_code == 409 and r.json()["detail"] == message
    pair.refresh_from_db()
    assert pair.description == "" and pair.vms.count() == 2


def test_readers_read_and_anonymous_callers_do_not(reader, anonymous, pair):
    assert reader.get(GROUPS).status_code == 200
    assert reader.post(GROUPS, {"name": "g", "cluster": pair.cluster_id}).status_code == 403
    assert reader.post(f"{GROUPS}{pair.pk}/add-vms/", {"ids": []}, format="json").status_code == 403
    assert reader.delete(f"{LABELS}{make_label('db').pk}/").status_code == 403
    assert anonymous.get(GROUPS).status_code == 401


# -- labels -----------------------------------------------------------------------------------------------------


def test_label_crud_and_membership(api, cluster, vms, hosts):
    r = api.post(LABELS, {"name": "db", "vms": ids(vms[:1]), "hosts": ids(hosts)}, format="json")
    assert r.status_code == 201, r.json()
    label = r.json()
    assert label["vms"] == [vms[0].pk] and label["hosts"] == sorted(ids(hosts))
    assert last_event().message == "Affinity label db was added by root."
    url = f"{LABELS}{label['id']}/"
    assert api.post(f"{url}add-vms/", {"ids": ids(vms[1:])}, format="json").json()["vms"] == sorted(ids(vms))
    assert api.post(f"{url}remove-hosts/", {"ids": ids(hosts)}, format="json").json()["hosts"] == []
    assert api.patch(url, {"description": "databases"}, format="json").json()["description"] == "databases"
    assert api.get(LABELS, {"name__icontains": "D"}).json()["results"][0]["name"] == "db"
    assert api.delete(url).status_code == 204
    assert last_event().message == "Affinity label db was removed by root."


def test_a_label_edit_that_makes_groups_contradict_is_400(api, cluster, vms):
    label = make_label("db", vms=vms[:1])
    make_affinity_group(cluster, "db-pair", vm_labels=[label], vm_rule="positive")
    make_affinity_group(cluster, "db-spread", vms=vms[:2], vm_rule="negative")
    r = api.post(f"{LABELS}{label.pk}/add-vms/", {"ids": [vms[1].pk]}, format="json")
    assert r.status_code == 400 and r.json() == {"vms": [PAIR_AND_SPREAD]}
    assert list(label.vms.all()) == vms[:1]


def test_groups_naming_a_label_count_its_members(api, cluster, vms, hosts):
    label = make_label("db", vms=vms[:2], hosts=hosts[:1])
    group = make_affinity_group(cluster, "db-pair", vm_labels=[label], host_labels=[label], host_rule="positive")
    assert group.member_vm_ids() == set(ids(vms[:2])) and group.member_host_ids() == {hosts[0].pk}
    r = api.post(
        GROUPS, {"name": "db-spread", "cluster": cluster.pk, "vm_rule": "negative", "vms": ids(vms)}, format="json"
    )
    assert r.status_code == 201  # the pair's VM rule is disabled: nothing contradicts it


def test_the_schema_lists_the_affinity_resources_and_actions(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for resource in ("affinity-groups", "affinity-labels"):
        assert f"/api/v1/{resource}/" in schema["paths"]
        for action in ("add-vms", "remove-vms", "add-hosts", "remove-hosts"):
            post = schema["paths"][f"/api/v1/{resource}/{{id}}/{action}/"]["post"]
            assert "400" in post["responses"]
    assert "409" in schema["paths"]["/api/v1/affinity-groups/{id}/"]["patch"]["responses"]
    assert set(schema["components"]["schemas"]["VmIdsRequest"]["properties"]) == {"ids"}
