"""Host capabilities: libvirt's test driver and captured XML of multi-NUMA hosts -> HostCapabilities."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpadmin.hypervisor.capabilities import format_cpuset, guest_virt_type, parse_capabilities, parse_cpuset
from hpadmin.hypervisor.libvirt_driver import LibvirtDriver
from hpadmin.hypervisor.registry import get_driver

DATA = Path(__file__).parent / "data"


def load(name: str) -> str:
    return (DATA / name).read_text()


@pytest.mark.parametrize(
    ("text", "ids"),
    [("0", (0,)), ("0-3", (0, 1, 2, 3)), ("0-3,8,10-11", (0, 1, 2, 3, 8, 10, 11)), ("0-4,^2", (0, 1, 3, 4)), ("", ())],
)
def test_parse_cpuset(text, ids):
    assert parse_cpuset(text) == ids


@pytest.mark.parametrize(
    ("ids", "text"), [([0], "0"), ([3, 1, 2, 0], "0-3"), ([0, 1, 2, 5, 7, 8], "0-2,5,7-8"), ([4, 4], "4"), ([], "")]
)
def test_format_cpuset(ids, text):
    assert format_cpuset(ids) == text
    assert parse_cpuset(text) == tuple(sorted(set(ids)))


def test_test_driver_host_through_the_driver():
    caps = LibvirtDriver().capabilities("test:///default")

    assert (caps.sockets, caps.cores_per_socket, caps.threads_per_core) == (2, 8, 1)
    assert [node.index for node in caps.numa_nodes] == [0, 1]
    assert caps.numa_nodes[0].cpus == tuple(range(8))
    assert caps.numa_nodes[1].cpus == tuple(range(8, 16))
    assert [node.memory_mib for node in caps.numa_nodes] == [2048, 4096]
    assert caps.memory_mib == 6144
    # The test driver has pools of each size, always empty.
    assert caps.numa_nodes[0].hugepages == {2048: 0, 1048576: 0}
    assert caps.hugepages == {2048: 0, 1048576: 0}
    assert all(cpu.online for cpu in caps.cpus)
    assert {cpu.node for cpu in caps.cpus if cpu.socket == 1} == {1}
    assert caps.cpu_model == "i686"  # no CPU model: the architecture stands in
    assert caps.tsc_khz is None
    assert caps.hostname


def test_get_driver_by_scheme():
    assert isinstance(get_driver("test:///default"), LibvirtDriver)
    assert get_driver("qemu+tcp://10.0.0.5/system") is get_driver("qemu:///system")
    assert type(get_driver("sim://h1?nodes=2")).__name__ == "SimulatedDriver"
    with pytest.raises(ValueError, match="Unsupported hypervisor URI"):
        get_driver("vmware://vc1")


def test_two_socket_two_node_smt_host():
    caps = parse_capabilities(load("xeon-gold-6230-2s2n-smt.xml"), hostname="hv01")

    assert caps.cpu_model == "Cascadelake-Server-noTSX"
    assert {"vmx", "pdpe1gb", "invtsc"} <= caps.cpu_flags
    assert (caps.sockets, caps.cores_per_socket, caps.threads_per_core) == (2, 20, 2)
    assert len(caps.cpus) == 80 and caps.online_cpus == tuple(range(80))
    assert caps.tsc_khz == 2_100_000
    assert caps.hostname == "hv01"

    node0, node1 = caps.numa_nodes
    # Intel numbering: the first threads of socket 0 are 0-19, their siblings 40-59.
    assert node0.cpus == (*range(0, 20), *range(40, 60))
    assert node1.cpus == (*range(20, 40), *range(60, 80))
    assert node0.distances == {0: 10, 1: 21} and node1.distances == {0: 21, 1: 10}
    assert node0.hugepages == {2048: 4096, 1048576: 16}
    assert caps.hugepages == {2048: 8192, 1048576: 32}
    assert (node0.memory_mib, node1.memory_mib) == (191744, 193510)
    assert caps.memory_mib == 191744 + 193510

    by_id = {cpu.id: cpu for cpu in caps.cpus}
    assert (by_id[0].socket, by_id[0].core, by_id[0].node) == (0, 0, 0)
    assert (by_id[40].socket, by_id[40].core) == (0, 0)  # SMT sibling of CPU 0
    assert (by_id[25].socket, by_id[25].core, by_id[25].node) == (1, 8, 1)


def test_four_node_host_with_an_offline_cpu():
    caps = parse_capabilities(load("epyc-7302p-nps4.xml"))

    assert caps.cpu_model == "EPYC-Rome"
    # <topology> counts per NUMA node (cores='4'); the cells tell the real socket: 16 cores.
    assert (caps.sockets, caps.cores_per_socket, caps.threads_per_core) == (1, 16, 2)
    assert [node.index for node in caps.numa_nodes] == [0, 1, 2, 3]
    assert caps.numa_nodes[2].cpus == (8, 9, 10, 11, 24, 25, 26, 27)
    assert caps.numa_nodes[3].distances == {0: 12, 1: 12, 2: 12, 3: 10}
    assert [node.hugepages for node in caps.numa_nodes] == [
        {2048: 1024, 1048576: 4},
        {2048: 1024, 1048576: 4},
        {2048: 512, 1048576: 0},
        {2048: 0, 1048576: 0},
    ]
    assert caps.hugepages == {2048: 2560, 1048576: 8}

    offline = [cpu for cpu in caps.cpus if not cpu.online]
    assert [(cpu.id, cpu.node) for cpu in offline] == [(31, 3)]
    assert len(caps.online_cpus) == 31 and 31 not in caps.online_cpus
    assert caps.tsc_khz == 2_994_372


def test_host_without_cells_uses_topology_and_given_memory():
    xml = """<capabilities><host><cpu><arch>x86_64</arch><model>Skylake-Client</model>
      <topology sockets='1' dies='1' cores='4' threads='2'/><feature name='vmx'/></cpu></host></capabilities>"""

    caps = parse_capabilities(xml, memory_mib=16384, cpu_flags=["vmx", "sse4_2"])

    assert (caps.sockets, caps.cores_per_socket, caps.threads_per_core) == (1, 4, 2)
    assert caps.numa_nodes == ()
    assert len(caps.cpus) == 8 and {cpu.node for cpu in caps.cpus} == {None}
    assert caps.memory_mib == 16384
    assert caps.cpu_flags == {"vmx", "sse4_2"}


def test_guest_virt_type_prefers_kvm():
    assert guest_virt_type(load("xeon-gold-6230-2s2n-smt.xml")) == ("kvm", "x86_64")
    no_kvm = load("xeon-gold-6230-2s2n-smt.xml").replace("<domain type='kvm'/>", "")
    assert guest_virt_type(no_kvm) == ("qemu", "x86_64")
    assert guest_virt_type(LibvirtDriver()._connect("test:///default").getCapabilities()) == ("test", "i686")
