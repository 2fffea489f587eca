"""The NUMA pinning editor: every placement host side by side, per-host verdicts from clean(), atomic save."""

import pytest
from django.urls import reverse

from .conftest import HTMX

pytestmark = pytest.mark.django_db


def pins(hosts, first: dict, second: dict | None = None, **extra):
    """Post data: the first host's pinning, and the second's (None: same as the first host)."""
    data = {"tune-0": "strict", "tune-1": "strict", **extra}
    two, four = hosts["two"], hosts["four"]
    for index, node in first.items():
        data[f"pin-{four.pk}-{index}"] = node
    if second is not None:
        data[f"same-{two.pk}"] = ""
        for index, node in second.items():
            data[f"pin-{two.pk}-{index}"] = node
    else:
        data[f"same-{two.pk}"] = "on"
    return {k: v for k, v in data.items() if v != "" or k.startswith("pin-")}


def test_the_editor_shows_each_host_with_its_nodes(admin_client, hp_vm, hosts):
    response = admin_client.get(reverse("vm-numa", args=[hp_vm.pk]), headers=HTMX)
    content = response.content.decode()
    assert response.status_code == 200 and "<html" not in content
    sections = response.context["hosts"]
    # Hosts in name order: four-nodes is the first host, the default for two-nodes.
    assert [s["host"].name for s in sections] == ["four-nodes", "two-nodes"]
    assert [len(s["columns"]) for s in sections] == [4, 2]
    assert sections[1]["mirrored"] and not sections[0]["mirrored"]
    assert f'data-numa-zone data-group="numa-{hosts["four"].pk}" data-node="3"' in content
    assert "Same as the first host" in content and "1 GiB pages 8 free" in content


def test_live_check_gives_the_reason_per_host(admin_client, hp_vm, hosts):
    url = reverse("vm-numa", args=[hp_vm.pk])
    # vNUMA 1 on node 3: fine on the four-node host, which the two-node host (same as the first) does not have.
    response = admin_client.post(url, {**pins(hosts, {0: "0", 1: "3"}), "_check": "1"}, headers=HTMX)
    assert b"<html" not in response.content and b'id="numa-editor-body"' in response.content
    conflicts = {s["host"].name: s["conflicts"] for s in response.context["hosts"]}
    assert conflicts["four-nodes"] == []
    assert conflicts["two-nodes"] == [
        "vNUMA node 1 is pinned to host node 3, which two-nodes does not have (it has 2: 0-1)."
    ]
    hp_vm.refresh_from_db()
    assert [n["pinned_to"] for n in hp_vm.numa_nodes] == [[0], [1]]  # a check saves nothing


def test_switching_same_off_starts_from_a_copy_of_the_first_host(admin_client, hp_vm, hosts):
    url = reverse("vm-numa", args=[hp_vm.pk])
    data = pins(hosts, {0: "0", 1: "3"})
    data.pop(f"same-{hosts['two'].pk}")
    response = admin_client.post(url, {**data, "_check": "1"}, headers=HTMX)
    second = response.context["hosts"][1]
    assert not second["mirrored"]
    assert [chip["value"] for column in second["columns"] for chip in column["chips"]] == ["0"]
    assert [chip["value"] for chip in second["unpinned"]] == ["3"]


def test_save_writes_the_default_and_the_per_host_differences_atomically(admin_client, hp_vm, hosts):
    url = reverse("vm-numa", args=[hp_vm.pk])
    response = admin_client.post(url, pins(hosts, {0: "0", 1: "3"}, {0: "0", 1: "1"}), headers=HTMX)
    assert response["HX-Redirect"] == hp_vm.get_absolute_url()
    hp_vm.refresh_from_db()
    two = str(hosts["two"].pk)
    assert [n["pinned_to"] for n in hp_vm.numa_nodes] == [[0], [3]]
    assert [n["pinned_to_by_host"] for n in hp_vm.numa_nodes] == [{}, {two: [1]}]


def test_a_conflicting_pinning_is_not_saved(admin_client, hp_vm, hosts):
    url = reverse("vm-numa", args=[hp_vm.pk])
    response = admin_client.post(url, pins(hosts, {0: "0", 1: "3"}), headers=HTMX)
    assert response.status_code == 200 and "HX-Redirect" not in response
    assert "which two-nodes does not have" in response.content.decode()
    hp_vm.refresh_from_db()
    assert [n["pinned_to"] for n in hp_vm.numa_nodes] == [[0], [1]]


def test_unpinning_and_tune_mode(admin_client, hp_vm, hosts):
    url = reverse("vm-numa", args=[hp_vm.pk])
    admin_client.post(url, pins(hosts, {0: "", 1: "1"}, **{"tune-1": "interleave"}), headers=HTMX)
    hp_vm.refresh_from_db()
    assert [(n["pinned_to"], n["tune_mode"]) for n in hp_vm.numa_nodes] == [([], "strict"), ([1], "interleave")]


def test_without_placement_hosts_the_editor_explains_what_is_needed(admin_client, cluster):
    from tests.factories import make_vm

    vm = make_vm(cluster, sockets=2, numa_nodes=[{"index": 0, "vcpus": [0, 1], "memory_mib": 512}])
    content = admin_client.get(reverse("vm-numa", args=[vm.pk]), headers=HTMX).content.decode()
    assert "Start running on: Specific host(s)" in content
