"""Load balancing: the one migration a cluster's scheduling policy makes now, decided on CPU load as oVirt's
balancing units do (``EvenDistributionBalancePolicyUnit``, ``PowerSavingBalancePolicyUnit``,
``FindVmAndDestinations``).

A host's load is the percent of its online CPUs' time that is busy (``HostTopology.cpu_load_percent``); only up
hosts with a measured load take part. ``lasting`` names the hosts whose load has stayed beyond a threshold (above
high or below low utilization) for the cluster's over-utilization duration: the caller keeps the time; without
it every load counts as lasting.

* Evenly distributed: a host whose lasting load is above ``high_utilization`` is over-utilized and gives one VM
  away, the most loaded host first.
* Power saving: the same; then a host whose lasting load is below ``low_utilization`` and that runs VMs is
  emptied onto the others (consolidation, so that idle hosts can be switched off), the host with the fewest VMs
  first, then the least loaded.
* None: nothing moves.

A VM's own load is not measured, so a host's busy CPUs are shared among the VMs running there by vCPUs: a VM
keeps ``min(vcpus, busy CPUs x vcpus / running vCPUs)`` CPUs busy and takes them along. The VM that moves is,
among those the caller lets move, the one whose move relieves its host most (ties: less memory to copy, then
the lower id) and that has a destination. (oVirt tries the least busy VM first; one move per run ends an
over-utilization sooner with the busiest.) A destination is an up host whose load, with the VMs on their way in
(pending claims, busy on every vCPU) and this VM, stays at or below ``high_utilization``: never an over-utilized
host, and never one the move would push over, so the VM does not bounce back. A consolidation goes to a host
that is not under-utilized where the VM fits one (oVirt's power saving weights prefer the busiest hosts), else to
an under-utilized host that power saving empties after the source, so VMs flow one way. Among the destinations
the scheduler chooses, with its filters and weights: the most suitable, least loaded and least pinned host.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from .model import ClusterConfig, Placement, ScheduleRequest, VMRequest
from .pipeline import schedule
from .state import HostState

Policy = Literal["none", "evenly_distributed", "power_saving"]
Trigger = Literal["over_utilized", "under_utilized"]

POLICIES: tuple[Policy, ...] = ("none", "evenly_distributed", "power_saving")


@dataclass(frozen=True, slots=True)
class BalancingPolicy:
    """A cluster's scheduling policy and oVirt's parameters for it: HighUtilization and LowUtilization (percent of
    CPU load; the low one matters to power saving only)."""

    name: Policy = "none"
    high_utilization: float = 80
    low_utilization: float = 20

    def __post_init__(self) -> None:
        if self.name not in POLICIES:
            raise ValueError(f"unknown scheduling policy {self.name!r}; known: {', '.join(POLICIES)}")


@dataclass(frozen=True, slots=True)
class BalanceMove:
    """The VM to migrate, the host it leaves and why, and its placement on the destination.

    ``source_load`` is the source's load now and ``relief`` the part of it the VM takes along (percent)."""

    vm_id: int
    source: int
    trigger: Trigger
    reason: str
    source_load: float
    relief: float
    placement: Placement

    @property
    def host_id(self) -> int:
        return self.placement.host_id


def plan_balance(
    hosts: Sequence[HostState],
    vms: Sequence[VMRequest],
    policy: BalancingPolicy,
    cluster: ClusterConfig | None = None,
    lasting: Collection[int] | None = None,
) -> BalanceMove | None:
    """The move ``policy`` makes now among ``hosts`` (a cluster's), or None. ``vms`` are the running VMs that
    automation may move; ``lasting`` as the module says (None: every load is taken as lasting)."""
    if policy.name == "none":
        return None
    measured = [h for h in hosts if h.status == "up" and h.cpu_load_percent is not None]
    running: dict[int, list[VMRequest]] = defaultdict(list)
    for vm in vms:
        if vm.running_on is not None:
            running[vm.running_on].append(vm)
    high, low = policy.high_utilization, policy.low_utilization

    def lasts(host: HostState) -> bool:
        return lasting is None or host.id in lasting

    over = sorted(
        (h for h in measured if _load(h) > high and lasts(h) and running[h.id]), key=lambda h: (-_load(h), h.id)
    )
    sources: list[tuple[HostState, Trigger]] = [(h, "over_utilized") for h in over]
    if policy.name == "power_saving":
        under = sorted((h for h in measured if _load(h) < low and lasts(h) and running[h.id]), key=_emptied_first)
        sources += [(h, "under_utilized") for h in under]

    for source, trigger in sources:
        targets = [h for h in measured if h.id != source.id]
        tiers = [targets]
        if trigger == "under_utilized":
            after = _emptied_first(source)
            tiers = [
                [h for h in targets if _load(h) >= low],
                [h for h in targets if _load(h) < low and _emptied_first(h) > after],
            ]
        busy = _load(source) * source.online_count / 100
        # The VMs running there hold the host's allocations, except the claims of VMs still on their way in.
        running_vcpus = source.allocated_vcpus - source.pending_vcpus
        shares = [(vm, min(vm.vcpus, busy * vm.vcpus / max(running_vcpus, vm.vcpus))) for vm in running[source.id]]
        for vm, share in sorted(shares, key=lambda pair: (-pair[1], pair[0].memory_mib, pair[0].id)):
            for tier in tiers:
                allowed = [h for h in tier if _expected(h, share) <= high]
                decision = schedule(allowed, vm, ScheduleRequest(action="migrate"), cluster) if allowed else None
                if decision is None or decision.placement is None:
                    continue
                return BalanceMove(
                    vm_id=vm.id,
                    source=source.id,
                    trigger=trigger,
                    reason=_reason(source, trigger, policy),
                    source_load=_load(source),
                    relief=100 * share / (source.online_count or 1),
                    placement=decision.placement,
                )
    return None


def _load(host: HostState) -> float:
    return host.cpu_load_percent or 0.0


def _emptied_first(host: HostState) -> tuple[int, float, int]:
    """Power saving empties the under-utilized host with the fewest VMs first, then the least loaded one."""
    return len(host.vm_ids), _load(host), host.id


def _expected(host: HostState, share: float) -> float:
    """The host's load once its pending claims have arrived (busy on every vCPU) and a VM keeping ``share`` CPUs
    busy has joined it."""
    return _load(host) + 100 * (host.pending_vcpus + share) / (host.online_count or 1)


def _reason(host: HostState, trigger: Trigger, policy: BalancingPolicy) -> str:
    load = _load(host)
    if trigger == "over_utilized":
        return (
            f"host {host.name} is over-utilized: its CPU load of {load:.0f} % is above the high utilization of "
            f"{policy.high_utilization:g} %"
        )
    return (
        f"host {host.name} is under-utilized: its CPU load of {load:.0f} % is below the low utilization of "
        f"{policy.low_utilization:g} %, so power saving empties it"
    )
