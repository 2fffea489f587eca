"""Domain XML for every pinning shape, and its rewrite for a migration destination."""

from __future__ import annotations

import dataclasses
import uuid
import xml.etree.ElementTree as ET

import libvirt
import pytest

from hpadmin.hypervisor.base import DomainSpec, GuestNumaCell
from hpadmin.hypervisor.domain_xml import build_domain_xml, rewrite_for_destination, startable

TEST_URI = "test:///default"


def make_spec(**overrides) -> DomainSpec:
    fields = {
        "uuid": "0b5d7c1e-6a43-4f1e-9d2b-3c8a1f0e7a11",
        "name": "hp-vm",
        "sockets": 1,
        "cores": 4,
        "threads": 1,
        "memory_mib": 4096,
    }
    return DomainSpec(**{**fields, **overrides})


def parse(xml: str) -> ET.Element:
    return ET.fromstring(xml)


def vcpu_pins(root: ET.Element) -> dict[int, str]:
    return {int(p.get("vcpu")): p.get("cpuset") for p in root.findall("cputune/vcpupin")}


def memnodes(root: ET.Element) -> dict[int, tuple[str, str]]:
    return {int(m.get("cellid")): (m.get("mode"), m.get("nodeset")) for m in root.findall("numatune/memnode")}


def pages(root: ET.Element) -> list[tuple[str, str | None]]:
    return [(p.get("size"), p.get("nodeset")) for p in root.findall("memoryBacking/hugepages/page")]


TWO_CELLS = (
    GuestNumaCell(index=0, vcpus=(0, 1), memory_mib=2048, host_nodes=(0,), mode="strict"),
    GuestNumaCell(index=1, vcpus=(2, 3), memory_mib=2048, host_nodes=(1,), mode="strict"),
)


def test_plain_domain():
    root = parse(build_domain_xml(make_spec()))

    assert root.get("type") == "kvm"
    assert root.findtext("name") == "hp-vm"
    assert root.findtext("uuid") == "0b5d7c1e-6a43-4f1e-9d2b-3c8a1f0e7a11"
    assert (root.findtext("memory"), root.find("memory").get("unit")) == ("4096", "MiB")
    assert root.findtext("vcpu") == "4" and root.find("vcpu").get("placement") == "static"
    assert root.find("os/type").get("arch") == "x86_64"
    assert [b.get("dev") for b in root.findall("os/boot")] == ["hd", "network"]
    assert root.find("cputune") is None and root.find("numatune") is None and root.find("memoryBacking") is None
    topology = root.find("cpu/topology")
    assert (topology.get("sockets"), topology.get("cores"), topology.get("threads")) == ("1", "4", "1")


def test_dedicated_pinning_one_pcpu_per_vcpu():
    spec = make_spec(vcpu_pins={0: (2,), 1: (3,), 2: (4,), 3: (5,)})

    assert vcpu_pins(parse(build_domain_xml(spec))) == {0: "2", 1: "3", 2: "4", 3: "5"}


def test_manual_pinning_with_cpu_sets():
    # oVirt's "0#1_1#2-3,^2" style: vCPU 0 on 1, vCPU 1 on 3 only; vCPUs 2-3 float over 4-7 and 9.
    spec = make_spec(vcpu_pins={0: (1,), 1: (3,), 2: (4, 5, 6, 7, 9), 3: (4, 5, 6, 7, 9)})

    assert vcpu_pins(parse(build_domain_xml(spec))) == {0: "1", 1: "3", 2: "4-7,9", 3: "4-7,9"}


def test_unpinned_vcpus_get_no_vcpupin():
    spec = make_spec(vcpu_pins={0: (1,), 1: ()})

    assert vcpu_pins(parse(build_domain_xml(spec))) == {0: "1"}


def test_emulator_and_iothread_pins():
    spec = make_spec(emulator_cpus=(0, 40), iothreads=2, iothread_cpus=(1, 41))
    root = parse(build_domain_xml(spec))

    assert root.findtext("iothreads") == "2"
    assert root.find("cputune/emulatorpin").get("cpuset") == "0,40"
    assert [(p.get("iothread"), p.get("cpuset")) for p in root.findall("cputune/iothreadpin")] == [
        ("1", "1,41"),
        ("2", "1,41"),
    ]


def test_an_emulator_pinned_away_from_bound_memory_starts_on_the_vcpus_pcpus_too():
    # QEMU preallocates guest node 1's memory from threads on host node 1, confined to the emulator's pCPUs.
    spec = make_spec(vcpu_pins={0: (0,), 1: (1,), 2: (8,), 3: (9,)}, emulator_cpus=(2, 3), numa_cells=TWO_CELLS)
    assert startable(spec) == dataclasses.replace(spec, emulator_cpus=(0, 1, 2, 3, 8, 9))
    # vCPUs that float: so does the emulator until it is pinned.
    floating = dataclasses.replace(spec, vcpu_pins={})
    assert startable(floating) == dataclasses.replace(floating, emulator_cpus=())


@pytest.mark.parametrize(
    "overrides",
    [
        {"emulator_cpus": (), "vcpu_pins": {0: (0,)}, "numa_cells": TWO_CELLS},
        {"emulator_cpus": (2, 3), "vcpu_pins": {0: (0,)}},
        {"emulator_cpus": (2, 3), "numa_cells": tuple(dataclasses.replace(c, host_nodes=()) for c in TWO_CELLS)},
    ],
    ids=["emulator-floats", "no-guest-numa", "memory-not-bound"],
)
def test_a_domain_starts_as_pinned_when_no_memory_is_bound_away_from_the_emulator(overrides):
    spec = make_spec(**overrides)
    assert startable(spec) is spec


def test_iothreads_without_pinning():
    root = parse(build_domain_xml(make_spec(iothreads=1)))

    assert root.findtext("iothreads") == "1"
    assert root.find("cputune") is None


@pytest.mark.parametrize("mode", ["strict", "interleave", "preferred"])
def test_numa_cells_pinned_to_host_nodes(mode):
    cells = tuple(dataclasses.replace(cell, mode=mode) for cell in TWO_CELLS)
    root = parse(build_domain_xml(make_spec(numa_cells=cells)))

    assert [(c.get("id"), c.get("cpus"), c.get("memory"), c.get("unit")) for c in root.findall("cpu/numa/cell")] == [
        ("0", "0-1", "2048", "MiB"),
        ("1", "2-3", "2048", "MiB"),
    ]
    assert memnodes(root) == {0: (mode, "0"), 1: (mode, "1")}
    memory = root.find("numatune/memory")
    # "preferred" takes a single node, so the domain-wide policy over both nodes is strict.
    assert (memory.get("mode"), memory.get("nodeset")) == ("strict" if mode == "preferred" else mode, "0-1")


def test_mixed_modes_and_a_single_preferred_node():
    cells = (
        GuestNumaCell(index=0, vcpus=(0, 1), memory_mib=2048, host_nodes=(1,), mode="preferred"),
        GuestNumaCell(index=1, vcpus=(2, 3), memory_mib=2048, host_nodes=(1,), mode="preferred"),
    )
    root = parse(build_domain_xml(make_spec(numa_cells=cells)))
    assert root.find("numatune/memory").attrib == {"mode": "preferred", "nodeset": "1"}

    cells = (
        dataclasses.replace(cells[0], host_nodes=(0,), mode="interleave"),
        dataclasses.replace(cells[1], mode="strict"),
    )
    root = parse(build_domain_xml(make_spec(numa_cells=cells)))
    assert root.find("numatune/memory").attrib == {"mode": "strict", "nodeset": "0-1"}
    assert memnodes(root) == {0: ("interleave", "0"), 1: ("strict", "1")}


def test_guest_numa_without_host_pinning_has_no_numatune():
    cells = tuple(dataclasses.replace(cell, host_nodes=()) for cell in TWO_CELLS)
    root = parse(build_domain_xml(make_spec(numa_cells=cells)))

    assert len(root.findall("cpu/numa/cell")) == 2
    assert root.find("numatune") is None


def test_two_guest_cells_on_one_host_node():
    cells = tuple(dataclasses.replace(cell, host_nodes=(3,)) for cell in TWO_CELLS)
    root = parse(build_domain_xml(make_spec(numa_cells=cells)))

    assert root.find("numatune/memory").get("nodeset") == "3"
    assert memnodes(root) == {0: ("strict", "3"), 1: ("strict", "3")}


def test_a_guest_cell_bound_to_several_host_nodes():
    cells = (TWO_CELLS[0], dataclasses.replace(TWO_CELLS[1], host_nodes=(0, 1)))
    root = parse(build_domain_xml(make_spec(numa_cells=cells)))

    assert memnodes(root) == {0: ("strict", "0"), 1: ("strict", "0-1")}
    assert root.find("numatune/memory").attrib == {"mode": "strict", "nodeset": "0-1"}


def test_hugepages_per_node_2m_and_1g():
    cells = (
        dataclasses.replace(TWO_CELLS[0], hugepage_kib=2048),
        dataclasses.replace(TWO_CELLS[1], hugepage_kib=1048576),
    )
    root = parse(build_domain_xml(make_spec(numa_cells=cells)))

    assert pages(root) == [("2048", "0"), ("1048576", "1")]
    assert {p.get("unit") for p in root.findall("memoryBacking/hugepages/page")} == {"KiB"}


def test_domain_wide_hugepages_cover_every_guest_node():
    root = parse(build_domain_xml(make_spec(numa_cells=TWO_CELLS, hugepage_kib=1048576)))

    assert pages(root) == [("1048576", "0-1")]


def test_hugepages_without_numa():
    root = parse(build_domain_xml(make_spec(hugepage_kib=2048)))

    assert pages(root) == [("2048", None)]


@pytest.mark.parametrize(("passthrough", "mode"), [(True, "host-passthrough"), (False, None)])
def test_cpu_passthrough(passthrough, mode):
    cpu = parse(build_domain_xml(make_spec(cpu_passthrough=passthrough))).find("cpu")

    assert cpu.get("mode") == mode
    assert cpu.get("migratable") == ("on" if passthrough else None)
    assert cpu.find("topology") is not None


def test_headless_without_balloon():
    devices = parse(build_domain_xml(make_spec())).find("devices")

    assert devices.find("graphics") is None and devices.find("video") is None
    assert devices.find("memballoon").get("model") == "none"


def test_devices_off():
    devices = parse(build_domain_xml(make_spec())).find("devices")

    assert [c.attrib for c in devices.findall("controller")] == [{"type": "usb", "index": "0", "model": "none"}]
    assert devices.find("sound") is None and devices.find("rng") is None and devices.find("watchdog") is None


def test_devices_on_request():
    spec = make_spec(usb=True, soundcard=True, rng=True, watchdog="i6300esb")
    devices = parse(build_domain_xml(spec)).find("devices")

    assert devices.find("controller[@type='usb']").get("model") == "qemu-xhci"
    assert devices.find("sound").get("model") == "ich6"
    assert devices.find("rng").get("model") == "virtio"
    assert devices.find("rng/backend").attrib == {"model": "random"}
    assert devices.findtext("rng/backend") == "/dev/urandom"
    assert devices.find("watchdog").attrib == {"model": "i6300esb", "action": "reset"}


def test_console_and_balloon_on_request():
    devices = parse(build_domain_xml(make_spec(headless=False, memballoon=True))).find("devices")

    assert devices.find("graphics").get("type") == "vnc"
    assert devices.find("memballoon").get("model") == "virtio"


def test_domain_type_and_arch():
    root = parse(build_domain_xml(make_spec(), virt_type="qemu", arch="i686"))

    assert root.get("type") == "qemu"
    assert root.find("os/type").get("arch") == "i686"


# -- destination rewrite -------------------------------------------------------------------------

SOURCE = make_spec(
    vcpu_pins={0: (2,), 1: (3,), 2: (22,), 3: (23,)},
    emulator_cpus=(0,),
    iothreads=1,
    iothread_cpus=(1,),
    numa_cells=(
        dataclasses.replace(TWO_CELLS[0], hugepage_kib=2048),
        dataclasses.replace(TWO_CELLS[1], hugepage_kib=2048),
    ),
)
DESTINATION = dataclasses.replace(
    SOURCE,
    vcpu_pins={0: (44,), 1: (45,), 2: (64,), 3: (65,)},
    emulator_cpus=(40, 41),
    iothread_cpus=(42,),
    numa_cells=(
        dataclasses.replace(SOURCE.numa_cells[0], host_nodes=(1,)),
        dataclasses.replace(SOURCE.numa_cells[1], host_nodes=(0,), hugepage_kib=1048576),
    ),
)


def without(root: ET.Element, *paths: str) -> str:
    """The XML minus the given elements, for comparing what a rewrite must leave alone."""
    root = ET.fromstring(ET.tostring(root))
    for path in paths:
        parent_path, _, tag = path.rpartition("/")
        for parent in root.iter() if not parent_path else root.findall(parent_path):
            for child in parent.findall(tag):
                parent.remove(child)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def test_rewrite_replaces_every_pinning():
    source = parse(build_domain_xml(SOURCE))
    source.find("cputune").insert(0, ET.Element("shares", {}))
    source.find("cputune/shares").text = "2048"

    rewritten = parse(rewrite_for_destination(ET.tostring(source, encoding="unicode"), DESTINATION))

    assert vcpu_pins(rewritten) == {0: "44", 1: "45", 2: "64", 3: "65"}
    assert rewritten.find("cputune/emulatorpin").get("cpuset") == "40-41"
    assert [p.get("cpuset") for p in rewritten.findall("cputune/iothreadpin")] == ["42"]
    assert rewritten.findtext("cputune/shares") == "2048"
    assert memnodes(rewritten) == {0: ("strict", "1"), 1: ("strict", "0")}
    assert rewritten.find("numatune/memory").get("nodeset") == "0-1"
    assert pages(rewritten) == [("2048", "0"), ("1048576", "1")]
    # Nothing else moves: guest topology, NUMA cells, devices, order of elements.
    assert [child.tag for child in rewritten] == [child.tag for child in source]
    rewritten_parts = ("cputune/vcpupin", "cputune/emulatorpin", "cputune/iothreadpin", "numatune", "memoryBacking")
    assert without(rewritten, *rewritten_parts) == without(source, *rewritten_parts)


def test_rewrite_adds_pinning_to_a_domain_that_had_none():
    unpinned = dataclasses.replace(
        DESTINATION,
        vcpu_pins={},
        emulator_cpus=(),
        iothread_cpus=(),
        numa_cells=tuple(dataclasses.replace(c, host_nodes=(), hugepage_kib=None) for c in DESTINATION.numa_cells),
    )
    source = build_domain_xml(unpinned)
    assert parse(source).find("cputune") is None

    rewritten = parse(rewrite_for_destination(source, DESTINATION))

    assert vcpu_pins(rewritten) == {0: "44", 1: "45", 2: "64", 3: "65"}
    assert memnodes(rewritten) == {0: ("strict", "1"), 1: ("strict", "0")}
    assert pages(rewritten) == [("2048", "0"), ("1048576", "1")]
    tags = [child.tag for child in rewritten]
    assert tags.index("memoryBacking") < tags.index("vcpu") < tags.index("cputune") < tags.index("numatune")


def test_rewrite_drops_settings_the_destination_cannot_honour():
    # E.g. a host without NUMA or hugepages: the setting is suspended, the pinning goes.
    suspended = dataclasses.replace(
        SOURCE,
        vcpu_pins={},
        emulator_cpus=(),
        iothread_cpus=(),
        numa_cells=tuple(dataclasses.replace(c, host_nodes=(), hugepage_kib=None) for c in SOURCE.numa_cells),
    )
    source = parse(build_domain_xml(SOURCE))
    source.find("vcpu").set("cpuset", "0-3")

    rewritten = parse(rewrite_for_destination(ET.tostring(source, encoding="unicode"), suspended))

    assert rewritten.find("cputune") is None
    assert rewritten.find("numatune") is None
    assert rewritten.find("memoryBacking") is None
    assert "cpuset" not in rewritten.find("vcpu").attrib
    assert len(rewritten.findall("cpu/numa/cell")) == 2


@pytest.mark.parametrize("cells", [(), TWO_CELLS], ids=["without-numa", "numa"])
def test_rewrite_drops_domain_wide_hugepages_for_a_destination_without_them(cells):
    # Hugepages suspended on a host without a pool: the guest's memory is backed by small pages there.
    source = make_spec(vcpu_pins={0: (2,), 1: (3,), 2: (4,), 3: (5,)}, numa_cells=cells, hugepage_kib=2048)
    assert pages(parse(build_domain_xml(source)))
    suspended = dataclasses.replace(source, vcpu_pins={0: (6,), 1: (7,), 2: (8,), 3: (9,)}, hugepage_kib=None)

    rewritten = parse(rewrite_for_destination(build_domain_xml(source), suspended))

    assert rewritten.find("memoryBacking") is None
    assert vcpu_pins(rewritten) == {0: "6", 1: "7", 2: "8", 3: "9"}
    assert (rewritten.findtext("memory"), len(rewritten.findall("cpu/numa/cell"))) == ("4096", len(cells))


def test_rewrite_keeps_other_memory_backing_and_namespaced_elements():
    source = parse(build_domain_xml(SOURCE))
    ET.SubElement(source.find("memoryBacking"), "locked")
    commandline = ET.SubElement(source, "{http://libvirt.org/schemas/domain/qemu/1.0}commandline")
    ET.SubElement(commandline, "{http://libvirt.org/schemas/domain/qemu/1.0}arg", value="-no-hpet")

    rewritten = rewrite_for_destination(ET.tostring(source, encoding="unicode"), DESTINATION)

    root = parse(rewritten)
    assert [child.tag for child in root.find("memoryBacking")] == ["hugepages", "locked"]
    assert "qemu:commandline" in rewritten


# -- libvirt's test driver accepts what we generate ----------------------------------------------


@pytest.fixture
def test_conn():
    conn = libvirt.open(TEST_URI)
    names: list[str] = []
    yield conn, names
    for name in names:
        try:
            dom = conn.lookupByName(name)
        except libvirt.libvirtError:
            continue
        if dom.isActive():
            dom.destroy()
        dom.undefine()
    conn.close()


def test_libvirt_accepts_the_rewritten_migratable_xml(test_conn):
    conn, names = test_conn
    # The test driver's pin maps cover 8 host CPUs.
    source = make_spec(
        uuid=str(uuid.uuid4()),
        name=f"hp-{uuid.uuid4().hex[:8]}",
        vcpu_pins={0: (0,), 1: (1,), 2: (2,), 3: (3,)},
        emulator_cpus=(4,),
        numa_cells=TWO_CELLS,
    )
    names.append(source.name)
    dom = conn.defineXML(build_domain_xml(source, virt_type="test", arch="i686"))
    dom.create()
    destination = dataclasses.replace(
        source,
        vcpu_pins={0: (7,), 1: (6,), 2: (5,), 3: (4,)},
        emulator_cpus=(0, 1),
        numa_cells=tuple(dataclasses.replace(c, host_nodes=(1 - c.host_nodes[0],)) for c in TWO_CELLS),
    )

    rewritten = rewrite_for_destination(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE), destination)
    # Redefining the running domain replaces its persistent config: libvirt parsed and kept it.
    conn.defineXML(rewritten)

    config = parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert vcpu_pins(config) == {0: "7", 1: "6", 2: "5", 3: "4"}
    assert config.find("cputune/emulatorpin").get("cpuset") == "0-1"
    assert memnodes(config) == {0: ("strict", "1"), 1: ("strict", "0")}


def test_libvirt_accepts_every_device_and_a_multi_node_binding(test_conn):
    conn, names = test_conn
    spec = make_spec(
        uuid=str(uuid.uuid4()),
        name=f"hp-{uuid.uuid4().hex[:8]}",
        usb=True,
        soundcard=True,
        rng=True,
        watchdog="i6300esb",
        headless=False,
        memballoon=True,
        numa_cells=(TWO_CELLS[0], dataclasses.replace(TWO_CELLS[1], host_nodes=(0, 1))),
    )
    names.append(spec.name)
    dom = conn.defineXML(build_domain_xml(spec, virt_type="test", arch="i686"))
    dom.create()

    devices = parse(dom.XMLDesc(0)).find("devices")
    assert {child.tag for child in devices} >= {"controller", "sound", "rng", "watchdog", "memballoon", "graphics"}
    assert memnodes(parse(dom.XMLDesc(0))) == {0: ("strict", "0"), 1: ("strict", "0-1")}
