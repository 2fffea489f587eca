"""The libvirt driver against libvirt's built-in test driver (no daemon), and its pure helpers."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

import libvirt
import pytest

from hpadmin.hypervisor.base import (
    DomainSpec,
    DomainState,
    GuestNumaCell,
    HypervisorError,
    MigrationOptions,
    PowerState,
)
from hpadmin.hypervisor.libvirt_driver import LibvirtDriver, _progress, busy_percent

TEST_URI = "test:///default"
NOWHERE = "qemu+tcp://127.0.0.1:1/system"  # nothing listens on port 1


@pytest.fixture
def driver():
    return LibvirtDriver()


@pytest.fixture
def spec(driver):
    """A pinned two-node guest on the test host; removed afterwards whatever the test did."""
    spec = DomainSpec(
        uuid=str(uuid.uuid4()),
        name=f"hp-{uuid.uuid4().hex[:8]}",
        sockets=1,
        cores=2,
        threads=2,
        memory_mib=1024,
        # The test driver's pin maps cover 8 host CPUs.
        vcpu_pins={0: (0,), 1: (1,), 2: (4, 5), 3: (4, 5)},
        emulator_cpus=(7,),
        usb=True,
        soundcard=True,
        rng=True,
        watchdog="i6300esb",
        numa_cells=(
            GuestNumaCell(index=0, vcpus=(0, 1), memory_mib=512, host_nodes=(0,)),
            GuestNumaCell(index=1, vcpus=(2, 3), memory_mib=512, host_nodes=(1,), mode="interleave"),
        ),
    )
    yield spec
    if driver.domain_state(TEST_URI, spec.name) != DomainState.MISSING:
        driver.stop(TEST_URI, spec.name)


def test_start_reads_pinning_back_and_stop(driver, spec):
    driver.start(TEST_URI, spec)

    assert spec.name in driver.list_domains(TEST_URI)
    assert driver.domain_state(TEST_URI, spec.name) == DomainState.RUNNING
    pinning = driver.applied_pinning(TEST_URI, spec.name)
    assert pinning["vcpus"] == {0: (0,), 1: (1,), 2: (4, 5), 3: (4, 5)}
    # It started with the emulator on the vCPUs' pCPUs too (guest memory is bound to host nodes), then was pinned;
    # the domain's configuration says so too.
    assert pinning["emulator"] == (7,)
    config = libvirt.open(TEST_URI).lookupByName(spec.name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert ET.fromstring(config).find("cputune/emulatorpin").get("cpuset") == "7"

    driver.stop(TEST_URI, spec.name)

    assert driver.domain_state(TEST_URI, spec.name) == DomainState.MISSING
    assert spec.name not in driver.list_domains(TEST_URI)


def test_missing_domain(driver):
    assert driver.domain_state(TEST_URI, "no-such-vm") == DomainState.MISSING
    for call in (driver.applied_pinning, driver.stop, driver.abort_migration):
        with pytest.raises(HypervisorError) as raised:
            call(TEST_URI, "no-such-vm")
        assert raised.value.kind == "not_found"
        assert "no-such-vm" in raised.value.message


def test_abort_without_a_migration(driver, spec):
    driver.start(TEST_URI, spec)

    with pytest.raises(HypervisorError, match="No migration") as raised:
        driver.abort_migration(TEST_URI, spec.name)
    assert raised.value.kind == "not_found"


def test_a_clashing_start_fails_and_leaves_the_running_vm(driver, spec):
    driver.start(TEST_URI, spec)
    clash = DomainSpec(**{**spec.__dict__, "uuid": str(uuid.uuid4())})

    with pytest.raises(HypervisorError) as raised:
        driver.start(TEST_URI, clash)
    assert raised.value.kind == "failed"
    assert driver.domain_state(TEST_URI, spec.name) == DomainState.RUNNING


def test_unreachable_host(driver):
    with pytest.raises(HypervisorError) as raised:
        driver.capabilities(NOWHERE)

    assert raised.value.kind == "unreachable"
    assert raised.value.message.startswith("Host 127.0.0.1:1 is unreachable")


def test_heartbeat_and_power_management(driver):
    """A host answers the heartbeat while libvirt does; it is powered off by its fence command alone, whose exit
    status decides, and one that does not answer may be off or hung."""
    driver.ping(TEST_URI)
    assert driver.power_status(TEST_URI) == PowerState.ON
    with pytest.raises(HypervisorError) as silent:
        driver.ping(NOWHERE)
    assert silent.value.kind == "unreachable"
    assert driver.power_status(NOWHERE) == PowerState.UNKNOWN
    with pytest.raises(HypervisorError) as no_power_management:
        driver.power_off(NOWHERE, "")
    assert no_power_management.value.kind == "refused"
    driver.power_off(NOWHERE, "exit 0")
    with pytest.raises(HypervisorError) as failed:
        driver.power_off(NOWHERE, "exit 1")
    assert failed.value.kind == "failed"


def test_migration_to_an_unreachable_destination_leaves_the_vm(driver, spec):
    driver.start(TEST_URI, spec)
    reports = []

    with pytest.raises(HypervisorError) as raised:
        driver.migrate(TEST_URI, NOWHERE, spec, MigrationOptions(), reports.append)

    assert raised.value.kind == "unreachable"
    assert raised.value.message.startswith("Destination host 127.0.0.1:1 is unreachable")
    assert reports == []
    assert driver.domain_state(TEST_URI, spec.name) == DomainState.RUNNING


def test_cpu_load_reads_the_counters_twice(driver):
    """The test driver's CPU time counters stand still: no time was busy between the two readings."""
    quick = LibvirtDriver(load_interval_s=0)
    assert quick.cpu_load(TEST_URI) == 0.0
    with pytest.raises(HypervisorError) as raised:
        quick.cpu_load(NOWHERE)
    assert raised.value.kind == "unreachable"


def test_the_next_cpu_load_reading_of_a_host_does_not_wait(monkeypatch):
    """A balancing round reads every host in turn: after a host's first reading, its load is measured since the
    previous one, so the next round waits for no host."""
    waits = []
    monkeypatch.setattr("hpadmin.hypervisor.libvirt_driver.time.sleep", waits.append)
    reader = LibvirtDriver(load_interval_s=1.0)
    assert reader.cpu_load(TEST_URI) == 0.0
    assert reader.cpu_load(TEST_URI) == 0.0
    assert waits == [1.0]


def test_busy_percent_is_the_time_neither_idle_nor_waiting_for_io():
    before = {"kernel": 100, "user": 300, "idle": 500, "iowait": 100}
    after = {"kernel": 200, "user": 500, "idle": 700, "iowait": 200}
    assert busy_percent(before, after) == 50.0  # 300 of 600 ns busy
    assert busy_percent(before, before) == 0.0


def test_dead_connection_is_reopened(driver):
    conn = driver._connect(TEST_URI)
    conn.close()

    assert driver.capabilities(TEST_URI).numa_nodes
    assert driver._connect(TEST_URI) is not conn


STATS = {
    "type": libvirt.VIR_DOMAIN_JOB_UNBOUNDED,
    "data_total": 1024 * 1024 * 1024,
    "data_remaining": 256 * 1024 * 1024,
    "data_processed": 900 * 1024 * 1024,
    "memory_dirty_rate": 2560,
    "memory_page_size": 4096,
    "memory_iteration": 3,
}
RUNNING = (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_BOOTED)


def test_progress_during_precopy():
    report = _progress(STATS, RUNNING, 0.0)

    assert report.phase == "precopy"
    assert report.percent == 75.0
    assert (report.data_total_mib, report.data_remaining_mib) == (1024, 256)
    assert report.dirty_rate_mibps == 10.0
    assert report.iteration == 3


def test_progress_never_goes_back():
    assert _progress(STATS, RUNNING, 90.0).percent == 90.0


@pytest.mark.parametrize(
    ("stats", "state", "phase"),
    [
        ({"type": libvirt.VIR_DOMAIN_JOB_UNBOUNDED}, RUNNING, "setup"),
        ({**STATS, "data_remaining": 0}, RUNNING, "completing"),
        (STATS, (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_MIGRATION), "completing"),
        (STATS, (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY), "postcopy"),
    ],
)
def test_progress_phases(stats, state, phase):
    assert _progress(stats, state, 0.0).phase == phase
