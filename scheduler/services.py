"""Scheduling against the database: snapshot, decide with the pure core, and claim under a row lock.

A claim is the decision written as a pending Allocation. Every claim counts up its host's ``generation``
(Nova's resource provider generation), in a compare-and-set on the generation the decision was made with: a
claim that finds it changed judges the host again under its row lock against its allocations as they are
now. Two schedulers racing for the same pCPUs or hugepages therefore never both win. (SQLite has no row
locks; there every write transaction starts IMMEDIATE and so holds the database's write lock, which
serializes claims just the same.) Freeing resources leaves the generation alone: a decision made while more
was held stays valid.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace

from django.db import transaction
from django.db.models import F

from hpadmin.inventory.models import Cluster, Host
from hpadmin.vms.models import VirtualMachine, VmConfig
from hpadmin.vms.profiles import inherit
from scheduler.core import balancing, evacuation, relaxation
from scheduler.core import model as core
from scheduler.core.affinity import groups_of
from scheduler.core.balancing import BalanceMove, BalancingPolicy
from scheduler.core.evacuation import EvacuationPlan
from scheduler.core.pipeline import schedule
from scheduler.core.state import build_host_state

from . import snapshot
from .models import Allocation, AllocationState

CLAIM_ATTEMPTS = 3  # hosts tried in rank order when others claim the first ones meanwhile


@dataclass(frozen=True)
class HostVerdict:
    """A host's verdict for one VM, with the Host row for display."""

    host: Host
    eligible: bool
    score: float | None
    rank: int | None
    rejections: tuple[tuple[str, str], ...]
    suspended: tuple[tuple[str, str], ...] = ()  # (setting, reason) an eligible host cannot honour


class NoHostError(Exception):
    """Nothing qualifies; ``decision`` says why for every host."""

    def __init__(self, message: str, decision: core.Decision | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.decision = decision


def decide(
    vm: VirtualMachine,
    *,
    action: str,
    destination: Host | None = None,
    force: bool = False,
    exclude: Iterable[int] = (),
    hosts: list[Host] | None = None,
    vm_request: core.VMRequest | None = None,
    max_incoming: int | None = None,
    allow_degraded: bool = False,
    ignore_vm_affinity: bool = False,
    moving_together: Collection[int] = (),
) -> tuple[core.Decision, dict[int, Host]]:
    """Judge every host of the VM's cluster (or only ``hosts``) for the VM; no lock, nothing written.
    ``vm_request``: the VM as the core sees it, when the caller has it already; ``max_incoming``: hosts with
    claims of this many migrations take no more; ``allow_degraded``: hosts that fit it with settings suspended
    qualify after those that fit it whole; ``ignore_vm_affinity`` and ``moving_together``: see
    ``core.ScheduleRequest``."""
    if hosts is None:
        hosts, placement = snapshot.cluster_hosts(vm)
        vm_request = vm_request or snapshot.vm_request(vm, placement)
    states, incoming = snapshot.host_states(hosts)
    saturated = frozenset(h for h, n in incoming.items() if max_incoming is not None and n >= max_incoming)
    request = core.ScheduleRequest(
        action=action,
        destination=destination.pk if destination else None,
        force=force,
        excluded_hosts=frozenset(exclude),
        saturated_hosts=saturated,
        allow_degraded=allow_degraded,
        ignore_vm_affinity=ignore_vm_affinity,
        moving_together=frozenset(moving_together),
    )
    vm_request = vm_request or snapshot.vm_request(vm)
    config = snapshot.cluster_config(vm.cluster)
    if groups := groups_of(vm.pk, config.affinity_groups):  # where its peers run, whichever hosts are judged
        request = replace(request, member_hosts=snapshot.member_hosts(groups))
    decision = schedule(states, vm_request, request, config)
    return decision, {h.pk: h for h in hosts}


def verdicts(decision: core.Decision, hosts: dict[int, Host]) -> list[HostVerdict]:
    """The decision per host: eligible ones by rank first, then the refused ones by name."""
    out = [
        HostVerdict(
            host=hosts[v.host_id],
            eligible=v.eligible,
            score=v.score,
            rank=v.rank,
            rejections=tuple((r.filter, r.reason) for r in v.rejections),
            suspended=tuple(relaxation.reasons(v.suspended, v.rejections).items()),
        )
        for v in decision.verdicts
    ]
    return sorted(out, key=lambda v: (not v.eligible, v.rank or 0, v.host.name))


def start_verdicts(config: VmConfig, hosts: Sequence[Host]) -> list[HostVerdict]:
    """Would ``config`` start on each of ``hosts`` now? Each host is judged alone, by the filters and the
    placement that start uses, against what its allocations leave free (what the VM holds there itself counts
    as free); in a constant number of queries. A template's or pool's configuration is judged as a new VM."""
    if isinstance(config, VirtualMachine):
        vm = config
    else:
        vm = VirtualMachine(name=config.name)
        inherit(vm, config)
    states, _ = snapshot.host_states(hosts)
    vm_request = snapshot.vm_request(vm, [h.pk for h in config.placement_host_list()])
    cluster = snapshot.cluster_config(config.cluster)
    out = []
    for host, state in zip(hosts, states, strict=True):
        request = core.ScheduleRequest(action="start", destination=host.pk)
        (verdict,) = schedule([state], vm_request, request, cluster).verdicts
        rejections = tuple((r.filter, r.reason) for r in verdict.rejections)
        out.append(HostVerdict(host, verdict.eligible, verdict.score, verdict.rank, rejections))
    return out


def plan_evacuation(
    source: Host, vms: Sequence[VirtualMachine], *, initiator: str, ignore_vm_affinity: bool = False
) -> tuple[EvacuationPlan, dict[int, Host]]:
    """Where each of ``vms`` (running on ``source``) goes when the host is emptied, placed together
    (``scheduler.core.evacuation``), those whose policy allows it with settings suspended where nothing fits them
    whole; nothing is written. The hosts by id, for display."""
    hosts = list(Host.objects.filter(cluster_id=source.cluster_id))
    states, _ = snapshot.host_states(hosts)
    pinned = snapshot.placement_hosts(vms)
    requests = [snapshot.vm_request(vm, pinned[vm.pk]) for vm in vms]
    cluster = snapshot.cluster_config(source.cluster)
    degradable = {vm.pk for vm in vms if vm.allows_degraded()}
    plan = evacuation.plan_evacuation(states, requests, source.pk, initiator, cluster, degradable, ignore_vm_affinity)
    return plan, {h.pk: h for h in hosts}


def plan_balance(
    cluster: Cluster, vms: Sequence[VirtualMachine], lasting: Collection[int]
) -> tuple[BalanceMove | None, dict[int, Host]]:
    """The move ``cluster``'s scheduling policy makes now among ``vms`` (running VMs automation may move), its
    hosts' loads as last read and ``lasting`` those beyond a threshold long enough (``scheduler.core.balancing``);
    nothing is written. The hosts by id."""
    hosts = list(Host.objects.filter(cluster_id=cluster.pk))
    states, _ = snapshot.host_states(hosts)
    pinned = snapshot.placement_hosts(vms)
    requests = [snapshot.vm_request(vm, pinned[vm.pk]) for vm in vms]
    policy = BalancingPolicy(cluster.scheduling_policy, cluster.high_utilization, cluster.low_utilization)
    move = balancing.plan_balance(states, requests, policy, snapshot.cluster_config(cluster), lasting)
    return move, {h.pk: h for h in hosts}


def host_for_all(vms: Sequence[VirtualMachine]) -> tuple[Host | None, str]:
    """The best host that takes every one of ``vms`` (an affinity closure: all in one cluster, running), placed
    one after another on it as the earlier ones leave it; or None and why. Nothing is written."""
    cluster = vms[0].cluster
    hosts = list(Host.objects.filter(cluster_id=cluster.pk))
    states, _ = snapshot.host_states(hosts)
    pinned = snapshot.placement_hosts(vms)
    requests = [snapshot.vm_request(vm, pinned[vm.pk]) for vm in vms]
    config = snapshot.cluster_config(cluster)
    ids = frozenset(vm.pk for vm in vms)
    first = core.ScheduleRequest(action="migrate", force=True, moving_together=ids - {requests[0].id})
    decision = schedule(states, requests[0], first, config)
    by_id = {h.pk: h for h in hosts}
    for host_id in decision.ranked:
        placed = list(states)
        for request in requests:
            judged = core.ScheduleRequest(
                action="migrate", destination=host_id, force=True, moving_together=ids - {request.id}
            )
            outcome = schedule(placed, request, judged, config)
            if outcome.placement is None:
                break
            placed = [
                build_host_state(s.topology, [*s.allocations, outcome.placement.to_allocation(request.id)])
                if s.id == host_id
                else s
                for s in placed
            ]
        else:
            return by_id[host_id], ""
    names = ", ".join(vm.name for vm in vms)
    why = decision.error.message if decision.error else "no host has room for all of them"
    return None, f"No host takes all of {names} together: {why}"


def claim(
    vm: VirtualMachine,
    *,
    action: str,
    destination: Host | None = None,
    force: bool = False,
    exclude: Iterable[int] = (),
    job=None,
    max_incoming: int | None = None,
    allow_degraded: bool = False,
    ignore_vm_affinity: bool = False,
    moving_together: Collection[int] = (),
) -> Allocation:
    """Decide and write the result as a pending Allocation on the chosen host; raises NoHostError.
    ``max_incoming``: a host with claims of this many migrations takes no more (checked under its lock);
    ``allow_degraded``: the claim may suspend settings, which it records with their reasons; the affinity options
    are :func:`decide`'s."""
    cluster_hosts, placement_hosts = snapshot.cluster_hosts(vm)
    vm_request = snapshot.vm_request(vm, placement_hosts)  # read once for the decision and the claims
    judge = {
        "action": action,
        "force": force,
        "vm_request": vm_request,
        "max_incoming": max_incoming,
        "allow_degraded": allow_degraded,
        "ignore_vm_affinity": ignore_vm_affinity,
        "moving_together": moving_together,
    }
    decision, hosts = decide(vm, destination=destination, exclude=exclude, hosts=cluster_hosts, **judge)
    if decision.error is not None:
        raise NoHostError(decision.error.message, decision)
    for host_id in decision.ranked[:CLAIM_ATTEMPTS]:
        chosen = decision if host_id == decision.chosen else None
        allocation = _claim_on(vm, hosts[host_id], chosen, job=job, judge=judge)
        if allocation is not None:
            return allocation
    raise NoHostError(f"Every suitable host for {vm.name} was taken by other placements meanwhile.", decision)


def _claim_on(vm: VirtualMachine, host: Host, decision: core.Decision | None, *, job, judge: dict) -> Allocation | None:
    """The placement of ``decision`` (which chose ``host``) written as a claim, if the host is unchanged since
    it was judged; otherwise the host is judged again under its row lock. Either way the claim counts up the
    host's generation."""
    with transaction.atomic():
        as_judged = Host.objects.filter(
            pk=host.pk, generation=host.generation, status=host.status, refreshed_at=host.refreshed_at
        )
        if decision is None or not as_judged.update(generation=F("generation") + 1):
            host = Host.objects.select_for_update(no_key=True).get(pk=host.pk)
            decision, _ = decide(vm, destination=host, hosts=[host], **judge)
            if decision.chosen != host.pk or decision.placement is None:
                return None
            Host.objects.filter(pk=host.pk).update(generation=F("generation") + 1)
        placement, verdict = decision.placement, decision.verdict(host.pk)
        suspended = relaxation.reasons(placement.suspended, verdict.rejections if verdict else ())
        return Allocation.objects.create(
            vm=vm,
            host=host,
            state=AllocationState.PENDING,
            job=job,
            vcpus=placement.vcpus,
            exclusive_cpus=sorted(placement.exclusive_cpus),
            shared_cpus=sorted(placement.shared_cpus),
            memory_mib={str(n): m for n, m in placement.memory_mib.items()},
            hugepages={str(n): {str(s): p for s, p in pages.items()} for n, pages in placement.hugepages.items()},
            numa_mapping={str(v): h for v, h in placement.numa.items()},
            cpu_pinning={str(v): sorted(cpus) for v, cpus in placement.vcpu_pins.items()},
            topology=list(placement.topology),
            emulator_cpus=sorted(placement.emulator_cpus),
            iothread_cpus=sorted(placement.io_thread_cpus),
            suspended_settings=[{"setting": name, "reason": reason} for name, reason in suspended.items()],
        )


def activate(allocation: Allocation) -> None:
    """The VM now runs where ``allocation`` was claimed: it becomes the VM's only active allocation."""
    with transaction.atomic(savepoint=False):
        Allocation.objects.filter(vm_id=allocation.vm_id).active().delete()
        allocation.state = AllocationState.ACTIVE
        allocation.job = None
        allocation.save(update_fields=["state", "job"])


def release(vm: VirtualMachine, *, state: str | None = None) -> None:
    """Drop the VM's allocations (only the pending claim, or only the active one, when ``state`` says)."""
    rows = Allocation.objects.filter(vm=vm)
    if state:
        rows = rows.filter(state=state)
    rows.delete()
