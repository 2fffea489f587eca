"""Property tests over random small hosts and VMs, against an exhaustive reference written from raw inputs.

The reference works out what other VMs leave of a host from its topology and allocations alone
(:class:`RawHost`), then tries every vNUMA -> host node mapping (or every virtual socket -> physical socket
assignment) and checks capacities by plain counting, with none of the scheduler's ordering, pruning or fast
paths. A host is eligible exactly when the reference finds a placement, and every placement the scheduler
returns obeys the rules of :mod:`validity`, themselves written from the raw inputs.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from scheduler.core import (
    Allocation,
    ClusterConfig,
    HostState,
    HostTopology,
    ScheduleRequest,
    VMRequest,
    build_host_state,
    schedule,
)
from scheduler.core.filters import FILTERS
from scheduler.core.placement import make_plan, place
from scheduler.whatif import fit_numa

from .factory import GIB_KIB, held, make_topology, make_vm, vnode
from .raw import SMALL, RawHost
from .validity import numa_fit_problems, raw_placement_problems, resize_memory_split

PAGE = 2048  # KiB
VM_ID = 100
START = ScheduleRequest(action="start")
POLICIES = ("none", "manual", "dedicated", "isolate_threads", "resize_and_pin_numa")
DYNAMIC = ("dedicated", "isolate_threads")

FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class HostCase:
    """The raw inputs of one host: what ``build_host_state`` is given."""

    topology: HostTopology
    allocations: tuple[Allocation, ...]

    def state(self) -> HostState:
        return build_host_state(self.topology, self.allocations)

    def raw(self, vm: VMRequest) -> RawHost:
        return RawHost.of(self.topology, self.allocations, vm.id)


@st.composite
def host_cases(draw, host_id: int = 1) -> HostCase:
    """Up to 2 sockets x 2 NUMA nodes x 3 cores x 2 threads, now and then without NUMA; 2 MiB and 1 GiB pools.

    Other VMs hold random pCPUs exclusively, a core's threads often by different VMs; VMs without exclusive
    pCPUs (some pinned to shared pCPUs) set how many the shared pool must keep; memory and pages are partly
    used; some claims are pending, and now and then one belongs to the VM being placed.
    """
    sockets, nodes_per_socket = draw(st.sampled_from([1, 2, 2])), draw(st.integers(1, 2))
    cores, threads = nodes_per_socket * draw(st.sampled_from([1, 2, 3, 3])), draw(st.integers(1, 2))
    nodes = sockets * nodes_per_socket if draw(st.integers(0, 5)) else 0
    memory = [draw(st.sampled_from([2048, 4096, 8192])) for _ in range(max(nodes, 1))]
    pools = []
    for mib in memory:
        sizes = {PAGE: draw(st.sampled_from([0, 128, 256, 512])), GIB_KIB: draw(st.integers(0, mib // 1024 - 1))}
        pools.append({size: pages for size, pages in sizes.items() if pages})
    topology = make_topology(
        host_id,
        sockets=sockets,
        cores=cores,
        threads=threads,
        nodes=nodes,
        memory_mib=memory if nodes else memory[0],
        hugepages=pools if nodes else pools[0],
        linux_numbering=draw(st.booleans()),
    )

    cpus = sorted(cpu.id for cpu in topology.cpus)
    holders = draw(st.integers(1, 3))
    held_count = draw(st.integers(0, len(cpus)))
    order = draw(st.permutations(cpus))
    if draw(st.booleans()):  # one socket fuller than the other
        socket_of = {cpu.id: cpu.socket for cpu in topology.cpus}
        order = sorted(order, key=socket_of.__getitem__, reverse=draw(st.booleans()))
    taken = order[:held_count]
    owners = [draw(st.integers(0, holders - 1)) for _ in taken]
    exclusive = [[cpu for cpu, owner in zip(taken, owners, strict=True) if owner == h] for h in range(holders)]
    rest = [cpu for cpu in cpus if cpu not in taken]
    shared_vms = [
        (draw(st.integers(1, 4)), draw(st.sets(st.sampled_from(rest), max_size=2)) if rest else set())
        for _ in range(draw(st.sampled_from([0, 0, 1, 2])))
    ]
    vm_ids = [VM_ID if draw(st.integers(0, 9)) == 0 else 1] + list(range(2, holders + len(shared_vms) + 1))
    small: list[dict[int, int]] = [{} for _ in vm_ids]
    pages: list[dict[int, dict[int, int]]] = [{} for _ in vm_ids]
    key = draw(st.sampled_from([0, 1])) if not nodes else None  # a host without NUMA takes any node key
    for node, (mib, pool) in enumerate(zip(memory, pools, strict=True)):
        where = node if nodes else key
        small_total = mib - sum(size * n for size, n in pool.items()) // 1024
        used = draw(st.integers(0, small_total // 256)) * 256 if draw(st.booleans()) else 0
        if used:
            small[draw(st.integers(0, len(vm_ids) - 1))][where] = used
        for size, total in pool.items():
            if draw(st.booleans()) and (used_pages := draw(st.integers(0, total))):
                pages[draw(st.integers(0, len(vm_ids) - 1))].setdefault(where, {})[size] = used_pages
    allocations = []
    for i, vm_id in enumerate(vm_ids):
        pending = draw(st.booleans())
        if i < holders:
            allocations.append(held(vm_id, exclusive[i], pending=pending, memory_mib=small[i], hugepages=pages[i]))
        else:
            vcpus, pins = shared_vms[i - holders]
            allocations.append(Allocation(vm_id, pending, frozenset(), frozenset(pins), vcpus, small[i], pages[i]))
    return HostCase(topology, tuple(allocations))


@st.composite
def vms(draw, host_ids: tuple[int, ...] = (1, 2), policy: str | None = None, vnuma: bool | None = None) -> VMRequest:
    """Every pinning policy; vNUMA nodes strict, interleave or preferred, pinned by default or per host (to
    nodes a host may lack); small, 2 MiB or 1 GiB pages; manual and emulator pinning to pCPUs a host may lack.
    """
    policy = policy or draw(st.sampled_from(POLICIES))
    sockets, cores, threads = draw(st.integers(1, 2)), draw(st.sampled_from([1, 1, 2, 3])), draw(st.integers(1, 2))
    vcpus = sockets * cores * threads
    page = draw(st.sampled_from([None, None, PAGE, GIB_KIB]))
    unit = 1024 if page == GIB_KIB and draw(st.integers(0, 4)) else 256  # now and then not whole 1 GiB pages
    vnodes = []
    if policy != "resize_and_pin_numa" and (draw(st.booleans()) if vnuma is None else vnuma):
        count = draw(st.integers(1, min(3, vcpus)))
        order = draw(st.permutations(range(vcpus)))
        cuts = sorted(draw(st.sets(st.integers(1, max(vcpus - 1, 1)), min_size=count - 1, max_size=count - 1)))
        for i, (first, end) in enumerate(zip([0, *cuts], [*cuts, vcpus], strict=True)):
            # Unpinned, pinned on every host, on one host (this one or another), or both (one host overrides).
            how = draw(st.sampled_from(["nowhere", "everywhere", "one host", "both"]))
            node_sets = st.sets(st.integers(0, 3), min_size=1, max_size=2)
            pinned = draw(node_sets) if how in ("everywhere", "both") else set()
            by_host = {draw(st.sampled_from(host_ids)): draw(node_sets)} if how in ("one host", "both") else {}
            tune = draw(st.sampled_from(["strict", "interleave", "preferred"]))
            memory = unit * draw(st.integers(1, 8 if unit == 256 else 3))
            vnodes.append(vnode(i, order[first:end], memory, pinned, tune, by_host))
    memory = sum(v.memory_mib for v in vnodes) + unit * draw(st.integers(0 if vnodes else 1, 8 if unit == 256 else 4))
    pinning = {}
    if policy == "manual":
        for vcpu in draw(st.sets(st.integers(0, vcpus - 1), min_size=1)):
            pinning[vcpu] = frozenset(draw(st.sets(st.integers(0, 7), min_size=1, max_size=3)))
    emulator = draw(st.sets(st.integers(0, 5), min_size=1, max_size=2)) if draw(st.integers(0, 7)) == 0 else ()
    return make_vm(
        VM_ID,
        sockets=sockets,
        cores=cores,
        threads=threads,
        memory_mib=memory,
        optimized_for=draw(st.sampled_from(["server", "high_performance"])),
        cpu_pinning_policy=policy,
        cpu_pinning=pinning,
        numa_nodes=vnodes,
        hugepage_kib=page,
        io_threads=draw(st.integers(0, 1)),
        emulator_cpus=frozenset(emulator),
    )


def reference_problem(
    host: RawHost, vm: VMRequest, cluster: ClusterConfig, *, capacity: bool = True, spread: bool = False
) -> str | None:
    """Why the VM has no valid placement on the host (None: it has one), found by exhaustive search.

    ``capacity`` False leaves out the CPU filter's rule that the shared pool keeps room for its largest VM.
    ``spread``: NUMA pinning is suspended, so dynamically pinned vCPUs may take any free pCPUs of the host.
    """
    policy = vm.cpu_pinning_policy
    if bad := set(vm.emulator_cpus) - (host.online - host.exclusive):
        return f"emulator pCPUs {sorted(bad)} are offline, missing or held exclusively"
    page = vm.hugepage_kib or SMALL
    if vm.memory_mib * 1024 % page:
        return f"{vm.memory_mib} MiB is not a whole number of {page} KiB pages"
    if policy == "resize_and_pin_numa":
        return _resize_problem(host, vm, page)
    if capacity and (problem := _cpu_capacity_problem(host, vm, cluster)):
        return problem
    if policy == "dedicated" and vm.threads > host.threads_per_core:
        return f"{host.threads_per_core} threads per core, the VM's cores have {vm.threads}"
    if policy == "manual" and (bad := set().union(*vm.cpu_pinning.values()) - (host.online - host.exclusive)):
        return f"manually pinned pCPUs {sorted(bad)} are offline, missing or held exclusively"
    dynamic = policy in DYNAMIC
    if dynamic:
        host = replace(host, free=host.free - vm.emulator_cpus)  # the vCPUs keep off the emulator's pCPUs

    def units(cpus) -> int:
        return host.whole_free_cores(cpus) if policy == "isolate_threads" else host.free_threads(cpus)

    hard = {v.index: v.pins_on(host.id) for v in vm.numa_nodes if v.tune_mode != "preferred" and v.pins_on(host.id)}
    if hard and not host.numa:
        return "vNUMA nodes are pinned on a host without NUMA"
    if missing := set().union(*hard.values()) - set(host.node_cpus):
        return f"vNUMA nodes are pinned to host nodes {sorted(missing)} the host does not have"
    if dynamic and spread:
        if units(host.online) < vm.vcpus:
            return f"{units(host.online)} free pCPUs (or whole cores), {vm.vcpus} needed"
        return _rest_problem(host, Counter(), vm.memory_mib, page)
    if dynamic and not vm.numa_nodes:
        size = vm.cores * vm.threads
        sockets = sorted(set(host.socket_of.values()))
        for assignment in itertools.product(sockets, repeat=vm.sockets):
            count = Counter(assignment)
            if all(n * size <= units(c for c, s in host.socket_of.items() if s == sk) for sk, n in count.items()):
                break
        else:
            return "the virtual sockets fit no physical sockets"
        return _rest_problem(host, Counter(), vm.memory_mib, page)

    # vNUMA nodes that must each sit on one host node: all under dynamic pinning, else the hard-pinned ones.
    cells = [v for v in vm.numa_nodes if dynamic or v.index in hard]
    if any(v.memory_mib * 1024 % page for v in cells):
        return "a vNUMA node's memory is not a whole number of pages"
    rest = vm.memory_mib - sum(v.memory_mib for v in cells)
    nodes = sorted(host.node_cpus)
    for mapping in itertools.product(*(sorted(hard.get(v.index, nodes)) for v in cells)):
        vcpus: Counter[int] = Counter()
        load: Counter[int] = Counter()
        for v, node in zip(cells, mapping, strict=True):
            vcpus[node] += len(v.vcpus)
            load[node] += v.memory_mib * 1024
        if dynamic and any(n > units(host.node_cpus[node]) for node, n in vcpus.items()):
            continue
        if any(kib > host.memory_room(node, page) for node, kib in load.items()):
            continue
        if _rest_problem(host, load, rest, page) is None:
            return None
    return "no mapping of the vNUMA nodes to host nodes holds them"


def _cpu_capacity_problem(host: RawHost, vm: VMRequest, cluster: ClusterConfig) -> str | None:
    """The CPU filter's rule: pCPUs not held exclusively (threads, or cores with such a thread) hold the largest
    VM whose vCPUs float on them, besides what an exclusive VM takes: its vCPUs as threads, or as cores the
    threads per core they fill (dedicated) or one each (isolate_threads)."""
    policy, vcpus, tpc = vm.cpu_pinning_policy, vm.vcpus, host.threads_per_core
    if cluster.threads_as_cores:
        units = len(host.online - host.exclusive)
        own = vcpus * tpc if policy == "isolate_threads" else vcpus
    else:
        units = sum(1 for threads in host.cores.values() if threads - host.exclusive)
        own = vcpus if policy == "isolate_threads" else -(-vcpus // tpc)
    if policy in DYNAMIC:
        need = own + host.largest_shared
    else:
        need = max(vcpus, host.largest_shared)
    return None if need <= units else f"{units} CPUs not held exclusively, {need} needed"


def _rest_problem(host: RawHost, load: Counter[int], mib: int, page: int) -> str | None:
    """Memory no vNUMA node holds goes wherever the host has room left."""
    room = sum(host.memory_room(node, page) - load[node] for node in host.node_cpus)
    return None if mib * 1024 <= room else f"{mib} MiB left over, {room // 1024} MiB of room"


def _resize_problem(host: RawHost, vm: VMRequest, page: int) -> str | None:
    """One vNUMA node per host node, on every thread of the node but its first core; nothing held exclusively."""
    topology = host.topology
    if not host.numa:
        return "Resize and Pin NUMA on a host without NUMA"
    if topology.cores_per_socket <= 1 or topology.sockets != len(topology.numa_nodes):
        return "Resize and Pin NUMA needs more than one core per socket and one NUMA node per socket"
    if host.exclusive:
        return "Resize and Pin NUMA on a host with exclusively pinned pCPUs"
    nodes = sorted(host.node_cpus)
    for node, mib in zip(nodes, resize_memory_split(vm.memory_mib, page, len(nodes)), strict=True):
        if mib * 1024 % page or mib * 1024 > host.memory_room(node, page):
            return f"host node {node} cannot hold its {mib} MiB"
    return None


def filter_rejections(state: HostState, vm: VMRequest, cluster: ClusterConfig) -> dict[str, str]:
    """Every filter's verdict on the host, as the pipeline judges it (without the VM's own allocation)."""
    plan, host = make_plan(vm, START, cluster), state.without(vm.id)
    return {name: judged[0] for name, factory in FILTERS if (judge := factory(plan)) and (judged := judge([host]))}


def _check(case: HostCase, vm: VMRequest, cluster: ClusterConfig, decision, position: int) -> None:
    """The host's verdict, and each filter's, agree with the reference; an eligible host's placement is valid."""
    note(f"{case}\n{vm}\n{cluster}")
    raw = case.raw(vm)
    problem = reference_problem(raw, vm, cluster)
    verdict = decision.verdicts[position]
    rejected = filter_rejections(case.state(), vm, cluster)
    if problem is not None:
        assert not verdict.eligible, f"eligible, but the reference finds no placement: {problem}"
        assert rejected, f"every filter passes, but the reference finds no placement: {problem}"
        assert verdict.rejections and all(r.reason for r in verdict.rejections)
        return
    assert not rejected, f"refused by filters, but the reference finds a placement: {rejected}"
    assert verdict.eligible, f"refused, but the reference finds a placement: {verdict.rejections}"
    placement = decision.placement if decision.chosen == case.topology.id else None
    if placement is None:
        placement = place(make_plan(vm, START, cluster), case.state().without(vm.id))
    assert raw_placement_problems(raw, vm, placement) == []


@pytest.mark.parametrize(
    ("policy", "vnuma"), [(p, v) for p in POLICIES for v in (False, True) if p != "resize_and_pin_numa" or not v]
)
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_host_is_eligible_exactly_when_a_valid_placement_exists(policy, vnuma, data):
    case, vm = data.draw(host_cases()), data.draw(vms(policy=policy, vnuma=vnuma))
    for cluster in (ClusterConfig(threads_as_cores=False), ClusterConfig(threads_as_cores=True)):
        _check(case, vm, cluster, schedule([case.state()], vm, START, cluster), 0)
        # The CPU filter never refuses an exclusive VM whose pCPUs fit, unless a shared VM needs the room.
        raw = case.raw(vm)
        if vm.exclusive and raw.largest_shared == 0 and reference_problem(raw, vm, cluster, capacity=False) is None:
            assert "CPU" not in filter_rejections(case.state(), vm, cluster)


@FAST
@given(st.data(), vms(host_ids=(1, 2, 3)), st.booleans())
def test_every_verdict_over_several_hosts(data, vm, threads_as_cores):
    """Filters are exact: every eligible host, the winner or not, has a valid placement, and no other host has."""
    cases = [data.draw(host_cases(host_id)) for host_id in range(1, data.draw(st.integers(2, 4)) + 1)]
    cluster = ClusterConfig(threads_as_cores=threads_as_cores)
    decision = schedule([case.state() for case in cases], vm, START, cluster)
    for position, case in enumerate(cases):
        _check(case, vm, cluster, decision, position)
    if decision.chosen is not None:
        assert decision.verdict(decision.chosen).rank == 1


@st.composite
def numa_fit_cases(draw):
    nodes = draw(st.integers(1, 3))
    threads = draw(st.integers(1, 2))
    cores = draw(st.integers(1, 3))
    host = []
    cpu = 0
    for index in range(nodes):
        siblings = []
        for _ in range(cores):
            siblings.append(list(range(cpu, cpu + threads)))
            cpu += threads
        cpus = [c for s in siblings for c in s]
        pools = {}
        if draw(st.booleans()):
            total = draw(st.sampled_from([256, 512]))
            pools[str(PAGE)] = {"total": total, "used": draw(st.integers(0, total))}
        if draw(st.booleans()):
            pools["1048576"] = {"total": 2, "used": draw(st.integers(0, 2))}
        host.append(
            {
                "id": index,
                "cpus": cpus,
                "siblings": siblings,
                "memory_mib": 8192,
                "small_used_mib": draw(st.sampled_from([0, 2048, 4096])),
                "pinned_cpus": sorted(draw(st.sets(st.sampled_from(cpus), max_size=len(cpus)))),
                "hugepages": pools,
            }
        )
    count = draw(st.integers(1, nodes))
    vcpu = 0
    vm_nodes = []
    for index in range(count):
        n = draw(st.integers(1, cores * threads))
        vm_nodes.append(
            {"id": index, "vcpus": list(range(vcpu, vcpu + n)), "memory_mib": draw(st.sampled_from([512, 1024, 2048]))}
        )
        vcpu += n
    vm = {
        "numa_nodes": vm_nodes,
        "cpu_policy": "dedicated",
        "thread_policy": draw(st.sampled_from(["prefer", "isolate", "require"])),
        "hugepage_kib": draw(st.sampled_from([None, PAGE, 1048576, "small", "large", "any"])),
    }
    return host, vm


def numa_fit_reference(host, vm) -> bool:
    """Distinct host node per vNUMA node, any acceptable page size, thread policy by counting."""
    request = vm["hugepage_kib"]
    nodes = {n["id"]: n for n in host}
    for mapping in itertools.permutations(nodes, len(vm["numa_nodes"])):
        pairs = zip(mapping, vm["numa_nodes"], strict=True)
        if all(_numa_fit_cell(nodes[m], v, vm["thread_policy"], request) for m, v in pairs):
            return True
    return False


def _numa_fit_cell(node, vnode_, policy, request) -> bool:
    pinned = set(node["pinned_cpus"])
    free = [[c for c in s if c not in pinned] for s in node["siblings"]]
    if policy == "isolate":
        units = sum(1 for f, s in zip(free, node["siblings"], strict=True) if len(f) == len(s))
    elif policy == "require":
        units = sum(len(f) for f in free if len(f) >= 2)
    else:
        units = sum(len(f) for f in free)
    if len(vnode_["vcpus"]) > units:
        return False
    pools = {int(k): v for k, v in node["hugepages"].items()}
    small = node["memory_mib"] * 1024 - sum(s * p["total"] for s, p in pools.items()) - node["small_used_mib"] * 1024
    need = vnode_["memory_mib"] * 1024
    if request is None or request == "small":
        sizes = [SMALL]
    elif request == "large":
        sizes = list(pools)
    elif request == "any":
        sizes = [*pools, SMALL]
    else:
        sizes = [request]
    for size in sizes:
        if size == SMALL and need <= small:
            return True
        if size in pools and need % size == 0 and need // size <= pools[size]["total"] - pools[size]["used"]:
            return True
    return False


@FAST
@given(numa_fit_cases())
def test_numa_fit_matches_the_reference(case):
    host, vm = case
    answer = fit_numa(host, vm)
    assert answer["fits"] == numa_fit_reference(host, vm)
    assert numa_fit_problems(host, vm, answer) == []


def test_reference_sanity():
    """The reference itself: a full host fits nothing, an empty one fits a small VM, a VM's own claim is free."""
    topology = make_topology(cores=2)
    vm = make_vm(VM_ID, cores=2, cpu_pinning_policy="dedicated")
    full = RawHost.of(topology, [held(7, [0, 1])], VM_ID)
    own = RawHost.of(topology, [held(VM_ID, [0, 1])], VM_ID)
    assert reference_problem(full, vm, ClusterConfig()) is not None
    assert reference_problem(own, vm, ClusterConfig()) is None
    assert own.free == {0, 1}
