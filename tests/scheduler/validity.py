"""Independent checks that an answer obeys the rules, whatever answer the scheduler picked."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from scheduler.core import HostState, Placement, VMRequest, cpus_of

SMALL = 4


def placement_problems(host: HostState, vm: VMRequest, placement: Placement) -> list[str]:
    """Rule violations of ``placement`` on ``host`` (judged without the VM's own allocation)."""
    problems: list[str] = []
    node_of = {cpu: node.index for node in host.nodes for cpu in cpus_of(node.cpus)}
    core_of = {cpu: core for core in host.layout.cores for cpu in cpus_of(core.mask)}
    free = set(cpus_of(host.free))
    pins = placement.vcpu_pins
    policy = vm.cpu_pinning_policy

    if policy in ("dedicated", "isolate_threads"):
        if sorted(pins) != list(range(vm.vcpus)):
            problems.append(f"vCPUs pinned {sorted(pins)} instead of all {vm.vcpus}")
        if any(len(cpus) != 1 for cpus in pins.values()):
            problems.append("a vCPU is pinned to more than one pCPU")
        pcpus = [next(iter(cpus)) for cpus in pins.values()]
        if len(set(pcpus)) != len(pcpus):
            problems.append(f"a pCPU is used twice: {sorted(pcpus)}")
        if not set(placement.exclusive_cpus) <= free:
            problems.append(f"exclusive pCPUs {sorted(set(placement.exclusive_cpus) - free)} were not free")
        if not set(pcpus) <= set(placement.exclusive_cpus):
            problems.append("a pinned pCPU is not held exclusively")
        if policy == "isolate_threads":
            cores = [core_of[p] for p in pcpus]
            if len(set(cores)) != len(cores):
                problems.append("two vCPUs share a core under isolate_threads")
            if any(set(cpus_of(c.mask)) - set(placement.exclusive_cpus) for c in cores):
                problems.append("isolate_threads left a sibling thread of a used core to others")
        for vn in vm.numa_nodes:
            if host.numa_supported and vn.index not in placement.numa:
                problems.append(f"vNUMA node {vn.index} is not mapped")
                continue
            for vcpu in vn.vcpus:
                cpu = next(iter(pins.get(vcpu, {-1})))
                if host.numa_supported and node_of.get(cpu) != placement.numa[vn.index]:
                    problems.append(f"vCPU {vcpu} on pCPU {cpu} is outside host node {placement.numa[vn.index]}")
        if not vm.numa_nodes:
            size = vm.cores * vm.threads
            for first in range(0, vm.vcpus, size):
                sockets = {core_of[next(iter(pins[v]))].socket for v in range(first, first + size) if v in pins}
                if len(sockets) > 1:
                    problems.append(f"virtual socket {first // size} spans physical sockets {sorted(sockets)}")
    elif policy == "manual":
        if {v: set(c) for v, c in pins.items()} != {v: set(c) for v, c in vm.cpu_pinning.items()}:
            problems.append("manual pinning not kept as written")

    if policy != "resize_and_pin_numa":
        for vn in vm.numa_nodes:
            hard = vn.pins_on(host.id) if vn.tune_mode != "preferred" else frozenset()
            if hard and placement.numa.get(vn.index) not in hard:
                problems.append(
                    f"vNUMA node {vn.index} mapped to {placement.numa.get(vn.index)}, pinned to {set(hard)}"
                )

    page = vm.hugepage_kib or SMALL
    total_kib = 0
    for index, mib in placement.memory_mib.items():
        total_kib += mib * 1024
        if mib * 1024 > host.node_by_index[index].small_free_kib:
            problems.append(f"{mib} MiB on node {index} exceed its free memory")
    for index, pools in placement.hugepages.items():
        for size, pages in pools.items():
            total_kib += size * pages
            if size != page:
                problems.append(f"{size} KiB pages used, the VM asks for {page}")
            if pages > host.node_by_index[index].hugepages_free.get(size, 0):
                problems.append(f"{pages} pages of {size} KiB on node {index} exceed its free pages")
    if total_kib != vm.memory_mib * 1024:
        problems.append(f"placed {total_kib} KiB of memory, the VM has {vm.memory_mib * 1024}")
    return problems


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
