"""``manage.py schedule``: reads both scenario formats, refuses bad files with a CommandError."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

SCENARIOS = Path(__file__).resolve().parents[2] / "docs" / "scenarios"  # the public what-if examples

CLUSTER = {
    "format": "cluster-scenario/v1",
    "name": "tiny",
    "cluster": {"threads_as_cores": False},
    "hosts": [
        {
            "name": "h1",
            "status": "up",
            "cpu_flags": [],
            "sockets": 1,
            "cores_per_socket": 2,
            "threads_per_core": 1,
            "cpus": [{"id": 0, "socket": 0, "core": 0, "node": 0}, {"id": 1, "socket": 0, "core": 1, "node": 0}],
            "numa_nodes": [{"index": 0, "cpus": [0, 1], "memory_mib": 4096, "hugepages": {"1048576": 2}}],
            "allocations": [],
        }
    ],
    "vm": {
        "name": "vm",
        "optimized_for": "high_performance",
        "sockets": 1,
        "cores": 2,
        "threads": 1,
        "memory_mib": 2048,
        "cpu_pinning_policy": "dedicated",
        "numa_nodes": [],
        "hugepage_kib": 1048576,
        "io_threads": 1,
    },
    "request": {"action": "start", "destination": None, "force": False},
}

NUMA_FIT = {
    "format": "numa-fit/v1",
    "scenarios": [
        {
            "name": "one",
            "host": [{"id": 0, "cpus": [0, 1], "siblings": [[0, 1]], "memory_mib": 4096, "pinned_cpus": []}],
            "vm": {"numa_nodes": [{"id": 0, "vcpus": [0, 1], "memory_mib": 1024}], "thread_policy": "require"},
        },
        {
            "name": "two",
            "host": [{"id": 0, "cpus": [0], "siblings": [[0]], "memory_mib": 4096, "pinned_cpus": [0]}],
            "vm": {"numa_nodes": [{"id": 0, "vcpus": [0], "memory_mib": 1024}], "hugepage_kib": None},
        },
    ],
}


def run(tmp_path, document) -> object:
    path = tmp_path / "scenario.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    out = StringIO()
    call_command("schedule", str(path), stdout=out)
    return json.loads(out.getvalue())


def test_cluster_scenario(tmp_path):
    result = run(tmp_path, CLUSTER)
    assert result["error"] is None
    assert result["hosts"] == [{"name": "h1", "eligible": True, "score": result["hosts"][0]["score"], "rank": 1}]
    assert result["chosen"] == "h1"
    placement = result["placement"]
    assert placement["cpus"] == {"0": 0, "1": 1}
    assert placement["emulator_cpus"] == placement["io_thread_cpus"] == [0, 1]
    assert placement["hugepages"] == {"0": {"1048576": 2}}


def test_numa_fit_file_answers_each_scenario_in_order(tmp_path):
    result = run(tmp_path, NUMA_FIT)
    assert result == [
        {"name": "one", "fits": True, "mapping": {"0": 0}, "pinning": {"0": 0, "1": 1}, "pagesize_kib": {"0": 4}},
        {"name": "two", "fits": False, "mapping": {}, "pinning": {}, "pagesize_kib": {}},
    ]


def test_unknown_destination_is_an_answer_not_a_crash(tmp_path):
    document = {**CLUSTER, "request": {"action": "start", "destination": "h9"}}
    assert run(tmp_path, document)["error"]["code"] == "unknown_host"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        (json.dumps({"format": "other/v1"}), "unknown scenario format 'other/v1'"),
        (json.dumps({"format": "numa-fit/v1"}), "lacks the field 'scenarios'"),
        (json.dumps({**CLUSTER, "vm": {**CLUSTER["vm"], "cpu_pinning": "0#"}}), "bad CPU pinning: at character 2"),
        (json.dumps([1, 2]), "unknown scenario format None"),
    ],
)
def test_bad_files(tmp_path, content, message):
    with pytest.raises(CommandError, match=message):
        run(tmp_path, content)


def test_missing_file(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("schedule", str(tmp_path / "nope.json"))


def test_evacuate_example_plans_the_moves_together(tmp_path):
    document = json.loads((SCENARIOS / "evacuate_together.json").read_text())
    result = run(tmp_path, document)
    assert result["error"] is None
    moves = {m["vm"]: (m["to"], m["suspended"]) for m in result["moves"]}
    assert moves == {"large": ("h2", []), "paged": ("h3", [])}
    paged = next(m["placement"] for m in result["moves"] if m["vm"] == "paged")
    assert paged["hugepages"] == {"0": {"1048576": 2}}
    assert result["stays"] == [
        {"vm": "pinned", "reason": "VM pinned is pinned to host: its migration mode does not allow migration"}
    ]


def test_evacuate_by_the_system_leaves_manual_only_vms(tmp_path):
    document = json.loads((SCENARIOS / "evacuate_together.json").read_text())
    document["request"]["initiator"] = "system"
    result = run(tmp_path, document)
    assert [m["vm"] for m in result["moves"]] == ["large"]
    assert [s["vm"] for s in result["stays"]] == ["paged", "pinned"]


def test_unknown_v2_requests_are_refused_clearly(tmp_path):
    document = {**CLUSTER, "format": "cluster-scenario/v2", "request": {"action": "hibernate"}}
    with pytest.raises(CommandError, match="cluster-scenario/v2 request 'hibernate' is not known"):
        run(tmp_path, document)


def test_allow_degraded_lists_hosts_that_fit_with_settings_suspended(tmp_path):
    """The VM's 1 GiB pages fit h1 whole; h2 has no such pages and takes it with hugepages suspended, after h1."""
    flat = {
        **CLUSTER["hosts"][0],
        "name": "h2",
        "numa_nodes": [{"index": 0, "cpus": [0, 1], "memory_mib": 8192, "hugepages": {}}],
    }
    document = {
        **CLUSTER,
        "format": "cluster-scenario/v2",
        "hosts": [CLUSTER["hosts"][0], flat],
        "request": {"action": "start", "allow_degraded": True},
    }
    result = run(tmp_path, document)
    h1, h2 = result["hosts"]
    assert result["chosen"] == "h1" and "suspended" not in h1 and result["placement"]["suspended"] == []
    assert (h2["eligible"], h2["rank"], h2["suspended"]) == (True, 2, ["hugepages"])
    assert h2["rejections"] == [{"filter": "HugePages", "reason": "the host has no 1 GiB pages"}]
    document["hosts"] = [flat]
    placement = run(tmp_path, document)["placement"]
    assert placement["suspended"] == ["hugepages"] and placement["hugepages"] == {}
    assert placement["memory_mib"] == {"0": 2048} and placement["cpus"] == {"0": 0, "1": 1}
    document["request"]["allow_degraded"] = False
    assert run(tmp_path, document)["error"]["code"] == "no_host"


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.json")), ids=lambda p: p.stem)
def test_every_public_example_is_answered_and_listed(tmp_path, path):
    answer = run(tmp_path, json.loads(path.read_text()))
    assert answer["error"] is None and (answer.get("moves") or answer.get("chosen")), answer
    assert f"`{path.name}`" in (SCENARIOS / "README.md").read_text()


def test_affinity_example_keeps_the_vm_apart_and_prefers_its_rack(tmp_path):
    result = run(tmp_path, json.loads((SCENARIOS / "affinity_spread.json").read_text()))
    verdicts = {h["name"]: h for h in result["hosts"]}
    assert verdicts["h1"]["rejections"] == [
        {"filter": "Affinity", "reason": "VM affinity group db-spread: VM db-1 already runs there"}
    ]
    assert verdicts["h2"]["rejections"][0]["reason"] == "VM affinity group db-spread: VM db-2 already runs there"
    assert (verdicts["h4"]["eligible"], verdicts["h5"]["rank"], result["chosen"]) == (True, 1, "h5")


def test_an_affinity_group_naming_an_unknown_vm_is_refused(tmp_path):
    document = json.loads((SCENARIOS / "affinity_spread.json").read_text())
    document["cluster"]["affinity_groups"][0]["vms"].append("db-9")
    with pytest.raises(CommandError, match="affinity group db-spread names db-9, not in the scenario"):
        run(tmp_path, document)
