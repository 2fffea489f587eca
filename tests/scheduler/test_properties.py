"""Property tests over random small hosts and VMs, against an exhaustive reference search written here.

The reference enumerates every vNUMA -> host node mapping (or every virtual socket -> physical socket
assignment) and checks capacities by plain counting, with none of the scheduler's ordering, pruning or
fast paths. Whenever it finds a placement the scheduler must find one too, and every placement the
scheduler returns must obey the rules.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.core import ClusterConfig, HostState, ScheduleRequest, VMRequest, build_host_state, cpus_of, schedule
from scheduler.core.placement import make_plan, place
from scheduler.whatif import fit_numa

from .factory import held, make_host, make_vm, vnode
from .validity import numa_fit_problems, placement_problems

PAGE = 2048  # KiB
SMALL = 4
START = ScheduleRequest(action="start")
THREADS = ClusterConfig(threads_as_cores=True)  # the CPU filter then counts exactly what a placement needs

FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def hosts(draw) -> HostState:
    sockets = draw(st.integers(1, 2))
    nodes_per_socket = draw(st.integers(1, 2))
    cores_per_node = draw(st.integers(1, 3))
    threads = draw(st.integers(1, 2))
    nodes = sockets * nodes_per_socket
    node_count = nodes if draw(st.integers(0, 5)) else 0  # now and then a host without NUMA
    cpus = sockets * nodes_per_socket * cores_per_node * threads
    memory = [draw(st.sampled_from([1024, 2048, 4096])) for _ in range(max(node_count, 1))]
    pools = [{PAGE: draw(st.sampled_from([0, 128, 256, 512]))} for _ in range(max(node_count, 1))]
    taken = draw(st.sets(st.integers(0, cpus - 1), max_size=cpus))
    small_used = {i: draw(st.integers(0, memory[i] - pools[i][PAGE] * 2)) // 256 * 256 for i in range(len(memory))}
    pages_used = {i: {PAGE: draw(st.integers(0, pools[i][PAGE]))} for i in range(len(memory))}
    return make_host(
        1,
        sockets=sockets,
        cores=nodes_per_socket * cores_per_node,
        threads=threads,
        nodes=node_count,
        memory_mib=memory if node_count else memory[0],
        hugepages=pools if node_count else pools[0],
        allocations=[held(7, taken, memory_mib=small_used, hugepages=pages_used, vcpus=0)],
    )


@st.composite
def vms(draw, host_nodes: int = 4) -> VMRequest:
    policy = draw(st.sampled_from(["dedicated", "isolate_threads", "none"]))
    sockets, cores, threads = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    vcpus = sockets * cores * threads
    hugepage_kib = draw(st.sampled_from([None, PAGE]))
    with_vnuma = draw(st.booleans()) or policy == "none"
    vnodes = []
    if with_vnuma:
        count = draw(st.integers(1, min(3, vcpus)))
        cuts = sorted(draw(st.sets(st.integers(1, max(vcpus - 1, 1)), min_size=count - 1, max_size=count - 1)))
        bounds = [0, *cuts, vcpus]
        for i in range(count):
            pinned = draw(st.sets(st.integers(0, host_nodes - 1), max_size=2)) if draw(st.booleans()) else set()
            memory = draw(st.sampled_from([256, 512, 1024]))
            vnodes.append(vnode(i, range(bounds[i], bounds[i + 1]), memory, pinned))
    memory = sum(v.memory_mib for v in vnodes) or draw(st.sampled_from([256, 512, 1024, 2048]))
    return make_vm(
        sockets=sockets,
        cores=cores,
        threads=threads,
        memory_mib=memory,
        cpu_pinning_policy=policy,
        numa_nodes=vnodes,
        hugepage_kib=hugepage_kib,
    )


def _units(host: HostState, node_index: int | None, isolate: bool, socket: int | None = None) -> int:
    cores = [
        c
        for c in host.layout.cores
        if (node_index is None or c.node == node_index) and (socket is None or c.socket == socket)
    ]
    if isolate:
        return sum(1 for c in cores if c.mask & host.free == c.mask)
    return sum((c.mask & host.free).bit_count() for c in cores)


def reference_fits(host: HostState, vm: VMRequest) -> bool:
    """Exhaustive search for any placement, by counting."""
    policy = vm.cpu_pinning_policy
    dynamic = policy != "none"
    isolate = policy == "isolate_threads"
    page = vm.hugepage_kib or SMALL
    need_kib = vm.memory_mib * 1024
    if page != SMALL and need_kib % page:
        return False
    if page == SMALL and need_kib > host.small_free_kib:
        return False
    if page != SMALL and need_kib // page > host.hugepages_free.get(page, 0):
        return False
    if not dynamic and vm.vcpus > host.online_count - host.exclusive_count:
        return False  # oVirt's CPU filter, threads counted as cores: the shared pool must hold the VM
    if policy == "dedicated" and vm.threads > host.topology.threads_per_core:
        return False  # oVirt's CpuTopology rule

    cells = [v for v in vm.numa_nodes if dynamic or v.pinned_to]
    if cells:
        if any(v.pinned_to for v in cells) and not host.numa_supported:
            return False
        nodes = [n.index for n in host.nodes]
        if any(v.pinned_to - set(host.node_by_index) for v in cells):
            return False  # as oVirt: pinning to a node the host lacks fails even if another pinned node fits
        choices = [sorted(v.pinned_to) if v.pinned_to else nodes for v in cells]
        for mapping in itertools.product(*choices):
            per_node = {n: [v for v, m in zip(cells, mapping, strict=True) if m == n] for n in set(mapping)}
            if all(_node_holds(host, n, on_node, dynamic, isolate, page) for n, on_node in per_node.items()):
                return True
        return False
    if not dynamic:
        return True
    size = vm.cores * vm.threads
    sockets = sorted({c.socket for c in host.layout.cores})
    for assignment in itertools.product(sockets, repeat=vm.sockets):
        if all(assignment.count(s) * size <= _units(host, None, isolate, s) for s in set(assignment)):
            return True
    return False


def _node_holds(host, index, cells, dynamic, isolate, page) -> bool:
    node = host.node_by_index[index]
    if dynamic and sum(len(v.vcpus) for v in cells) > _units(host, index, isolate):
        return False
    kib = sum(v.memory_mib for v in cells) * 1024
    if page == SMALL:
        return kib <= node.small_free_kib
    return all(v.memory_mib * 1024 % page == 0 for v in cells) and kib // page <= node.hugepages_free.get(page, 0)


@FAST
@given(hosts(), st.data())
def test_scheduler_finds_every_placement_the_reference_finds(host, data):
    vm = data.draw(vms(host_nodes=4))
    decision = schedule([host], vm, START, THREADS)
    expected = reference_fits(host, vm)
    if decision.chosen is None:
        assert not expected, decision.verdicts[0].rejections
    else:
        assert expected, "the scheduler placed a VM the exhaustive search cannot place"
        assert placement_problems(host, vm, decision.placement) == []


@FAST
@given(st.lists(hosts(), min_size=1, max_size=4), st.data())
def test_every_eligible_host_can_be_placed(host_list, data):
    """Filters are exact: whichever eligible host wins, its placement succeeds and obeys the rules."""
    hosts_ = [renumbered(h, i) for i, h in enumerate(host_list, start=1)]
    vm = data.draw(vms(host_nodes=4))
    decision = schedule(hosts_, vm, START, THREADS)
    plan = make_plan(vm, START, THREADS)
    for verdict in decision.verdicts:
        host = next(h for h in hosts_ if h.id == verdict.host_id)
        assert verdict.eligible == reference_fits(host, vm)
        if verdict.eligible:
            placement = place(plan, host)
            assert placement_problems(host, vm, placement) == []
        else:
            assert verdict.rejections and all(r.reason for r in verdict.rejections)
    if decision.chosen is not None:
        assert decision.verdict(decision.chosen).rank == 1


def renumbered(host: HostState, host_id: int) -> HostState:
    """The same host under another id (every drawn host has id 1)."""
    return build_host_state(replace(host.topology, id=host_id, name=f"h{host_id}"), host.allocations)


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
    """The reference itself: a full host fits nothing, an empty one fits a small VM."""
    full = make_host(cores=2, allocations=[held(7, [0, 1])])
    empty = make_host(cores=2)
    vm = make_vm(cores=2, cpu_pinning_policy="dedicated")
    assert not reference_fits(full, vm)
    assert reference_fits(empty, vm)
    assert cpus_of(empty.free) == [0, 1]
