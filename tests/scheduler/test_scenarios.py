"""Every case of shared/scenarios: numa-fit answers are valid and fit when a fit exists; cluster verdicts match."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scheduler.core import schedule
from scheduler.whatif import answer, fit_numa, load_cluster_case

from .validity import numa_fit_problems, placement_problems

SCENARIOS = Path(__file__).resolve().parents[3] / "shared" / "scenarios"
MISSING = f"scenario files not found at {SCENARIOS} (shared/ sits beside the repository)"


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _numa_fit_cases() -> list:
    path = SCENARIOS / "numa-fit.json"
    if not path.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING))]
    return [pytest.param(s, id=s["name"]) for s in _load(path)["scenarios"]]


def _cluster_cases() -> list:
    files = sorted((SCENARIOS / "cluster").glob("*.json"))
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING))]
    return [pytest.param(_load(f), id=f.stem) for f in files]


@pytest.mark.parametrize("scenario", _numa_fit_cases())
def test_numa_fit(scenario):
    result = fit_numa(scenario["host"], scenario["vm"])
    assert result["fits"] == scenario["reference_fits"]
    assert numa_fit_problems(scenario["host"], scenario["vm"], result) == []


@pytest.mark.parametrize("scenario", _numa_fit_cases())
def test_numa_fit_expected_answer_passes_the_checker(scenario):
    """The checker itself accepts Nova's answers, so it is not stricter than the conventions."""
    assert numa_fit_problems(scenario["host"], scenario["vm"], scenario["expected"]) == []


def _subset(fragment: Any, actual: Any) -> bool:
    if isinstance(fragment, dict):
        return isinstance(actual, dict) and all(k in actual and _subset(v, actual[k]) for k, v in fragment.items())
    return fragment == actual


@pytest.mark.parametrize("scenario", _cluster_cases())
def test_cluster_scenario(scenario):
    expected = scenario["expected"]
    result = answer(scenario)
    verdicts = {h["name"]: h for h in result["hosts"]}
    assert len(verdicts) == len(result["hosts"]), "a host appears twice"

    assert (result["error"] or {}).get("code") == expected.get("error")
    if "eligible" in expected:
        assert {name for name, v in verdicts.items() if v["eligible"]} == set(expected["eligible"])
    for name, filters in expected.get("rejected", {}).items():
        verdict = verdicts[name]
        assert not verdict["eligible"]
        assert any(r["filter"] in filters for r in verdict["rejections"]), verdict["rejections"]
        assert all(r["reason"] for r in verdict["rejections"])
    if "chosen" in expected:
        assert result["chosen"] == expected["chosen"]
    if "placement" in expected:
        assert _subset(expected["placement"], result["placement"]), result["placement"]


@pytest.mark.parametrize("scenario", _cluster_cases())
def test_cluster_scenario_placement_is_valid(scenario):
    case = load_cluster_case(scenario)
    decision = schedule(case.hosts, case.vm, case.request, case.cluster)
    if decision.placement is None:
        assert decision.error is not None
        return
    host = next(h for h in case.hosts if h.id == decision.chosen).without(case.vm.id)
    assert placement_problems(host, case.vm, decision.placement) == []
    ranks = sorted(v.rank for v in decision.verdicts if v.eligible)
    assert ranks == list(range(1, len(ranks) + 1))
    assert decision.ranked[0] == decision.chosen
