"""Load balancing in the scheduler core: which host gives a VM away under each policy, which VM, and where it
goes; the cpu_load weight fed by measured loads; and the what-if tool's answers to ``balance`` requests. No
database."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from scheduler.core import Allocation, HostState, ScheduleRequest, VMRequest, build_host_state, schedule
from scheduler.core.balancing import BalancingPolicy, plan_balance
from scheduler.whatif import answer

from .factory import make_topology, make_vm

SCENARIOS = Path(__file__).resolve().parents[2] / "docs" / "scenarios"  # the public what-if examples

EVENLY = BalancingPolicy("evenly_distributed", high_utilization=80, low_utilization=20)
POWER_SAVING = BalancingPolicy("power_saving", high_utilization=80, low_utilization=20)


def host(host_id: int, load: float | None, *vms: VMRequest, cores: int = 8, pending: int = 0) -> HostState:
    """A one-socket host of ``cores`` CPUs at ``load`` percent, running ``vms`` (and a claim of ``pending`` vCPUs of
    a VM on its way in)."""
    held = [Allocation(vm.id, vcpus=vm.vcpus, memory_mib={0: vm.memory_mib}) for vm in vms]
    if pending:
        held.append(Allocation(999, pending=True, vcpus=pending, memory_mib={0: 1024}))
    topology = replace(make_topology(host_id, cores=cores), cpu_load_percent=load)
    return build_host_state(topology, held)


def vm(vm_id: int, vcpus: int, on: int, **fields) -> VMRequest:
    return make_vm(vm_id, cores=vcpus, running_on=on, **fields)


def test_policy_none_moves_nothing():
    web = vm(10, 4, on=1)
    hosts = [host(1, 95, web), host(2, 10)]
    assert plan_balance(hosts, [web], BalancingPolicy("none")) is None


def test_an_over_utilized_host_gives_its_vm_to_the_least_loaded_host():
    web = vm(10, 4, on=1)
    hosts = [host(1, 90, web), host(2, 40), host(3, 10)]
    move = plan_balance(hosts, [web], EVENLY)
    assert (move.vm_id, move.source, move.host_id, move.trigger) == (10, 1, 3, "over_utilized")
    assert move.reason == "host h1 is over-utilized: its CPU load of 90 % is above the high utilization of 80 %"


def test_a_load_over_high_for_less_than_the_duration_moves_nothing():
    web = vm(10, 4, on=1)
    hosts = [host(1, 90, web), host(2, 10)]
    assert plan_balance(hosts, [web], EVENLY, lasting=set()) is None
    assert plan_balance(hosts, [web], EVENLY, lasting={1}).host_id == 2


def test_the_vm_that_relieves_the_host_most_moves():
    """7.2 of 8 CPUs busy, shared by vCPUs: the 4-vCPU VM keeps 3.6 busy (45 % of the host), the others 1.8."""
    small, big, other = vm(10, 2, on=1), vm(11, 4, on=1), vm(12, 2, on=1)
    hosts = [host(1, 90, small, big, other), host(2, 30)]
    move = plan_balance(hosts, [small, big, other], EVENLY)
    assert (move.vm_id, move.relief) == (11, 45.0)


def test_a_vm_that_would_overload_every_destination_gives_way_to_a_smaller_one():
    small, big = vm(10, 2, on=1), vm(11, 4, on=1)
    hosts = [host(1, 90, small, big), host(2, 50)]  # big would take h2 to 50 + 50 %, small to 50 + 25 %
    assert plan_balance(hosts, [small, big], EVENLY).vm_id == 10


def test_never_to_another_over_utilized_host():
    web, db = vm(10, 1, on=1), vm(11, 1, on=2)
    hosts = [host(1, 95, web), host(2, 85, db)]
    assert plan_balance(hosts, [web, db], EVENLY) is None


def test_vms_on_their_way_in_count_against_the_destination():
    web = vm(10, 2, on=1)
    assert plan_balance([host(1, 90, web), host(2, 30)], [web], EVENLY).host_id == 2
    # 30 % + a claim of 4 vCPUs busy (50 %) + the VM (25 %) is above 80 %.
    assert plan_balance([host(1, 90, web), host(2, 30, pending=4)], [web], EVENLY) is None


def test_hosts_without_a_measured_load_or_not_up_take_no_part():
    web = vm(10, 2, on=1)
    hosts = [host(1, 90, web), host(2, None), build_host_state(replace(host(3, 5).topology, status="maintenance"))]
    assert plan_balance(hosts, [web], EVENLY) is None


def test_manual_only_and_pinned_vms_never_move():
    manual = vm(10, 2, on=1, migration_mode="user_migratable")
    pinned = vm(11, 2, on=1, migration_mode="pinned", placement_hosts=[1])
    hosts = [host(1, 95, manual, pinned), host(2, 10)]
    assert plan_balance(hosts, [manual, pinned], EVENLY) is None
    assert plan_balance(hosts, [manual, pinned], POWER_SAVING) is None


def test_evenly_distributed_leaves_an_under_utilized_host_alone():
    idle = vm(10, 1, on=1)
    hosts = [host(1, 5, idle), host(2, 50)]
    assert plan_balance(hosts, [idle], EVENLY) is None


def test_power_saving_empties_an_under_utilized_host_for_long_enough():
    idle = vm(10, 1, on=1)
    hosts = [host(1, 5, idle), host(2, 50)]
    assert plan_balance(hosts, [idle], POWER_SAVING, lasting=set()) is None
    move = plan_balance(hosts, [idle], POWER_SAVING, lasting={1})
    assert (move.source, move.host_id, move.trigger) == (1, 2, "under_utilized")
    assert move.reason.endswith("below the low utilization of 20 %, so power saving empties it")


def test_power_saving_moves_off_an_over_utilized_host_first():
    busy, idle = vm(10, 2, on=1), vm(11, 1, on=2)
    hosts = [host(1, 90, busy), host(2, 5, idle), host(3, 40)]
    move = plan_balance(hosts, [busy, idle], POWER_SAVING)
    assert (move.vm_id, move.trigger) == (10, "over_utilized")


def test_consolidation_prefers_a_busier_host_to_another_idle_one():
    """The least loaded host would be h2, but it is under-utilized itself: h3 takes the VM."""
    idle, other = vm(10, 1, on=1), vm(11, 1, on=2)
    hosts = [host(1, 5, idle), host(2, 10, other, vm(12, 1, on=2)), host(3, 60)]
    move = plan_balance(hosts, [idle], POWER_SAVING)
    assert (move.source, move.host_id) == (1, 3)


def test_idle_hosts_are_emptied_one_way():
    """Only idle hosts: the one with fewer VMs is emptied onto the other, never the other way round."""
    a, b, c = vm(10, 1, on=1), vm(11, 1, on=2), vm(12, 1, on=2)
    hosts = [host(1, 10, a), host(2, 5, b, c)]
    move = plan_balance(hosts, [a, b, c], POWER_SAVING)
    assert (move.vm_id, move.source, move.host_id) == (10, 1, 2)
    # Once h1 is empty, h2's VMs have nowhere to go: h1 is emptied before h2.
    emptied = [host(1, 1), host(2, 15, a, b, c)]
    moved = [replace(v, running_on=2) for v in (a, b, c)]
    assert plan_balance(emptied, moved, POWER_SAVING) is None


def test_the_measured_load_ranks_hosts_for_the_cpu_load_weight():
    """h2 holds fewer vCPUs but is busier than h3: with loads measured h3 wins, without them h2 does."""
    new = make_vm(20, cores=2)
    allocated = [vm(30, 4, on=3)]
    measured = [host(2, 60), host(3, 10, *allocated)]
    unmeasured = [host(2, None), host(3, None, *allocated)]
    assert schedule(measured, new, ScheduleRequest()).chosen == 3
    assert schedule(unmeasured, new, ScheduleRequest()).chosen == 2


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="unknown scheduling policy 'round_robin'"):
        BalancingPolicy("round_robin")


# -- the what-if tool -------------------------------------------------------------------------------------------


def scenario(name: str) -> dict:
    return json.loads((SCENARIOS / f"{name}.json").read_text())


def moves(document: dict) -> list[tuple[str, str, str]]:
    return [(m["vm"], m["from"], m["to"]) for m in answer(document)["moves"]]


def test_whatif_evenly_distributed_moves_the_vm_that_relieves_most_where_it_fits():
    result = answer(scenario("balance_evenly"))
    assert result["error"] is None
    (move,) = result["moves"]
    assert (move["vm"], move["from"], move["to"], move["suspended"]) == ("web", "h1", "h3", [])
    assert move["reason"] == "host h1 is over-utilized: its CPU load of 92 % is above the high utilization of 80 %"
    assert move["placement"]["host"] == "h3" and move["placement"]["memory_mib"] == {"0": 2048}


def test_whatif_power_saving_empties_the_emptiest_idle_host_onto_a_busy_one():
    assert moves(scenario("balance_power_saving")) == [("idle", "h1", "h3")]


def test_whatif_without_a_policy_or_below_the_threshold_moves_nothing():
    document = scenario("balance_evenly")
    document["cluster"]["scheduling_policy"] = "none"
    assert answer(document) == {"error": None, "moves": []}
    document["cluster"].update(scheduling_policy="evenly_distributed", high_utilization=95)
    assert moves(document) == []


def test_whatif_manual_only_vms_stay():
    document = scenario("balance_evenly")
    for data in document["vms"]:
        if data["name"] in ("web", "cache"):
            data["migration_mode"] = "user_migratable"
    assert moves(document) == []


def test_whatif_refuses_an_unknown_policy():
    document = scenario("balance_evenly")
    document["cluster"]["scheduling_policy"] = "round_robin"
    with pytest.raises(ValueError, match="unknown scheduling policy 'round_robin'"):
        answer(document)
