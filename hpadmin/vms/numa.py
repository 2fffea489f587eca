"""vNUMA nodes as stored in ``VmConfig.numa_nodes`` (a JSON list) and as typed values.

One node: ``{"index": 0, "vcpus": [0, 1], "memory_mib": 2048, "tune_mode": "strict",
"pinned_to": [0], "pinned_to_by_host": {"7": [1]}}``. ``pinned_to`` is the host-node pinning on every
placement host ("same as the first host"); ``pinned_to_by_host`` overrides it for hosts whose layout differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from scheduler.core.fit import SMALL_PAGE_KIB
from scheduler.core.placement import resize_vnuma

TUNE_MODES = ("strict", "interleave", "preferred")


@dataclass(frozen=True)
class VNumaNode:
    index: int
    vcpus: tuple[int, ...]
    memory_mib: int
    tune_mode: str = "strict"
    pinned_to: tuple[int, ...] = ()
    pinned_to_by_host: dict[int, tuple[int, ...]] = field(default_factory=dict)

    @property
    def is_pinned(self) -> bool:
        return bool(self.pinned_to) or any(self.pinned_to_by_host.values())

    def pinning_for(self, host_id: int) -> tuple[int, ...]:
        """Host node indexes this vNUMA node may use on the given host."""
        return self.pinned_to_by_host.get(host_id, self.pinned_to)

    def all_pinnings(self) -> list[tuple[int, ...]]:
        return [self.pinned_to, *self.pinned_to_by_host.values()]

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "vcpus": list(self.vcpus),
            "memory_mib": self.memory_mib,
            "tune_mode": self.tune_mode,
            "pinned_to": list(self.pinned_to),
            "pinned_to_by_host": {str(k): list(v) for k, v in sorted(self.pinned_to_by_host.items())},
        }


def _int_list(value, what: str) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise ValueError(f"{what} must be a list of whole numbers of 0 or more.")
    if len(set(value)) != len(value):
        raise ValueError(f"{what} lists a number twice.")
    return tuple(value)


def parse_numa_nodes(data) -> list[VNumaNode]:
    """Check the JSON shape of the vNUMA nodes and return them typed; raises ValueError saying what is wrong."""
    if data in (None, ""):
        return []
    if not isinstance(data, list):
        raise ValueError("vNUMA nodes must be a list.")
    nodes = []
    for position, raw in enumerate(data):
        where = f"vNUMA node #{position}"
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be an object.")
        unknown = set(raw) - {"index", "vcpus", "memory_mib", "tune_mode", "pinned_to", "pinned_to_by_host"}
        if unknown:
            raise ValueError(f"{where} has unknown field(s): {', '.join(sorted(unknown))}.")
        index = raw.get("index", position)
        memory = raw.get("memory_mib")
        if not isinstance(index, int) or index < 0:
            raise ValueError(f"{where}: index must be a whole number of 0 or more.")
        if not isinstance(memory, int) or memory <= 0:
            raise ValueError(f"vNUMA node {index}: memory_mib must be a positive whole number.")
        mode = raw.get("tune_mode", "strict")
        if mode not in TUNE_MODES:
            raise ValueError(f"vNUMA node {index}: tune mode must be one of {', '.join(TUNE_MODES)}.")
        by_host_raw = raw.get("pinned_to_by_host") or {}
        if not isinstance(by_host_raw, dict):
            raise ValueError(f"vNUMA node {index}: pinned_to_by_host must map host ids to node lists.")
        by_host = {}
        for key, value in by_host_raw.items():
            try:
                host_id = int(key)
            except (TypeError, ValueError):
                raise ValueError(f"vNUMA node {index}: '{key}' is not a host id.") from None
            by_host[host_id] = _int_list(value, f"vNUMA node {index} pinning on host {host_id}")
        nodes.append(
            VNumaNode(
                index=index,
                vcpus=_int_list(raw.get("vcpus", []), f"vNUMA node {index} vcpus"),
                memory_mib=memory,
                tune_mode=mode,
                pinned_to=_int_list(raw.get("pinned_to") or [], f"vNUMA node {index} pinned_to"),
                pinned_to_by_host=by_host,
            )
        )
    return nodes


def complete_nodes(nodes: Sequence[VNumaNode], *, vcpus: int, memory_mib: int) -> list[VNumaNode]:
    """``nodes`` as the guest gets them, holding every vCPU and all the memory: vCPUs no node names are dealt
    round-robin over the nodes, memory no node holds goes to the last one (the stored nodes are not changed)."""
    if not nodes:
        return []
    cpus = [list(node.vcpus) for node in nodes]
    assigned = {vcpu for node in nodes for vcpu in node.vcpus}
    for i, vcpu in enumerate(v for v in range(vcpus) if v not in assigned):
        cpus[i % len(nodes)].append(vcpu)
    memory = [node.memory_mib for node in nodes]
    memory[-1] += memory_mib - sum(memory)
    return [replace(node, vcpus=tuple(sorted(c)), memory_mib=m) for node, c, m in zip(nodes, cpus, memory, strict=True)]


def resize_nodes(topology: Sequence[int], memory_mib: int, hugepage_kib: int | None) -> list[VNumaNode]:
    """The strict vNUMA nodes Resize and Pin NUMA gives a VM sized ``topology`` (sockets, cores, threads)."""
    sockets, cores, threads = topology
    return [
        VNumaNode(index=node.index, vcpus=tuple(sorted(node.vcpus)), memory_mib=node.memory_mib)
        for node in resize_vnuma((sockets, cores, threads), memory_mib, hugepage_kib or SMALL_PAGE_KIB)
    ]


def numa_layout(
    existing: list[dict],
    *,
    count: int,
    vcpus: int,
    memory_mib: int,
    hugepage_kib: int | None = None,
    tune_mode: str | None = None,
) -> list[dict]:
    """vNUMA nodes for a node count: the existing ones when count, vCPUs and memory still match; else vCPUs and
    memory split evenly (in whole hugepages when the memory allows), keeping each index's pinning."""
    same_shape = (
        count == len(existing)
        and sum(len(n.get("vcpus", [])) for n in existing) == vcpus
        and sum(n.get("memory_mib", 0) for n in existing) == memory_mib
    )
    if same_shape:
        nodes = [dict(node) for node in existing]
    else:
        unit = (
            hugepage_kib // 1024
            if hugepage_kib and hugepage_kib >= 1024 and memory_mib * 1024 % hugepage_kib == 0
            else 1
        )
        cpu_base, cpu_extra = divmod(vcpus, count) if count else (0, 0)
        mem_base, mem_extra = divmod(memory_mib // unit, count) if count else (0, 0)
        nodes, first = [], 0
        for i in range(count):
            previous = existing[i] if i < len(existing) else {}
            width = cpu_base + (1 if i < cpu_extra else 0)
            nodes.append(
                {
                    "index": i,
                    "vcpus": list(range(first, first + width)),
                    "memory_mib": (mem_base + (1 if i < mem_extra else 0)) * unit,
                    "tune_mode": previous.get("tune_mode", "strict"),
                    "pinned_to": list(previous.get("pinned_to") or []),
                    "pinned_to_by_host": dict(previous.get("pinned_to_by_host") or {}),
                }
            )
            first += width
    if tune_mode:
        for node in nodes:
            node["tune_mode"] = tune_mode
    return nodes
