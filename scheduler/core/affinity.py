"""Affinity groups, oVirt 4.4's model: a VM-to-VM rule and a VM-to-host rule per group, each positive, negative or
disabled, enforcing (a filter) or not (a weight), and a priority (higher first).

* VM to VM, positive: the VM runs on a host where the group's other running VMs run (anywhere when none runs);
  negative: on no host where one of them runs. A VM "runs" on every host where it holds resources, so a VM on
  its way in counts on its destination too.
* VM to host, positive: the VM runs on one of the group's hosts; negative: on none of them.

The filter ``Affinity`` refuses a host for every enforcing rule it breaks, naming the group; the weights
``vm_affinity`` and ``vm_to_host_affinity`` score the rules that do not enforce, each broken group counting by
its priority, so that a higher-priority group outweighs a lower one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

from .model import AffinityGroup
from .state import HostState


def groups_of(vm_id: int, groups: Sequence[AffinityGroup]) -> list[AffinityGroup]:
    """The VM's groups with a rule, highest priority first (then by name)."""
    mine = [g for g in groups if vm_id in g.vms and (g.vm_rule != "disabled" or g.host_rule != "disabled")]
    return sorted(mine, key=lambda g: (-g.priority, g.name))


def _names(vm_ids: Sequence[int], group: AffinityGroup) -> str:
    names = sorted(group.vms[v] for v in vm_ids)
    return f"VM {names[0]}" if len(names) == 1 else "VMs " + ", ".join(names)


def vm_rule_break(
    vm_id: int,
    group: AffinityGroup,
    host: HostState,
    where: Mapping[int, frozenset[int]],
    together: frozenset[int] = frozenset(),
) -> str:
    """Why ``host`` breaks the group's VM-to-VM rule for the VM, or "". ``where``: member id -> hosts it runs on;
    ``together``: VMs that move with this one to the same host (an affinity closure), which follow it."""
    others = [v for v in group.vms if v != vm_id and v not in together and where.get(v)]
    if group.vm_rule == "negative":
        here = [v for v in others if host.id in where[v]]
        if here:
            verb = "runs" if len(here) == 1 else "run"
            return f"VM affinity group {group.name}: {_names(here, group)} already {verb} there"
    elif group.vm_rule == "positive" and others and not any(host.id in where[v] for v in others):
        verb = "runs" if len(others) == 1 else "run"
        return f"VM affinity group {group.name}: it must run with {_names(others, group)}, which {verb} elsewhere"
    return ""


def host_rule_break(group: AffinityGroup, host: HostState) -> str:
    """Why ``host`` breaks the group's VM-to-host rule, or ""."""
    if group.host_rule == "positive" and host.id not in group.hosts:
        return f"VM to host affinity group {group.name}: the host is not one of the group's hosts"
    if group.host_rule == "negative" and host.id in group.hosts:
        return f"VM to host affinity group {group.name}: the group's VMs must keep off this host"
    return ""


def members_where(groups: Sequence[AffinityGroup], hosts: Sequence[HostState]) -> dict[int, frozenset[int]]:
    """Member VM id -> the hosts among ``hosts`` it holds resources on (running, or claimed on its way in)."""
    members = {v for g in groups for v in g.vms}
    found: dict[int, set[int]] = {}
    for host in hosts:
        for vm_id in members & host.vm_ids:
            found.setdefault(vm_id, set()).add(host.id)
    return {v: frozenset(h) for v, h in found.items()}


def affinity_judge(
    vm_id: int,
    groups: Sequence[AffinityGroup],
    ignore_vm_rules: bool = False,
    together: frozenset[int] = frozenset(),
    member_hosts: Mapping[int, frozenset[int]] | None = None,
) -> Callable[[Sequence[HostState]], dict[int, str]] | None:
    """The filter's judge for the VM's enforcing rules (None: it has none). ``ignore_vm_rules``: a user's
    maintenance that nothing else lets empty the host sets it (oVirt's IgnoreVmToVmAffinityForHostMaintenance);
    ``together``: see :func:`vm_rule_break`; ``member_hosts``: where the members run (None: the judged hosts
    say)."""
    hard_vm = [] if ignore_vm_rules else [g for g in groups if g.vm_rule != "disabled" and g.vm_enforcing]
    hard_host = [g for g in groups if g.host_rule != "disabled" and g.host_enforcing]
    if not hard_vm and not hard_host:
        return None

    def judge(hosts: Sequence[HostState]) -> dict[int, str]:
        where = member_hosts if member_hosts is not None else members_where(hard_vm, hosts)
        out = {}
        for i, host in enumerate(hosts):
            reasons = [r for g in hard_vm if (r := vm_rule_break(vm_id, g, host, where, together))]
            reasons += [r for g in hard_host if (r := host_rule_break(g, host))]
            if reasons:
                out[i] = "; ".join(reasons)
        return out

    return judge


def soft_scorer(
    vm_id: int,
    groups: Sequence[AffinityGroup],
    kind: Literal["vm", "host"],
    together: frozenset[int] = frozenset(),
    member_hosts: Mapping[int, frozenset[int]] | None = None,
) -> Callable[[Sequence[HostState]], list[float]] | None:
    """A weight in [0, 1] over the VM's non-enforcing rules of ``kind``: the priorities of the groups a host breaks,
    over those of all of them (None: it has none)."""
    if kind == "vm":
        soft = [g for g in groups if g.vm_rule != "disabled" and not g.vm_enforcing]
    else:
        soft = [g for g in groups if g.host_rule != "disabled" and not g.host_enforcing]
    if not soft:
        return None
    weights = [max(g.priority, 0.0) for g in soft]
    if not any(weights):
        weights = [1.0] * len(soft)
    total = sum(weights)

    def score(hosts: Sequence[HostState]) -> list[float]:
        where = (member_hosts if member_hosts is not None else members_where(soft, hosts)) if kind == "vm" else {}
        out = []
        for host in hosts:
            broken = sum(
                w
                for g, w in zip(soft, weights, strict=True)
                if (vm_rule_break(vm_id, g, host, where, together) if kind == "vm" else host_rule_break(g, host))
            )
            out.append(min(broken / total, 1.0))
        return out

    return score


def positive_closure(vm_ids: Iterable[int], groups: Sequence[AffinityGroup]) -> set[int]:
    """The VMs in positive enforcing VM-to-VM affinity with ``vm_ids``, transitively, ``vm_ids`` included: those
    that must run together with them (oVirt's positiveAffinityClosure)."""
    closure = set(vm_ids)
    linked = [set(g.vms) for g in groups if g.vm_rule == "positive" and g.vm_enforcing]
    grown = True
    while grown:
        grown = False
        for members in linked:
            if members & closure and not members <= closure:
                closure |= members
                grown = True
    return closure


def broken_members(group: AffinityGroup, where: Mapping[int, int]) -> list[int]:
    """The group's VMs that run where its rules say they should not (``where``: running member -> its host), the
    ones to move to repair it first: for a positive VM rule those away from the host most members share (ties:
    the lower host id), for a negative one all but one on each shared host; for a host rule those on the wrong
    hosts."""
    running = {v: h for v, h in where.items() if v in group.vms}
    broken: list[int] = []
    if group.host_rule == "positive":
        broken += [v for v, h in running.items() if h not in group.hosts]
    elif group.host_rule == "negative":
        broken += [v for v, h in running.items() if h in group.hosts]
    by_host: dict[int, list[int]] = {}
    for v, h in sorted(running.items()):
        by_host.setdefault(h, []).append(v)
    if group.vm_rule == "positive" and len(by_host) > 1:
        home = min(by_host, key=lambda h: (-len(by_host[h]), h))
        broken += [v for h, members in by_host.items() if h != home for v in members]
    elif group.vm_rule == "negative":
        broken += [v for members in by_host.values() for v in members[1:]]
    return list(dict.fromkeys(broken))


def repairs(group: AffinityGroup, vm_id: int, host_id: int, where: Mapping[int, int]) -> bool:
    """Whether ``vm_id`` keeps the group's rules once moved to ``host_id``."""
    return vm_id not in broken_members(group, {**where, vm_id: host_id})
