"""Console details and reboot in both drivers: the display a running domain's XML reports, the simulated
driver's autoport, and a reboot that leaves the domain running where it is."""

from __future__ import annotations

import uuid

import libvirt
import pytest

from hpadmin.hypervisor.base import Console, DomainSpec, DomainState, HypervisorError
from hpadmin.hypervisor.domain_xml import parse_console
from hpadmin.hypervisor.libvirt_driver import LibvirtDriver
from hpadmin.hypervisor.models import SimulatedDomain
from hpadmin.hypervisor.simulated import SimulatedDriver

HOST = "sim://console-host?nodes=1"


def spec(name: str, headless: bool = False) -> DomainSpec:
    return DomainSpec(
        uuid=str(uuid.uuid4()), name=name, sockets=1, cores=1, threads=1, memory_mib=256, headless=headless
    )


# -- the domain XML ------------------------------------------------------------------------------------------------


def domain(devices: str) -> str:
    return f"<domain type='kvm'><name>vm</name><devices>{devices}</devices></domain>"


@pytest.mark.parametrize(
    "devices, expected",
    [
        (
            "<graphics type='vnc' port='5903' autoport='yes' listen='127.0.0.1'>"
            "<listen type='address' address='127.0.0.1'/></graphics>",
            Console("vnc", "127.0.0.1", 5903),
        ),
        ("<graphics type='spice' port='5931' listen='::1'/>", Console("spice", "::1", 5931)),
        ("<graphics type='vnc' port='5904'/>", Console("vnc", "127.0.0.1", 5904)),  # libvirt's default: loopback
        (
            "<serial type='pty'/><graphics type='sdl'/><graphics type='vnc' port='5905'/>",
            Console("vnc", "127.0.0.1", 5905),
        ),
    ],
)
def test_the_display_of_a_running_domains_xml(devices, expected):
    assert parse_console(domain(devices)) == expected


@pytest.mark.parametrize(
    "devices",
    [
        "<serial type='pty'/>",  # headless
        "<graphics type='vnc' port='-1' autoport='yes'/>",  # not started: no port yet
        "<graphics type='vnc' socket='/run/vnc.sock'/>",
        "<graphics type='vnc' port='5900'><listen type='socket' socket='/run/vnc.sock'/></graphics>",
    ],
)
def test_no_display_reachable_over_tcp(devices):
    assert parse_console(domain(devices)) is None


# -- the simulated driver ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_simulated_displays_take_the_next_port_of_their_host_as_autoport_gives_it():
    driver = SimulatedDriver()
    for name, headless in (("first", False), ("serial-only", True), ("second", False)):
        driver.start(HOST, spec(name, headless))
    driver.start("sim://other-host?nodes=1", spec("elsewhere"))

    assert driver.console(HOST, "first") == Console("vnc", "127.0.0.1", 5900)
    assert driver.console(HOST, "second") == Console("vnc", "127.0.0.1", 5901)
    assert driver.console(HOST, "serial-only") is None
    assert driver.console("sim://other-host?nodes=1", "elsewhere").port == 5900
    with pytest.raises(HypervisorError) as missing:
        driver.console(HOST, "nothing")
    assert missing.value.kind == "not_found"


@pytest.mark.django_db
def test_a_simulated_reboot_leaves_the_domain_running_where_it_is():
    driver = SimulatedDriver()
    driver.start(HOST, spec("guest"))

    driver.reboot(HOST, "guest")

    assert driver.domain_state(HOST, "guest") == DomainState.RUNNING
    SimulatedDomain.objects.filter(name="guest").update(state="migrating", migrating_to="sim://x")
    with pytest.raises(HypervisorError) as migrating:
        driver.reboot(HOST, "guest")
    assert migrating.value.kind == "refused"
    with pytest.raises(HypervisorError) as missing:
        driver.reboot(HOST, "nothing")
    assert missing.value.kind == "not_found"


# -- the libvirt driver, against libvirt's built-in test driver -----------------------------------------------------

TEST_URI = "test:///default"


@pytest.fixture
def libvirt_driver():
    driver = LibvirtDriver()
    names = []
    yield driver, names
    for name in names:
        if driver.domain_state(TEST_URI, name) != DomainState.MISSING:
            driver.stop(TEST_URI, name)


def test_libvirt_reads_the_display_from_the_running_domain(libvirt_driver):
    driver, names = libvirt_driver
    name = f"console-{uuid.uuid4().hex[:8]}"
    names.append(name)
    # The test driver runs no QEMU to hand out a port: the domain is given one.
    conn = libvirt.open(TEST_URI)
    conn.defineXML(
        f"<domain type='test'><name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu><os><type>hvm</type>"
        "</os><devices><graphics type='vnc' port='5907' autoport='no'><listen type='address' address='127.0.0.1'/>"
        "</graphics></devices></domain>"
    ).create()

    assert driver.console(TEST_URI, name) == Console("vnc", "127.0.0.1", 5907)


def test_libvirt_reboot_keeps_the_domain_running(libvirt_driver):
    driver, names = libvirt_driver
    guest = spec(f"reboot-{uuid.uuid4().hex[:8]}", headless=True)
    names.append(guest.name)
    driver.start(TEST_URI, guest)

    driver.reboot(TEST_URI, guest.name)

    assert driver.domain_state(TEST_URI, guest.name) == DomainState.RUNNING
    assert driver.console(TEST_URI, guest.name) is None
    with pytest.raises(HypervisorError) as missing:
        driver.reboot(TEST_URI, "no-such-vm")
    assert missing.value.kind == "not_found"
