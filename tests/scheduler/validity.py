"""Independent checks that an answer obeys the rules, whatever answer the scheduler picked.

Placements are judged against :class:`RawHost`, worked out from the host's topology and allocations alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from scheduler.core import HostState, Placement, VMRequest

from .raw import SMALL, RawHost


def placement_problems(host: HostState, vm: VMRequest, placement: Placement) -> list[str]:
    """Rule violations of ``placement`` on the host built from these inputs (without the VM's own allocation)."""
    return raw_placement_problems(RawHost.of(host.topology, host.allocations, vm.id), vm, placement)


def raw_placement_problems(host: RawHost, vm: VMRequest, placement: Placement, *, spread: bool = False) -> list[str]:
    """Rule violations of ``placement`` on what other VMs leave of the host. ``spread``: NUMA pinning is
    suspended, so no vNUMA node may be bound and dynamically pinned vCPUs may take any free pCPUs."""
    if spread:
        if placement.numa:
            return [f"vNUMA mapping {dict(placement.numa)} with NUMA pinning suspended"]
        vm = replace(vm, numa_nodes=())
    problems: list[str] = []
    if placement.host_id != host.id:
        problems.append(f"placed on host {placement.host_id}, judged on host {host.id}")
    problems += _cpu_problems(host, vm, placement, spread)
    problems += _numa_problems(host, vm, placement)
    problems += _memory_problems(host, vm, placement)
    for what, cpus in (("emulator", placement.emulator_cpus), ("IO thread", placement.io_thread_cpus)):
        if bad := set(cpus) - (host.online - host.exclusive):
            problems.append(f"{what} pCPUs {sorted(bad)} are offline, missing or held exclusively by another VM")
    if vm.emulator_cpus and placement.emulator_cpus != vm.emulator_cpus:
        given = sorted(vm.emulator_cpus)
        problems.append(f"emulator threads on {sorted(placement.emulator_cpus)}, the VM pins them to {given}")
    return problems


def _cpu_problems(host: RawHost, vm: VMRequest, placement: Placement, spread: bool = False) -> list[str]:
    problems: list[str] = []
    policy = vm.cpu_pinning_policy
    pins = {vcpu: set(cpus) for vcpu, cpus in placement.vcpu_pins.items()}
    exclusive, shared = set(placement.exclusive_cpus), set(placement.shared_cpus)
    if exclusive & shared:
        problems.append(f"pCPUs {sorted(exclusive & shared)} are held both exclusively and shared")
    if bad := shared - (host.online - host.exclusive):
        problems.append(f"shared pCPUs {sorted(bad)} are offline, missing or held exclusively by another VM")

    if policy == "resize_and_pin_numa":
        topo = host.topology
        expected = (topo.sockets, topo.cores_per_socket - 1, host.threads_per_core)
        if placement.topology != expected:
            problems.append(f"resized to {placement.topology}, the host gives {expected}")
        # Every thread of each node except its first core (by CPU number), one vCPU each.
        wanted = set()
        for cpus in host.node_cpus.values():
            node_cores = sorted((min(t), t) for t in host.cores.values() if t <= cpus)
            wanted |= {cpu for _, threads in node_cores[1:] for cpu in threads}
        if sorted(pins) != list(range(len(wanted))) or any(len(cpus) != 1 for cpus in pins.values()):
            problems.append(f"vCPUs {sorted(pins)} are not pinned one pCPU each for {len(wanted)} vCPUs")
        elif set().union(*pins.values()) != wanted:
            problems.append(f"pinned to {sorted(set().union(*pins.values()))}, not to {sorted(wanted)}")
        else:
            nodes, size = sorted(host.node_cpus), expected[1] * expected[2]  # vNUMA node i: the vCPUs of socket i
            for vcpu, cpus in pins.items():
                if not cpus <= host.node_cpus[nodes[vcpu // size]]:
                    problems.append(
                        f"vCPU {vcpu} of vNUMA node {vcpu // size} runs outside host node {nodes[vcpu // size]}"
                    )
        if exclusive:
            problems.append("Resize and Pin NUMA holds pCPUs exclusively")
        if not set().union(set(), *pins.values()) <= shared:
            problems.append("a pinned pCPU is not recorded as shared")
        return problems

    if placement.topology != (vm.sockets, vm.cores, vm.threads):
        problems.append(f"topology {placement.topology} instead of the VM's {(vm.sockets, vm.cores, vm.threads)}")
    if policy == "manual":
        if pins != {vcpu: set(cpus) for vcpu, cpus in vm.cpu_pinning.items()}:
            problems.append("manual pinning not kept as written")
        written = set().union(set(), *pins.values())
        if bad := written - (host.online - host.exclusive):
            problems.append(f"manually pinned pCPUs {sorted(bad)} are offline, missing or held exclusively")
        if not written <= shared:
            problems.append("a manually pinned pCPU is not recorded as shared")
    elif policy == "none" and (pins or exclusive):
        problems.append("a VM without CPU pinning got pinned or exclusive pCPUs")
    if policy not in ("dedicated", "isolate_threads"):
        if exclusive:
            problems.append(f"a {policy} VM holds pCPUs {sorted(exclusive)} exclusively")
        return problems

    if sorted(pins) != list(range(vm.vcpus)):
        problems.append(f"vCPUs pinned {sorted(pins)} instead of all {vm.vcpus}")
    if any(len(cpus) != 1 for cpus in pins.values()):
        return [*problems, "a vCPU is pinned to more than one pCPU"]
    pcpus = [cpu for cpus in pins.values() for cpu in cpus]
    if len(set(pcpus)) != len(pcpus):
        problems.append(f"a pCPU is used twice: {sorted(pcpus)}")
    if set(pcpus) & vm.emulator_cpus:
        problems.append(f"vCPUs run on the emulator threads' pCPUs {sorted(set(pcpus) & vm.emulator_cpus)}")
    if bad := exclusive - host.free:
        problems.append(f"exclusive pCPUs {sorted(bad)} were not free")
    if policy == "dedicated" and exclusive != set(pcpus):
        problems.append(f"holds {sorted(exclusive)} exclusively for vCPUs on {sorted(pcpus)}")
    if policy == "isolate_threads":
        cores = [host.core_of.get(p) for p in pcpus]
        if len(set(cores)) != len(cores):
            problems.append("two vCPUs share a core under isolate_threads")
        whole = set().union(set(), *(host.cores.get(core, frozenset()) for core in cores))
        if exclusive != whole:
            problems.append(f"holds {sorted(exclusive)} exclusively, the vCPUs' whole cores are {sorted(whole)}")
    if not vm.numa_nodes and not spread:
        size = vm.cores * vm.threads
        for first in range(0, vm.vcpus, size):
            sockets = {host.socket_of.get(p) for v in range(first, first + size) for p in pins.get(v, ())}
            if len(sockets) > 1:
                problems.append(f"virtual socket {first // size} spans physical sockets {sorted(sockets)}")
    return problems


def _numa_problems(host: RawHost, vm: VMRequest, placement: Placement) -> list[str]:
    problems: list[str] = []
    numa = dict(placement.numa)
    if not host.numa and numa:
        problems.append(f"vNUMA mapping {numa} on a host without NUMA")
    if bad := {v: n for v, n in numa.items() if n not in host.node_cpus}:
        problems.append(f"vNUMA nodes mapped to host nodes the host does not have: {bad}")
    if vm.cpu_pinning_policy == "resize_and_pin_numa":
        if numa != {i: node for i, node in enumerate(sorted(host.node_cpus))}:
            problems.append(f"Resize and Pin NUMA mapped {numa}, not one vNUMA node per host node")
        return problems

    dynamic = vm.cpu_pinning_policy in ("dedicated", "isolate_threads")
    for vn in vm.numa_nodes:
        hard = vn.pins_on(host.id) if vn.tune_mode != "preferred" else frozenset()
        if hard and numa.get(vn.index) not in hard:
            problems.append(f"vNUMA node {vn.index} mapped to {numa.get(vn.index)}, pinned to {sorted(hard)}")
        if dynamic and host.numa:
            if vn.index not in numa:
                problems.append(f"vNUMA node {vn.index} is not mapped")
                continue
            cpus = host.node_cpus.get(numa[vn.index], frozenset())
            for vcpu in sorted(vn.vcpus):
                if not set(placement.vcpu_pins.get(vcpu, ())) <= cpus:
                    problems.append(f"vCPU {vcpu} is pinned outside host node {numa[vn.index]}")
    return problems


def _memory_problems(host: RawHost, vm: VMRequest, placement: Placement) -> list[str]:
    problems: list[str] = []
    page = vm.hugepage_kib or SMALL
    charged: Counter[int] = Counter()
    for node, mib in placement.memory_mib.items():
        charged[node] += mib * 1024
        if page != SMALL and mib:
            problems.append(f"{mib} MiB of small pages on node {node} for a VM on {page} KiB pages")
        if node not in host.small_free_kib:
            problems.append(f"memory charged to node {node}, which the host does not have")
        elif mib * 1024 > host.small_free_kib[node]:
            problems.append(f"{mib} MiB on node {node} exceed its {host.small_free_kib[node] // 1024} MiB free")
    for node, pools in placement.hugepages.items():
        for size, pages in pools.items():
            charged[node] += size * pages
            if size != page:
                problems.append(f"{size} KiB pages used on node {node}, the VM asks for {page}")
            if pages > host.pages_free.get(node, {}).get(size, 0):
                problems.append(f"{pages} pages of {size} KiB on node {node} exceed its free pages")
    if charged.total() != vm.memory_mib * 1024:
        problems.append(f"placed {charged.total()} KiB of memory, the VM has {vm.memory_mib * 1024}")

    # Each vNUMA node that the placement maps holds its memory on that host node.
    if vm.cpu_pinning_policy == "resize_and_pin_numa":
        cells = dict(enumerate(resize_memory_split(vm.memory_mib, page, len(host.node_cpus))))
    elif vm.cpu_pinning_policy in ("dedicated", "isolate_threads"):
        cells = {vn.index: vn.memory_mib for vn in vm.numa_nodes}
    else:
        cells = {vn.index: vn.memory_mib for vn in vm.numa_nodes if vn.tune_mode != "preferred" and vn.pins_on(host.id)}
    held: Counter[int] = Counter()
    for index, mib in cells.items():
        held[placement.numa.get(index, 0)] += mib * 1024
    for node, kib in held.items():
        if kib > charged[node]:
            problems.append(f"vNUMA nodes mapped to host node {node} need {kib} KiB there, {charged[node]} charged")
    return problems


def resize_memory_split(memory_mib: int, page_kib: int, nodes: int) -> list[int]:
    """MiB of a Resize and Pin NUMA VM's memory on each of its vNUMA nodes, one per host node: an even share, the
    first nodes taking what does not divide, in whole pages when there are at least as many pages as nodes."""
    page_mib = page_kib // 1024
    unit = page_mib if page_mib > 1 and memory_mib % page_mib == 0 and memory_mib // page_mib >= nodes else 1
    share, extra = divmod(memory_mib // unit, max(nodes, 1))
    return [(share + (1 if i < extra else 0)) * unit for i in range(nodes)]


def numa_fit_problems(host_nodes: list[dict[str, Any]], vm: Mapping[str, Any], answer: Mapping[str, Any]) -> list[str]:
    """Rule violations of a numa-fit/v1 answer, per the file's conventions."""
    if not answer["fits"]:
        return [] if answer == {"fits": False, "mapping": {}, "pinning": {}, "pagesize_kib": {}} else ["junk"]
    problems: list[str] = []
    nodes = {n["id"]: n for n in host_nodes}
    sibling_sets = {cpu: tuple(s) for n in host_nodes for s in n["siblings"] for cpu in s}
    pinned = {cpu for n in host_nodes for cpu in n.get("pinned_cpus", ())}
    mapping = {int(k): v for k, v in answer["mapping"].items()}
    pinning = {int(k): v for k, v in answer["pinning"].items()}
    sizes = {int(k): v for k, v in answer["pagesize_kib"].items()}
    if len(set(mapping.values())) != len(mapping):
        problems.append("two vNUMA nodes share a host node")
    if len(set(pinning.values())) != len(pinning):
        problems.append("a pCPU is used twice")
    if set(pinning.values()) & pinned:
        problems.append("an already pinned pCPU is used")
    policy = vm.get("thread_policy", "prefer")
    used_cores = Counter(sibling_sets[p] for p in pinning.values())
    for vn in vm["numa_nodes"]:
        host_node = nodes.get(mapping.get(vn["id"]))
        if host_node is None:
            problems.append(f"vNUMA node {vn['id']} is not mapped")
            continue
        for vcpu in vn["vcpus"]:
            cpu = pinning.get(vcpu)
            if cpu not in host_node["cpus"]:
                problems.append(f"vCPU {vcpu} on pCPU {cpu} outside host node {host_node['id']}")
                continue
            siblings = sibling_sets[cpu]
            free_siblings = [s for s in siblings if s not in pinned]
            if policy == "isolate" and (len(free_siblings) != len(siblings) or used_cores[siblings] != 1):
                problems.append(f"vCPU {vcpu} does not have core {siblings} to itself")
            if policy == "require" and len(free_siblings) < 2:
                problems.append(f"vCPU {vcpu} is on a core without 2 free threads")
        size = sizes.get(vn["id"])
        if not _size_allowed(vm.get("hugepage_kib"), size):
            problems.append(f"page size {size} does not answer the request {vm.get('hugepage_kib')!r}")
        pools = {int(k): v for k, v in host_node.get("hugepages", {}).items()}
        need = vn["memory_mib"] * 1024
        if size == SMALL:
            small_total = host_node["memory_mib"] * 1024 - sum(s * p["total"] for s, p in pools.items())
            if need > small_total - host_node.get("small_used_mib", 0) * 1024:
                problems.append(f"vNUMA node {vn['id']} does not fit the small pages of node {host_node['id']}")
        elif size not in pools:
            problems.append(f"page size {size} does not exist on node {host_node['id']}")
        elif need % size or need // size > pools[size]["total"] - pools[size].get("used", 0):
            problems.append(f"vNUMA node {vn['id']} does not fit the {size} KiB pool of node {host_node['id']}")
    return problems


def _size_allowed(request: int | str | None, size: int | None) -> bool:
    if request is None or request == "small":
        return size == SMALL
    if request == "large":
        return size is not None and size != SMALL
    if request == "any":
        return size is not None
    return size == request
