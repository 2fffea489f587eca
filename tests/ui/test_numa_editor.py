"""The NUMA pinning editor: every placement host side by side, per-host verdicts from clean() and from the
scheduler (would the VM start there now), atomic save."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from scheduler.models import Allocation
from tests.factories import make_host, make_template, make_vm

from .conftest import HTMX

CONFIG = ("optimized_for", "sockets", "cores", "memory_mib", "hugepage_kib", "numa_nodes", "migration_mode")

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
    vm = make_vm(cluster, sockets=2, numa_nodes=[{"index": 0, "vcpus": [0, 1], "memory_mib": 512}])
    content = admin_client.get(reverse("vm-numa", args=[vm.pk]), headers=HTMX).content.decode()
    assert "Start running on: Specific host(s)" in content


# -- the scheduler's verdict: would the VM start on each host now -------------------------------------------------

GIB_PAGE = 1048576  # KiB


@pytest.fixture
def crowded(cluster):
    """Two hosts of 2 NUMA nodes with 64 1 GiB pages each; on 'crowded' another VM holds 24 pages of node 0."""
    shape = {"numa_nodes": 2, "memory_mib": 262144, "hp1g": 64}
    crowded, roomy = make_host(cluster, "crowded", **shape), make_host(cluster, "roomy", **shape)
    Allocation.objects.create(
        vm=make_vm(cluster, name="other"), host=crowded, state="active", vcpus=2, hugepages={"0": {str(GIB_PAGE): 24}}
    )
    return crowded, roomy


def big_vm(cluster, hosts, pinned_to=(0, 0), name="big"):
    """64 GiB on 1 GiB pages in two 32 GiB vNUMA nodes, pinned (strict) to the given host nodes."""
    nodes = [
        {"index": i, "vcpus": [2 * i, 2 * i + 1], "memory_mib": 32768, "tune_mode": "strict", "pinned_to": [node]}
        for i, node in enumerate(pinned_to)
    ]
    return make_vm(
        cluster,
        hosts=hosts,
        name=name,
        optimized_for="high_performance",
        sockets=2,
        cores=2,
        memory_mib=65536,
        hugepage_kib=GIB_PAGE,
        numa_nodes=nodes,
    )


def statuses(response) -> dict[str, str]:
    """Each host's verdict as the admin reads it: the text of its status box."""
    content = response.content.decode()
    out = {}
    for section in response.context["hosts"]:
        box = content.split(f'id="numa-status-{section["host"].pk}"')[1].split(">Not pinned<")[0]
        out[section["host"].name] = " ".join(re.sub(r"<[^>]*(>|$)", " ", box.partition(">")[2]).split())
    return out


def test_vnuma_nodes_sharing_a_host_node_are_added_up_against_its_free_pages(admin_client, cluster, crowded):
    crowded_host, roomy = crowded
    vm = big_vm(cluster, [crowded_host, roomy])
    response = admin_client.get(reverse("vm-numa", args=[vm.pk]), headers=HTMX)
    text = statuses(response)
    # Node 0 of 'crowded' has 64 - 24 = 40 pages free: each 32-page vNUMA node fits alone, both (64) do not,
    # although the host as a whole has 40 + 64 free. 'roomy' has all 64 of node 0 free.
    assert "The pinning fits roomy now." in text["roomy"]
    assert "✓" not in text["crowded"] and "The pinning fits" not in text["crowded"]
    assert "⚠ The pinning does not fit crowded now." in text["crowded"]
    assert "The host crowded did not satisfy filter NUMA because" in text["crowded"]
    assert "It can be saved all the same" in text["crowded"]
    column = response.context["hosts"][0]["columns"][0]
    assert column["assigned_mib"] == 65536 and column["over"]  # 64 GiB pinned, 40 GiB of pages free


def test_the_issue_case_names_the_hugepage_shortage(admin_client, cluster):
    # Two 32 GiB vNUMA nodes on one host node with 16 free 1 GiB pages: start is refused, so is the editor.
    host = make_host(cluster, "h1", numa_nodes=2, memory_mib=131072, hp1g=32)
    Allocation.objects.create(
        vm=make_vm(cluster, name="other"), host=host, state="active", vcpus=2, hugepages={"0": {str(GIB_PAGE): 16}}
    )
    vm = big_vm(cluster, [host])
    text = statuses(admin_client.get(reverse("vm-numa", args=[vm.pk]), headers=HTMX))["h1"]
    free, needed = 2 * 32 - 16, 65536 // 1024
    assert f"The host h1 did not satisfy filter HugePages because {free} of {needed} needed 1 GiB pages free." in text
    assert "✓" not in text and "The pinning fits" not in text


def test_what_the_vm_holds_itself_counts_as_free(admin_client, cluster, crowded):
    _, roomy = crowded
    vm = big_vm(cluster, [roomy])
    Allocation.objects.create(vm=vm, host=roomy, state="active", vcpus=4, hugepages={"0": {str(GIB_PAGE): 64}})
    response = admin_client.get(reverse("vm-numa", args=[vm.pk]), headers=HTMX)
    assert "The pinning fits roomy now." in statuses(response)["roomy"]


def test_the_live_check_judges_the_pinning_being_edited(admin_client, cluster, crowded):
    crowded_host, roomy = crowded
    vm = big_vm(cluster, [crowded_host, roomy])
    url = reverse("vm-numa", args=[vm.pk])
    # vNUMA 1 onto node 1 of every host: 32 pages on node 0 (40 free) and 32 on node 1 fit both hosts.
    data = {"tune-0": "strict", "tune-1": "strict", f"pin-{crowded_host.pk}-0": "0", f"pin-{crowded_host.pk}-1": "1"}
    response = admin_client.post(url, {**data, f"same-{roomy.pk}": "on", "_check": "1"}, headers=HTMX)
    text = statuses(response)
    assert "The pinning fits crowded now." in text["crowded"] and "The pinning fits roomy now." in text["roomy"]


def test_a_pinning_that_does_not_fit_now_can_be_saved(admin_client, cluster, crowded):
    crowded_host, roomy = crowded
    vm = big_vm(cluster, [crowded_host, roomy], pinned_to=(0, 1))
    data = {"tune-0": "strict", "tune-1": "strict", f"pin-{crowded_host.pk}-0": "0", f"pin-{crowded_host.pk}-1": "0"}
    response = admin_client.post(reverse("vm-numa", args=[vm.pk]), {**data, f"same-{roomy.pk}": "on"}, headers=HTMX)
    assert response["HX-Redirect"] == vm.get_absolute_url()
    vm.refresh_from_db()
    assert [n["pinned_to"] for n in vm.numa_nodes] == [[0], [0]]


def test_a_template_is_judged_as_a_new_vm_made_from_it(admin_client, cluster, crowded):
    crowded_host, roomy = crowded
    vm = big_vm(cluster, [crowded_host, roomy])
    template = make_template(cluster, hosts=[crowded_host, roomy], **{n: getattr(vm, n) for n in CONFIG})
    text = statuses(admin_client.get(reverse("template-numa", args=[template.pk]), headers=HTMX))
    assert "does not fit crowded now" in text["crowded"] and "The pinning fits roomy now." in text["roomy"]


def test_the_editor_queries_do_not_grow_with_the_hosts(admin_client, cluster, crowded):
    def queries(hosts) -> int:
        vm = big_vm(cluster, hosts, name=f"vm-{len(hosts)}")
        url = reverse("vm-numa", args=[vm.pk])
        admin_client.get(url, headers=HTMX)  # the scheduler keeps host topologies between requests
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url, headers=HTMX).status_code == 200
        return len(captured)

    shape = {"numa_nodes": 2, "memory_mib": 262144, "hp1g": 64}
    more = [make_host(cluster, f"more-{i}", **shape) for i in range(3)]
    assert queries([*crowded, *more]) == queries(list(crowded))
