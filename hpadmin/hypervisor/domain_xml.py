"""Domain XML for a :class:`DomainSpec`, and its rewrite for a migration destination (pure functions).

Pinning lives in three places of a libvirt domain: ``<cputune>`` (vCPU, emulator and IO thread
affinity), ``<numatune>`` (which host nodes back each guest node) and ``<memoryBacking><hugepages>``
(page size per guest node: its ``nodeset`` counts *guest* cells, not host nodes). The same builders
write them for a new domain and replace them in a running domain's XML for its destination. A running
domain's XML also tells where its display listens (:func:`parse_console`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import replace

from hpadmin.hypervisor.base import Console, DomainSpec
from hpadmin.hypervisor.capabilities import format_cpuset

ET.register_namespace("qemu", "http://libvirt.org/schemas/domain/qemu/1.0")

_PIN_TAGS = ("vcpupin", "emulatorpin", "iothreadpin")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _cputune_pins(spec: DomainSpec) -> list[ET.Element]:
    pins = [
        ET.Element("vcpupin", vcpu=str(vcpu), cpuset=format_cpuset(cpus))
        for vcpu, cpus in sorted(spec.vcpu_pins.items())
        if cpus
    ]
    if spec.emulator_cpus:
        pins.append(ET.Element("emulatorpin", cpuset=format_cpuset(spec.emulator_cpus)))
    if spec.iothread_cpus:
        pins += [
            ET.Element("iothreadpin", iothread=str(i), cpuset=format_cpuset(spec.iothread_cpus))
            for i in range(1, spec.iothreads + 1)
        ]
    return pins


def _numatune(spec: DomainSpec) -> ET.Element | None:
    bound = [cell for cell in spec.numa_cells if cell.host_nodes]
    if not bound:
        return None
    nodes = {node for cell in bound for node in cell.host_nodes}
    modes = {cell.mode for cell in bound}
    # The domain-wide policy covers the emulator's own memory, over every node the guest's memory is bound to.
    # Strict is the safe default; a single shared mode is kept unless it is "preferred", which takes one node.
    mode = modes.pop() if len(modes) == 1 else "strict"
    if mode == "preferred" and len(nodes) > 1:
        mode = "strict"
    numatune = ET.Element("numatune")
    _sub(numatune, "memory", mode=mode, nodeset=format_cpuset(nodes))
    for cell in sorted(bound, key=lambda c: c.index):
        _sub(numatune, "memnode", cellid=str(cell.index), mode=cell.mode, nodeset=format_cpuset(cell.host_nodes))
    return numatune


def _hugepages(spec: DomainSpec) -> ET.Element | None:
    if not spec.numa_cells:
        if not spec.hugepage_kib:
            return None
        hugepages = ET.Element("hugepages")
        _sub(hugepages, "page", size=str(spec.hugepage_kib), unit="KiB")
        return hugepages
    cells_by_size: dict[int, list[int]] = defaultdict(list)
    for cell in spec.numa_cells:
        size = cell.hugepage_kib or spec.hugepage_kib
        if size:
            cells_by_size[size].append(cell.index)
    if not cells_by_size:
        return None
    hugepages = ET.Element("hugepages")
    for size, cells in sorted(cells_by_size.items()):
        _sub(hugepages, "page", size=str(size), unit="KiB", nodeset=format_cpuset(cells))
    return hugepages


def _to_string(root: ET.Element) -> str:
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def build_domain_xml(spec: DomainSpec, *, virt_type: str = "kvm", arch: str = "x86_64") -> str:
    """A complete, diskless domain definition for ``spec`` (``virt_type``: kvm, qemu or test)."""
    root = ET.Element("domain", type=virt_type)
    _sub(root, "name", spec.name)
    _sub(root, "uuid", spec.uuid)
    _sub(root, "memory", str(spec.memory_mib), unit="MiB")
    _sub(root, "currentMemory", str(spec.memory_mib), unit="MiB")
    hugepages = _hugepages(spec)
    if hugepages is not None:
        _sub(root, "memoryBacking").append(hugepages)
    _sub(root, "vcpu", str(spec.vcpus), placement="static")
    if spec.iothreads:
        _sub(root, "iothreads", str(spec.iothreads))
    pins = _cputune_pins(spec)
    if pins:
        _sub(root, "cputune").extend(pins)
    numatune = _numatune(spec)
    if numatune is not None:
        root.append(numatune)

    os_el = _sub(root, "os")
    _sub(os_el, "type", "hvm", arch=arch)
    _sub(os_el, "boot", dev="hd")
    _sub(os_el, "boot", dev="network")
    features = _sub(root, "features")
    _sub(features, "acpi")
    _sub(features, "apic")

    # No mode: QEMU's default model, the one that works everywhere (host-model fails under nested KVM).
    cpu = _sub(root, "cpu")
    if spec.cpu_passthrough:
        cpu.set("mode", "host-passthrough")
        cpu.set("check", "none")
        cpu.set("migratable", "on")
    _sub(cpu, "topology", sockets=str(spec.sockets), dies="1", cores=str(spec.cores), threads=str(spec.threads))
    if spec.numa_cells:
        numa = _sub(cpu, "numa")
        for cell in sorted(spec.numa_cells, key=lambda c: c.index):
            _sub(
                numa,
                "cell",
                id=str(cell.index),
                cpus=format_cpuset(cell.vcpus),
                memory=str(cell.memory_mib),
                unit="MiB",
            )

    clock = _sub(root, "clock", offset="utc")
    if spec.tsc_khz:
        _sub(clock, "timer", name="tsc", frequency=str(spec.tsc_khz * 1000))  # libvirt counts in Hz
    _sub(root, "on_poweroff", "destroy")
    _sub(root, "on_reboot", "restart")
    _sub(root, "on_crash", "destroy")
    devices = _sub(root, "devices")
    # Without an explicit controller libvirt adds a USB one; model "none" is how a domain has none.
    _sub(devices, "controller", type="usb", index="0", model="qemu-xhci" if spec.usb else "none")
    if not spec.headless:
        _sub(devices, "graphics", type="vnc", autoport="yes", listen="127.0.0.1")
        _sub(_sub(devices, "video"), "model", type="vga")
    if spec.soundcard:
        _sub(devices, "sound", model="ich6")
    if spec.rng:
        _sub(_sub(devices, "rng", model="virtio"), "backend", "/dev/urandom", model="random")
    if spec.watchdog:
        _sub(devices, "watchdog", model=spec.watchdog, action="reset")
    _sub(devices, "memballoon", model="virtio" if spec.memballoon else "none")
    return _to_string(root)


def _place(root: ET.Element, element: ET.Element, after: tuple[str, ...]) -> None:
    """Insert ``element`` after the last existing child named in ``after`` (libvirt's usual order)."""
    index = 0
    for i, child in enumerate(root):
        if child.tag in after:
            index = i + 1
    root.insert(index, element)


def startable(spec: DomainSpec) -> DomainSpec:
    """``spec`` as QEMU can start it (and receive it in a migration): when guest memory is bound to host nodes,
    QEMU 7.2 preallocates each guest node from threads bound to that node's pCPUs, and under libvirt 9.0
    (Debian 12) those threads are confined to the emulator's pCPUs, so QEMU fails to start ("Setting CPU
    affinity failed") when the emulator is pinned away from a node that guest memory is bound to. QEMU then
    starts with the emulator also allowed on the VM's own vCPU pCPUs (which lie on those nodes), or floating if
    the vCPUs float, and the driver pins it to ``spec.emulator_cpus`` once QEMU runs."""
    if not spec.emulator_cpus or not any(cell.host_nodes for cell in spec.numa_cells):
        return spec
    vcpu_cpus = {cpu for cpus in spec.vcpu_pins.values() for cpu in cpus}
    return replace(spec, emulator_cpus=tuple(sorted(set(spec.emulator_cpus) | vcpu_cpus)) if vcpu_cpus else ())


def rewrite_for_destination(xml: str, spec: DomainSpec) -> str:
    """Replace the pinning in a domain's XML by the pinning ``spec`` asks for on the destination.

    ``xml`` is the running domain's migratable XML (or its inactive config). vCPU, emulator and IO
    thread pins, ``<numatune>`` and the hugepage backing are rebuilt from ``spec``; everything else,
    guest-visible ABI included, is left exactly as it was.
    """
    root = ET.fromstring(xml)

    vcpu = root.find("vcpu")
    if vcpu is not None:
        # A domain-wide cpuset names source CPUs; the destination's pins come from the spec alone.
        vcpu.attrib.pop("cpuset", None)

    cputune = root.find("cputune")
    if cputune is None:
        cputune = ET.Element("cputune")
        _place(root, cputune, ("vcpu", "vcpus", "iothreads", "iothreadids"))
    for child in [c for c in cputune if c.tag in _PIN_TAGS]:
        cputune.remove(child)
    for i, pin in enumerate(_cputune_pins(spec)):
        cputune.insert(i, pin)
    if len(cputune) == 0:
        root.remove(cputune)

    old_numatune = root.find("numatune")
    numatune = _numatune(spec)
    if old_numatune is not None:
        position = list(root).index(old_numatune)
        root.remove(old_numatune)
        if numatune is not None:
            root.insert(position, numatune)
    elif numatune is not None:
        _place(root, numatune, ("vcpu", "vcpus", "iothreads", "iothreadids", "cputune"))

    backing = root.find("memoryBacking")
    if backing is None:
        backing = ET.Element("memoryBacking")
        _place(root, backing, ("maxMemory", "memory", "currentMemory"))
    old_hugepages = backing.find("hugepages")
    if old_hugepages is not None:
        backing.remove(old_hugepages)
    hugepages = _hugepages(spec)
    if hugepages is not None:
        backing.insert(0, hugepages)
    if len(backing) == 0:
        root.remove(backing)

    return _to_string(root)


def parse_console(xml: str) -> Console | None:
    """The first VNC or SPICE display of a running domain's XML: its protocol, listen address and port. None when
    it has none reachable over TCP (no such device, no port assigned, or it listens on a UNIX socket)."""
    for graphics in ET.fromstring(xml).iterfind("devices/graphics"):
        port = int(graphics.get("port", "-1"))
        listen = graphics.find("listen")
        if graphics.get("type") not in ("vnc", "spice") or port <= 0 or graphics.get("socket"):
            continue
        if listen is not None and listen.get("type") in ("socket", "none"):
            continue
        # Without an address libvirt listens where qemu.conf says, by default the loopback.
        address = (listen.get("address") if listen is not None else None) or graphics.get("listen") or "127.0.0.1"
        return Console(protocol=graphics.get("type"), address=address, port=port)
    return None
