"""libvirt capabilities XML -> :class:`HostCapabilities` (pure; no libvirt connection needed)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable

from hpadmin.hypervisor.base import CpuInfo, HostCapabilities, NumaNodeInfo

_UNIT_KIB = {"b": 1 / 1024, "bytes": 1 / 1024, "kib": 1, "k": 1, "mib": 1024, "m": 1024, "gib": 1024**2, "g": 1024**2}


def parse_cpuset(text: str) -> tuple[int, ...]:
    """Parse libvirt's CPU/node set syntax (``0-3,8,^2``) into sorted ids."""
    include: set[int] = set()
    exclude: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        target = exclude if part.startswith("^") else include
        part = part.lstrip("^")
        low, _, high = part.partition("-")
        target.update(range(int(low), int(high or low) + 1))
    return tuple(sorted(include - exclude))


def format_cpuset(ids: Iterable[int]) -> str:
    """Format ids as libvirt's compact set syntax: ``[0, 1, 2, 5]`` -> ``0-2,5``."""
    ranges: list[str] = []
    ordered = sorted(set(ids))
    start = prev = None
    for i in [*ordered, None]:
        if prev is not None and i == prev + 1:
            prev = i
            continue
        if start is not None:
            ranges.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = i
    return ",".join(ranges)


def _kib(element: ET.Element | None) -> int:
    if element is None or not (element.text or "").strip():
        return 0
    return int(int(element.text) * _UNIT_KIB[element.get("unit", "KiB").lower()])


def _pages(parent: ET.Element) -> dict[int, int]:
    """Hugepage pools of a cell: page size KiB -> pages, leaving out the base (smallest) page size."""
    pools = {int(p.get("size")): int(p.text or 0) for p in parent.findall("pages") if p.get("unit", "KiB") == "KiB"}
    if pools:
        pools.pop(min(pools))
    return pools


def parse_capabilities(
    xml: str,
    *,
    hostname: str = "",
    memory_mib: int = 0,
    cpu_flags: Iterable[str] | None = None,
) -> HostCapabilities:
    """Read a host's topology from ``virConnectGetCapabilities()`` XML.

    ``memory_mib`` is used when the XML has no NUMA cells (libvirt's test driver with a custom host
    file); ``cpu_flags`` replaces the ``<feature>`` list, which only names features beyond the CPU
    model (the driver passes the model's expanded feature set).

    libvirt reports a host without NUMA as one cell; that is what it is, one node. Offline CPUs are
    listed in their cell without topology attributes.
    """
    root = ET.fromstring(xml)
    host_cpu = root.find("host/cpu")
    if host_cpu is None:
        raise ValueError("capabilities XML has no <host><cpu> element")

    model = host_cpu.findtext("model") or host_cpu.findtext("arch") or "unknown"
    flags = (
        frozenset(cpu_flags)
        if cpu_flags is not None
        else frozenset(f.get("name") for f in host_cpu.findall("feature") if f.get("name"))
    )
    tsc = host_cpu.find("counter[@name='tsc']")
    tsc_khz = int(tsc.get("frequency")) // 1000 if tsc is not None and tsc.get("frequency") else None

    cpus: list[CpuInfo] = []
    nodes: list[NumaNodeInfo] = []
    cores: dict[tuple[int, int, int], int] = {}  # (socket, die, core) -> online threads
    for cell in root.findall("host/topology/cells/cell"):
        index = int(cell.get("id"))
        cell_cpus = []
        for cpu in cell.findall("cpus/cpu"):
            cpu_id = int(cpu.get("id"))
            cell_cpus.append(cpu_id)
            online = cpu.get("socket_id") is not None
            socket = int(cpu.get("socket_id", -1))
            core = int(cpu.get("core_id", -1))
            if online:
                key = (socket, int(cpu.get("die_id", 0)), core)
                cores[key] = cores.get(key, 0) + 1
            cpus.append(CpuInfo(id=cpu_id, socket=socket, core=core, node=index, online=online))
        distances = {int(s.get("id")): int(s.get("value")) for s in cell.findall("distances/sibling")}
        nodes.append(
            NumaNodeInfo(
                index=index,
                memory_mib=_kib(cell.find("memory")) // 1024,
                cpus=tuple(sorted(cell_cpus)),
                distances=distances,
                hugepages=_pages(cell),
            )
        )

    topology = host_cpu.find("topology")
    if cores:
        sockets = len({socket for socket, _, _ in cores})
        cores_per_socket = len(cores) // sockets
        threads_per_core = max(cores.values())
    elif topology is not None:
        # Without cells, <topology> is all there is (its "sockets" counts sockets per NUMA node).
        sockets = int(topology.get("sockets", 1))
        cores_per_socket = int(topology.get("cores", 1)) * int(topology.get("dies", 1))
        threads_per_core = int(topology.get("threads", 1))
    else:
        sockets = cores_per_socket = threads_per_core = 1
    if not cpus:
        cpus = [
            CpuInfo(id=i, socket=i // (cores_per_socket * threads_per_core), core=i // threads_per_core, node=None)
            for i in range(sockets * cores_per_socket * threads_per_core)
        ]

    host_pages: dict[int, int] = {}
    for node in nodes:
        for size, count in node.hugepages.items():
            host_pages[size] = host_pages.get(size, 0) + count

    return HostCapabilities(
        cpu_model=model,
        cpu_flags=flags,
        sockets=sockets,
        cores_per_socket=cores_per_socket,
        threads_per_core=threads_per_core,
        cpus=tuple(sorted(cpus, key=lambda c: c.id)),
        numa_nodes=tuple(sorted(nodes, key=lambda n: n.index)),
        memory_mib=sum(n.memory_mib for n in nodes) or memory_mib,
        hugepages=host_pages,
        tsc_khz=tsc_khz,
        hostname=hostname,
    )


def guest_virt_type(xml: str, arch: str | None = None) -> tuple[str, str]:
    """The best domain type (kvm over qemu) and guest arch the host offers for hvm guests.

    The daemon lists ``<domain type='kvm'>`` only when it can use /dev/kvm, so this is the check
    that counts: done by the host that will run the guest, not by the machine hpadmin runs on.
    """
    root = ET.fromstring(xml)
    arch = arch or root.findtext("host/cpu/arch") or "x86_64"
    types: list[str] = []
    for guest in root.findall("guest"):
        arch_el = guest.find("arch")
        if guest.findtext("os_type") == "hvm" and arch_el is not None and arch_el.get("name") == arch:
            types += [d.get("type") for d in arch_el.findall("domain")]
    for preferred in ("kvm", "qemu"):
        if preferred in types:
            return preferred, arch
    if not types:
        raise ValueError(f"host offers no hvm guests for {arch}")
    return types[0], arch
