"""Affinity rules in the scheduler: each rule kind, enforcing (a filter naming the group) or not (a weight by
priority), VM to VM and VM to host; oVirt's VmAffinityFilterPolicyUnitTest cases among them."""

from __future__ import annotations

import pytest

from scheduler.core import AffinityGroup, ClusterConfig, ScheduleRequest, schedule

from .factory import held, make_host, make_vm

START = ScheduleRequest(action="start")
VM = 100


def hosts(*placements: tuple[int, ...]):
    """Hosts 1..n, each holding the VMs listed for it (small allocations: room for everything)."""
    return [make_host(i, cores=8, allocations=[held(v) for v in vms]) for i, vms in enumerate(placements, start=1)]


def group(name="g", vms=(VM, 7, 8), **fields) -> AffinityGroup:
    return AffinityGroup(name, vms={v: f"vm{v}" for v in vms}, **fields)


def decide(hosts_, *groups, vm=None, request=START):
    return schedule(hosts_, vm or make_vm(VM), request, ClusterConfig(affinity_groups=groups))


def eligible(decision) -> list[int]:
    return sorted(v.host_id for v in decision.verdicts if v.eligible)


@pytest.mark.parametrize(
    ("members_on", "allowed"),
    [
        ({2: (7,)}, [2]),  # members on host 2 -> only host 2
        ({2: (7,), 3: (8,)}, [2, 3]),  # members on hosts 2 and 3 -> either
        ({}, [1, 2, 3]),  # the first VM of the group to run -> every host
    ],
)
def test_positive_enforcing_vm_rule(members_on, allowed):
    placed = [members_on.get(i, ()) for i in (1, 2, 3)]
    decision = decide(hosts(*placed), group(vm_rule="positive"))
    assert eligible(decision) == allowed
    for verdict in decision.verdicts:
        if not verdict.eligible:
            assert verdict.rejections[0].filter == "Affinity"
            assert "VM affinity group g: it must run with VM" in verdict.rejections[0].reason


def test_negative_enforcing_vm_rule_names_the_group_and_the_vm():
    decision = decide(hosts((7,), (), (8,)), group("db-spread", vm_rule="negative"))
    assert eligible(decision) == [2]
    reasons = {v.host_id: v.rejections[0].reason for v in decision.verdicts if not v.eligible}
    assert reasons == {
        1: "VM affinity group db-spread: VM vm7 already runs there",
        3: "VM affinity group db-spread: VM vm8 already runs there",
    }


def test_the_vm_itself_does_not_count_against_its_own_rule():
    # A running VM (holding resources on host 1) judged for a migration: its own allocation is not a member.
    vm = make_vm(VM, running_on=1)
    request = ScheduleRequest(action="migrate")
    decision = decide(hosts((VM,), (7,)), group(vm_rule="negative"), vm=vm, request=request)
    assert eligible(decision) == []  # host 1 runs it, host 2 runs vm7
    assert "already runs there" in decision.verdict(2).rejections[0].reason


@pytest.mark.parametrize(("rule", "allowed"), [("positive", [2, 3]), ("negative", [1])])
def test_enforcing_vm_to_host_rules(rule, allowed):
    decision = decide(hosts((), (), ()), group(host_rule=rule, hosts=frozenset({2, 3})))
    assert eligible(decision) == allowed
    refused = next(v for v in decision.verdicts if not v.eligible)
    assert refused.rejections[0].reason.startswith("VM to host affinity group g:")


def test_a_disabled_rule_does_nothing():
    decision = decide(hosts((7,), ()), group(vm_rule="disabled", host_rule="disabled", hosts=frozenset({2})))
    assert eligible(decision) == [1, 2]


@pytest.mark.parametrize(
    ("fields", "best"),
    [
        ({"vm_rule": "positive"}, 2),  # with vm7
        ({"vm_rule": "negative"}, 1),  # away from vm7
        ({"host_rule": "positive", "hosts": frozenset({1})}, 1),
        ({"host_rule": "negative", "hosts": frozenset({2})}, 1),
    ],
)
def test_soft_rules_only_weigh(fields, best):
    # Host 2 is otherwise the better one (host 1 busier): a soft rule may overturn that, never refuses.
    busy = make_host(1, cores=8, allocations=[held(9, exclusive=[0])])
    other = make_host(2, cores=8, allocations=[held(7)])
    assert decide([busy, other]).chosen == 2
    soft = group(vm_enforcing=False, host_enforcing=False, **fields)
    decision = decide([busy, other], soft)
    assert eligible(decision) == [1, 2]
    assert decision.chosen == best


def test_the_higher_priority_soft_group_wins():
    # Two soft groups pull the VM to different hosts: the one of higher priority decides.
    with_7 = group("with-7", vms=(VM, 7), vm_rule="positive", vm_enforcing=False, priority=5)
    with_8 = group("with-8", vms=(VM, 8), vm_rule="positive", vm_enforcing=False, priority=1)
    assert decide(hosts((7,), (8,)), with_7, with_8).chosen == 1
    assert decide(hosts((7,), (8,)), replace_priority(with_7, 1), replace_priority(with_8, 5)).chosen == 2


def replace_priority(g: AffinityGroup, priority: float) -> AffinityGroup:
    return AffinityGroup(g.name, g.vms, g.hosts, g.vm_rule, g.vm_enforcing, g.host_rule, g.host_enforcing, priority)


def test_reasons_list_groups_by_priority():
    low = group("low", vms=(VM, 7), vm_rule="negative", priority=1)
    high = group("high", vms=(VM, 7), vm_rule="negative", priority=9)
    (verdict, _) = decide(hosts((7,), ()), low, high).verdicts
    assert verdict.rejections[0].reason.index("group high") < verdict.rejections[0].reason.index("group low")


def test_a_user_maintenance_may_ignore_enforcing_vm_rules_but_not_host_rules():
    apart = group("apart", vm_rule="negative", host_rule="negative", hosts=frozenset({3}))
    request = ScheduleRequest(action="start", ignore_vm_affinity=True)
    decision = decide(hosts((7,), (), ()), apart, request=request)
    assert eligible(decision) == [1, 2]
