"""What-if tool: answers the JSON scenario formats of ``shared/scenarios`` with the scheduler core.

``numa-fit/v1`` (one host's NUMA nodes, one VM's NUMA request) goes through the same fitting code as
:func:`scheduler.core.schedule`; ``cluster-scenario/v1`` goes through ``schedule`` itself, the
``evacuate`` request of ``cluster-scenario/v2`` through :func:`scheduler.core.evacuation.plan_evacuation` and its
``balance`` request through :func:`scheduler.core.balancing.plan_balance`.
Names in the files become ids here: hosts are numbered in file order, the scenario's VM is id 1, the VMs of
``vms`` and then those only named by allocations follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scheduler.core import (
    AffinityGroup,
    Allocation,
    ClusterConfig,
    HostCpu,
    HostNumaNode,
    HostState,
    HostTopology,
    Placement,
    ScheduleRequest,
    VMRequest,
    VNumaNode,
    build_host_state,
    parse_pinning,
    schedule,
)
from scheduler.core.balancing import BalancingPolicy, plan_balance
from scheduler.core.evacuation import plan_evacuation
from scheduler.core.fit import SMALL_PAGE_KIB, CellNeed, CpuMode, NoFit, map_cells, pin_cells

NUMA_FIT = "numa-fit/v1"
CLUSTER_SCENARIO = "cluster-scenario/v1"
CLUSTER_SCENARIO_V2 = "cluster-scenario/v2"

_THREAD_POLICIES: Mapping[str, CpuMode] = {"prefer": "prefer", "isolate": "isolate", "require": "require"}


def answer(document: Mapping[str, Any]) -> dict[str, Any] | list[dict[str, Any]]:
    """Answer a parsed scenario file of either format; raises ValueError for anything else."""
    fmt = document.get("format") if isinstance(document, Mapping) else None
    try:
        if fmt == NUMA_FIT:
            return [{"name": s["name"], **fit_numa(s["host"], s["vm"])} for s in document["scenarios"]]
        if fmt == CLUSTER_SCENARIO:
            return run(document)
        if fmt == CLUSTER_SCENARIO_V2:
            action = document["request"]["action"]
            if action not in _V2_ACTIONS:
                raise ValueError(f"{fmt} request {action!r} is not known; known: {', '.join(map(repr, _V2_ACTIONS))}")
            return _V2_ACTIONS[action](document)
    except KeyError as err:
        raise ValueError(f"{fmt} file lacks the field {err}") from err
    known = ", ".join(repr(f) for f in (NUMA_FIT, CLUSTER_SCENARIO, CLUSTER_SCENARIO_V2))
    raise ValueError(f"unknown scenario format {fmt!r}; expected one of {known}")


def fit_numa(host_nodes: list[dict[str, Any]], vm: Mapping[str, Any]) -> dict[str, Any]:
    """numa-fit/v1: does the VM's vNUMA request fit these host nodes, and how (each vNUMA node on its own node)."""
    topology, allocation = _numa_fit_host(host_nodes)
    host = build_host_state(topology, [allocation])
    mode: CpuMode = "none" if vm.get("cpu_policy") == "shared" else _THREAD_POLICIES[vm.get("thread_policy", "prefer")]
    sizes = _page_sizes(vm.get("hugepage_kib"), host_nodes)
    cells = [CellNeed(n["id"], tuple(n["vcpus"]), n["memory_mib"], sizes) for n in vm["numa_nodes"]]
    mapping = map_cells(host, cells, mode, may_share=False)
    if isinstance(mapping, NoFit):
        return {"fits": False, "mapping": {}, "pinning": {}, "pagesize_kib": {}}
    pinned = pin_cells(host, cells, mapping, mode, vm_threads=1)
    if isinstance(pinned, NoFit):
        return {"fits": False, "mapping": {}, "pinning": {}, "pagesize_kib": {}}
    return {
        "fits": True,
        "mapping": {str(index): fit.node for index, fit in sorted(mapping.items())},
        "pinning": {str(vcpu): pcpu for vcpu, pcpu in sorted(pinned[0].items())},
        "pagesize_kib": {str(index): fit.page_kib for index, fit in sorted(mapping.items())},
    }


def _numa_fit_host(host_nodes: list[dict[str, Any]]) -> tuple[HostTopology, Allocation]:
    cpus: list[HostCpu] = []
    nodes: list[HostNumaNode] = []
    pinned: set[int] = set()
    small_used: dict[int, int] = {}
    pages_used: dict[int, dict[int, int]] = {}
    for node in host_nodes:
        index = node["id"]
        for siblings in node["siblings"]:
            # Sibling sets carry no core id: the first thread names the core.
            cpus += [HostCpu(cpu, socket=index, core=min(siblings), node=index) for cpu in siblings]
        pools = {int(size): pool for size, pool in node.get("hugepages", {}).items()}
        nodes.append(
            HostNumaNode(index, frozenset(node["cpus"]), node["memory_mib"], {s: p["total"] for s, p in pools.items()})
        )
        pinned.update(node.get("pinned_cpus", ()))
        small_used[index] = node.get("small_used_mib", 0)
        pages_used[index] = {s: p.get("used", 0) for s, p in pools.items()}
    tpc = max((len(s) for n in host_nodes for s in n["siblings"]), default=1)
    topology = HostTopology(
        id=0,
        name="host",
        sockets=len(nodes),
        cores_per_socket=max(len(n["siblings"]) for n in host_nodes),
        threads_per_core=tpc,
        cpus=tuple(cpus),
        numa_nodes=tuple(nodes),
    )
    return topology, Allocation(vm_id=0, exclusive_cpus=frozenset(pinned), memory_mib=small_used, hugepages=pages_used)


def _page_sizes(request: int | str | None, host_nodes: list[dict[str, Any]]) -> tuple[int, ...]:
    """Nova's page-size request as an ordered list of acceptable sizes (4 = small pages)."""
    if request is None or request == "small":
        return (SMALL_PAGE_KIB,)
    if isinstance(request, int):
        return (request,)
    large = sorted({int(size) for n in host_nodes for size in n.get("hugepages", {})} - {SMALL_PAGE_KIB}, reverse=True)
    if request == "large":
        return tuple(large)
    if request == "any":
        return (*large, SMALL_PAGE_KIB)
    raise ValueError(f"unknown hugepage_kib {request!r}")


@dataclass(frozen=True)
class ClusterCase:
    """A cluster-scenario/v1 file turned into the scheduler's inputs; ``names`` maps host ids back."""

    hosts: list[HostState]
    vm: VMRequest
    request: ScheduleRequest
    cluster: ClusterConfig
    names: dict[int, str]


def load_cluster_case(scenario: Mapping[str, Any]) -> ClusterCase:
    """Build host states, the VM, the request and the cluster settings of a cluster-scenario/v1 document.

    Raises LookupError for a destination (or another host reference) the scenario does not define.
    """
    host_ids = {h["name"]: i for i, h in enumerate(scenario["hosts"], start=1)}
    vm_ids = _vm_ids(scenario)
    request = scenario["request"]
    destination = request.get("destination")
    if destination is not None and destination not in host_ids:
        raise LookupError(f"host {destination} is not in the VM's cluster")
    return ClusterCase(
        hosts=_hosts(scenario, host_ids, vm_ids),
        vm=_vm(scenario["vm"], host_ids, vm_ids),
        request=ScheduleRequest(
            action=request.get("action", "start"),
            destination=host_ids[destination] if destination is not None else None,
            force=request.get("force", False),
            excluded_hosts=frozenset(host_ids[n] for n in request.get("excluded_hosts", ())),
            allow_degraded=request.get("allow_degraded", False),
        ),
        cluster=_cluster(scenario, host_ids, vm_ids),
        names={i: name for name, i in host_ids.items()},
    )


def _hosts(scenario: Mapping[str, Any], host_ids: Mapping[str, int], vm_ids: Mapping[str, int]) -> list[HostState]:
    return [
        build_host_state(_topology(h, host_ids[h["name"]]), [_allocation(a, vm_ids) for a in h.get("allocations", ())])
        for h in scenario["hosts"]
    ]


def _cluster(scenario: Mapping[str, Any], host_ids: Mapping[str, int], vm_ids: Mapping[str, int]) -> ClusterConfig:
    cluster = scenario.get("cluster", {})
    return ClusterConfig(
        threads_as_cores=cluster.get("threads_as_cores", False),
        weight_factors=cluster.get("weight_factors", {}),
        cpu_flags=frozenset(cluster.get("cpu_flags", ())),
        affinity_groups=tuple(_affinity_group(g, host_ids, vm_ids) for g in cluster.get("affinity_groups", ())),
    )


def _affinity_group(data: Mapping[str, Any], host_ids: Mapping[str, int], vm_ids: Mapping[str, int]) -> AffinityGroup:
    """A v2 ``affinity_groups`` entry; its VMs and hosts are named, and must be the scenario's."""
    unknown = [n for n in data.get("vms", ()) if n not in vm_ids]
    unknown += [n for n in data.get("hosts", ()) if n not in host_ids]
    if unknown:
        raise ValueError(f"affinity group {data['name']} names {', '.join(unknown)}, not in the scenario")

    def rule(name: str) -> str:
        value = data.get(name, "none")
        if value not in ("positive", "negative", "none"):
            raise ValueError(f"affinity group {data['name']}: {name} must be positive, negative or none")
        return "disabled" if value == "none" else value

    return AffinityGroup(
        name=data["name"],
        vms={vm_ids[n]: n for n in data.get("vms", ())},
        hosts=frozenset(host_ids[n] for n in data.get("hosts", ())),
        vm_rule=rule("vm_rule"),
        vm_enforcing=data.get("vm_enforcing", False),
        host_rule=rule("host_rule"),
        host_enforcing=data.get("host_enforcing", False),
        priority=data.get("priority", 1.0),
        managed=data.get("managed", False),
    )


def run(scenario: Mapping[str, Any]) -> dict[str, Any]:
    """cluster-scenario/v1 -> the what-if answer: error, a verdict per host, the choice and its placement."""
    try:
        case = load_cluster_case(scenario)
    except LookupError as err:
        error = {"code": "unknown_host", "message": str(err)}
        return {"error": error, "hosts": [], "chosen": None, "placement": None}
    decision = schedule(case.hosts, case.vm, case.request, case.cluster)
    names = case.names
    verdicts = []
    for v in decision.verdicts:
        if v.eligible:
            verdict = {"name": names[v.host_id], "eligible": True, "score": round(v.score, 4), "rank": v.rank}
            if v.suspended:  # the whole configuration's rejections, and what is suspended instead
                rejections = [{"filter": r.filter, "reason": r.reason} for r in v.rejections]
                verdict |= {"suspended": list(v.suspended), "rejections": rejections}
            verdicts.append(verdict)
        else:
            rejections = [{"filter": r.filter, "reason": r.reason} for r in v.rejections]
            verdicts.append({"name": names[v.host_id], "eligible": False, "rejections": rejections})
    return {
        "error": {"code": decision.error.code, "message": decision.error.message} if decision.error else None,
        "hosts": verdicts,
        "chosen": names[decision.chosen] if decision.chosen is not None else None,
        "placement": None if decision.placement is None else placement_json(decision.placement, names),
    }


def evacuate(scenario: Mapping[str, Any]) -> dict[str, Any]:
    """cluster-scenario/v2 ``evacuate`` -> the plan: where each VM running on ``request.host`` goes, or why it stays.

    The VMs concerned are those of ``vm`` and ``vms`` whose ``running_on`` is that host.
    """
    host_ids = {h["name"]: i for i, h in enumerate(scenario["hosts"], start=1)}
    vm_ids = _vm_ids(scenario)
    request = scenario["request"]
    if (initiator := request["initiator"]) not in ("user", "system"):
        raise ValueError(f"request initiator must be 'user' or 'system', not {initiator!r}")
    if (source := request["host"]) not in host_ids:
        error = {"code": "unknown_host", "message": f"host {source} is not in the cluster"}
        return {"error": error, "moves": [], "stays": []}
    vms = [vm for vm in _running_vms(scenario, host_ids, vm_ids) if vm.running_on == host_ids[source]]
    degradable = [vm.id for vm in vms] if request.get("allow_degraded", False) else []
    hosts = _hosts(scenario, host_ids, vm_ids)
    plan = plan_evacuation(hosts, vms, host_ids[source], initiator, _cluster(scenario, host_ids, vm_ids), degradable)
    names = {i: name for name, i in host_ids.items()}
    vm_names = {i: name for name, i in vm_ids.items()}
    return {
        "error": None,
        "moves": [_move_json(vm_names[move.vm_id], move.placement, names) for move in plan.moves],
        "stays": [{"vm": vm_names[stay.vm_id], "reason": stay.reason} for stay in plan.stays],
    }


def _running_vms(
    scenario: Mapping[str, Any], host_ids: Mapping[str, int], vm_ids: Mapping[str, int]
) -> list[VMRequest]:
    """The running VMs of ``vm`` and ``vms``, each name once."""
    listed = [scenario["vm"]] if "vm" in scenario else []
    by_name = {data["name"]: data for data in [*listed, *scenario.get("vms", ())]}
    return [_vm(data, host_ids, vm_ids) for data in by_name.values() if data.get("running_on") is not None]


def _move_json(
    vm: str, placement: Placement, names: Mapping[int, str], source: str | None = None, reason: str | None = None
) -> dict[str, Any]:
    """One move of an answer: the VM, where from (balance) and where to, what it suspends, why (balance), and
    its placement."""
    move: dict[str, Any] = {"vm": vm} | ({"from": source} if source else {})
    move |= {"to": names[placement.host_id], "suspended": list(placement.suspended)}
    move |= {"reason": reason} if reason else {}
    return move | {"placement": placement_json(placement, names)}


def balance(scenario: Mapping[str, Any]) -> dict[str, Any]:
    """cluster-scenario/v2 ``balance`` -> the move the cluster's ``scheduling_policy`` makes now (at most one).

    There is no time axis: each host's ``cpu_load_percent`` counts as lasting for the over-utilization duration.
    The VMs are those of ``vm`` and ``vms`` with a ``running_on``; their migration modes apply (only "Allow
    manual and automatic migration" VMs move). The file has no cluster setting for automatic migration of High
    Performance and pinned VMs: it answers as if that were on.
    """
    host_ids = {h["name"]: i for i, h in enumerate(scenario["hosts"], start=1)}
    vm_ids = _vm_ids(scenario)
    cluster = scenario.get("cluster", {})
    policy = BalancingPolicy(
        name=cluster.get("scheduling_policy", "none"),
        high_utilization=cluster.get("high_utilization", 80),
        low_utilization=cluster.get("low_utilization", 20),
    )
    vms = _running_vms(scenario, host_ids, vm_ids)
    move = plan_balance(_hosts(scenario, host_ids, vm_ids), vms, policy, _cluster(scenario, host_ids, vm_ids))
    if move is None:
        return {"error": None, "moves": []}
    names = {i: name for name, i in host_ids.items()}
    vm_name = next(name for name, i in vm_ids.items() if i == move.vm_id)
    return {
        "error": None,
        "moves": [_move_json(vm_name, move.placement, names, names[move.source], move.reason)],
    }


_V2_ACTIONS = {"start": run, "migrate": run, "evacuate": evacuate, "balance": balance}


def placement_json(placement: Placement, names: Mapping[int, str]) -> dict[str, Any]:
    return {
        "host": names[placement.host_id],
        "numa": {str(v): n for v, n in sorted(placement.numa.items())},
        "cpus": {str(v): _cpus(c) for v, c in sorted(placement.vcpu_pins.items())},
        "emulator_cpus": sorted(placement.emulator_cpus),
        "io_thread_cpus": sorted(placement.io_thread_cpus),
        "exclusive_cpus": sorted(placement.exclusive_cpus),
        "memory_mib": {str(n): mib for n, mib in sorted(placement.memory_mib.items())},
        "hugepages": {
            str(n): {str(size): pages for size, pages in sorted(pools.items())}
            for n, pools in sorted(placement.hugepages.items())
        },
        "suspended": list(placement.suspended),
    }


def _cpus(cpus: frozenset[int]) -> int | list[int]:
    return next(iter(cpus)) if len(cpus) == 1 else sorted(cpus)


def _vm_ids(scenario: Mapping[str, Any]) -> dict[str, int]:
    ids: dict[str, int] = {}
    listed = [scenario["vm"]] if "vm" in scenario else []
    for vm in [*listed, *scenario.get("vms", ())]:
        ids.setdefault(vm["name"], len(ids) + 1)
    for host in scenario["hosts"]:
        for alloc in host.get("allocations", ()):
            ids.setdefault(alloc["vm"], len(ids) + 1)
    return ids


def _topology(data: Mapping[str, Any], host_id: int) -> HostTopology:
    online = data.get("online_cpus")
    return HostTopology(
        id=host_id,
        name=data["name"],
        status=data.get("status", "up"),
        cpu_flags=frozenset(data.get("cpu_flags", ())),
        sockets=data.get("sockets", 1),
        cores_per_socket=data.get("cores_per_socket", 1),
        threads_per_core=data.get("threads_per_core", 1),
        cpus=tuple(HostCpu(c["id"], c["socket"], c["core"], c.get("node")) for c in data.get("cpus", ())),
        online_cpus=frozenset(online) if online is not None else None,
        numa_nodes=tuple(
            HostNumaNode(n["index"], frozenset(n["cpus"]), n["memory_mib"], _int_keys(n.get("hugepages", {})))
            for n in data.get("numa_nodes", ())
        ),
        memory_mib=data.get("memory_mib", 0),
        hugepages=_int_keys(data.get("hugepages", {})),
        tsc_khz=data.get("tsc_khz"),
        cpu_load_percent=data.get("cpu_load_percent"),
    )


def _allocation(data: Mapping[str, Any], vm_ids: Mapping[str, int]) -> Allocation:
    exclusive = frozenset(data.get("exclusive_cpus", ()))
    shared = frozenset(data.get("shared_cpus", ()))
    return Allocation(
        vm_id=vm_ids[data["vm"]],
        pending=data.get("pending", False),
        exclusive_cpus=exclusive,
        shared_cpus=shared,
        vcpus=data.get("vcpus", len(exclusive) or len(shared)),
        memory_mib=_int_keys(data.get("memory_mib", {})),
        hugepages={int(node): _int_keys(pools) for node, pools in data.get("hugepages", {}).items()},
    )


def _vm(data: Mapping[str, Any], host_ids: Mapping[str, int], vm_ids: Mapping[str, int]) -> VMRequest:
    running_on = data.get("running_on")
    return VMRequest(
        id=vm_ids[data["name"]],
        name=data["name"],
        sockets=data.get("sockets", 1),
        cores=data.get("cores", 1),
        threads=data.get("threads", 1),
        memory_mib=data["memory_mib"],
        optimized_for=data.get("optimized_for", "server"),
        migration_mode=data.get("migration_mode", "migratable"),
        placement_hosts=frozenset(host_ids[n] for n in data.get("placement_hosts", ())),
        cpu_passthrough=data.get("cpu_passthrough", False),
        cpu_flags_at_start=frozenset(data.get("cpu_flags_at_start", ())),
        use_tsc_frequency=data.get("use_tsc_frequency", False),
        tsc_khz_at_start=data.get("tsc_khz_at_start"),
        cpu_pinning_policy=data.get("cpu_pinning_policy", "none"),
        cpu_pinning=parse_pinning(data.get("cpu_pinning") or ""),
        numa_nodes=tuple(
            VNumaNode(
                index=n["index"],
                vcpus=frozenset(n["vcpus"]),
                memory_mib=n["memory_mib"],
                tune_mode=n.get("tune_mode", "strict"),
                pinned_to=frozenset(n.get("pinned_to", ())),
                pinned_to_by_host={host_ids[h]: frozenset(p) for h, p in n.get("pinned_to_by_host", {}).items()},
            )
            for n in data.get("numa_nodes", ())
        ),
        hugepage_kib=data.get("hugepage_kib"),
        running_on=host_ids[running_on] if running_on is not None else None,
        io_threads=data.get("io_threads", 0),
        high_availability=data.get("high_availability", False),
    )


def _int_keys(mapping: Mapping[str, Any]) -> dict[int, Any]:
    return {int(key): value for key, value in mapping.items()}
