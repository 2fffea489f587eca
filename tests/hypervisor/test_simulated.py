"""The simulated hypervisor: host shapes from URIs, the pre-copy model, each injectable fault, and the CPU load a
host reports (from its guests, plus an extra load)."""

import socket

import pytest

from hpadmin.hypervisor.base import DomainSpec, DomainState, HypervisorError, MigrationOptions, PowerState
from hpadmin.hypervisor.models import FaultKind, SimulatedDomain, SimulatedFault, SimulatedHostLoad
from hpadmin.hypervisor.simulated import (
    SimulatedDriver,
    capabilities_from_uri,
    fail_host,
    power_off_host,
    recover_host,
)

pytestmark = pytest.mark.django_db

SRC, DST = "sim://src?nodes=2&sockets=2&cores=4&threads=2", "sim://dst?nodes=2&sockets=2&cores=4&threads=2"


def test_host_shape_from_uri():
    caps = capabilities_from_uri(
        "sim://h?sockets=2&cores=4&threads=2&nodes=4&memory=65536&hp1g=8&offline=3&tsc=2400000"
    )
    assert (caps.sockets, caps.cores_per_socket, caps.threads_per_core) == (2, 4, 2)
    assert len(caps.cpus) == 16 and [n.index for n in caps.numa_nodes] == [0, 1, 2, 3]
    assert caps.numa_nodes[0].cpus == (0, 1, 8, 9)  # two cores and their SMT siblings
    assert {c.core for c in caps.cpus if c.id in (0, 8)} == {0}
    assert caps.numa_nodes[1].hugepages == {1048576: 8} and caps.numa_nodes[1].memory_mib == 16384
    assert caps.online_cpus == tuple(i for i in range(16) if i != 3) and caps.tsc_khz == 2400000
    flat = capabilities_from_uri("sim://flat?nodes=0&hp2m=512")
    assert flat.numa_nodes == () and flat.hugepages == {2048: 512}


def test_bad_shape_is_an_admin_readable_error():
    with pytest.raises(HypervisorError, match="3 NUMA nodes do not divide 2 sockets"):
        capabilities_from_uri("sim://h?sockets=2&nodes=3")


@pytest.fixture
def driver():
    driver = SimulatedDriver()
    driver.start(SRC, DomainSpec(uuid="u", name="vm", sockets=1, cores=2, threads=1, memory_mib=4096))
    return driver


def spec(**values):
    return DomainSpec(
        **{
            "uuid": "u",
            "name": "vm",
            "sockets": 1,
            "cores": 2,
            "threads": 1,
            "memory_mib": 4096,
            "vcpu_pins": {0: (5,), 1: (6,)},
            **values,
        }
    )


def migrate(driver, options=None):
    seen = []
    result = driver.migrate(SRC, DST, spec(), options or MigrationOptions(), seen.append)
    return result, seen


def test_converging_migration(driver):
    result, seen = migrate(driver)
    assert [p.phase for p in seen][0] == "setup" and seen[-1].phase == "completing" and seen[-1].percent == 100
    assert 3.5 < result.duration_s < 4.5  # 4 GiB at 1100 MiB/s plus what the guest dirtied meanwhile
    assert result.downtime_ms < 300
    assert driver.list_domains(SRC) == [] and driver.domain_state(DST, "vm") == DomainState.RUNNING
    assert driver.applied_pinning(DST, "vm")["vcpus"] == {0: (5,), 1: (6,)}


@pytest.mark.parametrize(
    ("options", "phase"),
    [(MigrationOptions(auto_converge=True), "precopy"), (MigrationOptions(post_copy=True), "postcopy")],
)
def test_stalled_migration_saved_by_auto_converge_or_post_copy(driver, options, phase):
    SimulatedFault.objects.create(host_uri=SRC, kind=FaultKind.NEVER_CONVERGE)
    result, seen = migrate(driver, options)
    assert phase in {p.phase for p in seen}
    assert driver.domain_state(DST, "vm") == DomainState.RUNNING
    if phase == "precopy":
        assert seen[-2].dirty_rate_mibps < seen[1].dirty_rate_mibps  # the guest was throttled


def test_never_converging_without_help_fails_and_vm_stays(driver):
    SimulatedFault.objects.create(host_uri=SRC, kind=FaultKind.NEVER_CONVERGE)
    with pytest.raises(HypervisorError, match="did not converge") as exc:
        migrate(driver, MigrationOptions(timeout_s=60))
    assert exc.value.kind == "timeout"
    assert driver.domain_state(SRC, "vm") == DomainState.RUNNING and driver.list_domains(DST) == []


def test_destination_refuses_once(driver):
    SimulatedFault.objects.create(host_uri=DST, kind=FaultKind.REFUSE_INCOMING, times=1)
    with pytest.raises(HypervisorError, match="refused the migration") as exc:
        migrate(driver)
    assert exc.value.kind == "refused" and driver.domain_state(SRC, "vm") == DomainState.RUNNING
    migrate(driver)  # the fault was used up
    assert driver.domain_state(DST, "vm") == DomainState.RUNNING


def test_failure_mid_copy(driver):
    SimulatedFault.objects.create(host_uri=DST, kind=FaultKind.FAIL_MIDWAY)
    seen = []
    with pytest.raises(HypervisorError, match="connection was reset"):
        driver.migrate(SRC, DST, spec(), MigrationOptions(), seen.append)
    assert SimulatedDomain.objects.get(name="vm").host_uri == SRC
    assert SimulatedDomain.objects.get(name="vm").state == "running"


def test_unreachable_host(driver):
    SimulatedFault.objects.create(host_uri=DST, kind=FaultKind.UNREACHABLE)
    with pytest.raises(HypervisorError) as exc:
        migrate(driver)
    assert exc.value.kind == "unreachable"
    with pytest.raises(HypervisorError, match="does not answer"):
        driver.capabilities(DST)


def test_abort_from_another_caller(driver):
    def progress(p):
        if p.phase == "setup":
            driver.abort_migration(SRC, "vm")

    with pytest.raises(HypervisorError, match="cancelled by the user") as exc:
        driver.migrate(SRC, DST, spec(), MigrationOptions(), progress)
    assert exc.value.kind == "aborted" and driver.domain_state(SRC, "vm") == DomainState.RUNNING


def test_a_migration_whose_process_died_ends_on_the_source(driver):
    dead = f"{socket.gethostname()}:999999"
    SimulatedDomain.objects.filter(name="vm").update(state="migrating", migrating_to=DST, migrated_by=dead)
    assert driver.domain_state(SRC, "vm") == DomainState.RUNNING
    assert SimulatedDomain.objects.get(name="vm").migrating_to == ""


def test_a_host_fails_is_fenced_and_recovers(driver):
    """A hung host keeps its guest; fencing runs its fence command and, once that succeeded, cuts its power (the
    guest is gone); after a reboot it answers again with nothing running."""
    fail_host(SRC)
    with pytest.raises(HypervisorError) as silent:
        driver.ping(SRC)
    assert silent.value.kind == "unreachable" and driver.power_status(SRC) == PowerState.ON
    assert SimulatedDomain.objects.filter(host_uri=SRC).exists()
    with pytest.raises(HypervisorError) as no_power_management:
        driver.power_off(SRC, "")
    assert no_power_management.value.kind == "refused"
    with pytest.raises(HypervisorError, match="exit status 1"):
        driver.power_off(SRC, "false")
    assert driver.power_status(SRC) == PowerState.ON
    driver.power_off(SRC, "true")
    assert driver.power_status(SRC) == PowerState.OFF and not SimulatedDomain.objects.filter(host_uri=SRC).exists()
    recover_host(SRC)
    driver.ping(SRC)
    assert driver.power_status(SRC) == PowerState.ON and driver.list_domains(SRC) == []


@pytest.mark.parametrize(("off", "left"), [(SRC, []), (DST, [(SRC, "running")])])
def test_a_host_powered_off_during_the_copy_fails_the_migration(driver, off, left):
    """The guest never lands on a host that is off, nor survives the loss of its source."""

    def progress(p):
        if p.phase == "setup":
            power_off_host(off)

    with pytest.raises(HypervisorError):
        driver.migrate(SRC, DST, spec(), MigrationOptions(), progress)
    assert list(SimulatedDomain.objects.values_list("host_uri", "state")) == left


# -- CPU load ---------------------------------------------------------------------------------------------------

EIGHT = "sim://load?sockets=1&cores=8&threads=1&nodes=1"


def test_cpu_load_comes_from_the_running_guests_and_the_extra_load():
    """Each guest keeps its vCPUs half busy: 4 vCPUs on 8 CPUs are 25 %; a paused guest loads nothing."""
    driver = SimulatedDriver()
    assert driver.cpu_load(EIGHT) == 0.0
    driver.start(EIGHT, DomainSpec(uuid="a", name="a", sockets=1, cores=2, threads=2, memory_mib=1024))
    assert driver.cpu_load(EIGHT) == 25.0
    SimulatedDomain.objects.filter(name="a").update(state=DomainState.PAUSED)
    assert driver.cpu_load(EIGHT) == 0.0
    SimulatedDomain.objects.filter(name="a").update(state=DomainState.RUNNING)
    SimulatedHostLoad.objects.create(host_uri=EIGHT, extra_percent=60)
    assert driver.cpu_load(EIGHT) == 85.0
    SimulatedHostLoad.objects.filter(host_uri=EIGHT).update(extra_percent=90)
    assert driver.cpu_load(EIGHT) == 100.0


def test_cpu_load_counts_online_cpus_only():
    driver = SimulatedDriver()
    half_offline = "sim://load?sockets=1&cores=8&threads=1&nodes=1&offline=4,5,6,7"
    driver.start(half_offline, DomainSpec(uuid="a", name="a", sockets=1, cores=4, threads=1, memory_mib=1024))
    assert driver.cpu_load(half_offline) == 50.0


def test_the_load_moves_with_a_migrated_guest(driver):
    assert (driver.cpu_load(SRC), driver.cpu_load(DST)) == (6.25, 0.0)  # 2 vCPUs half busy on 16 CPUs
    migrate(driver)
    assert (driver.cpu_load(SRC), driver.cpu_load(DST)) == (0.0, 6.25)


def test_cpu_load_of_an_unreachable_host_fails():
    SimulatedFault.objects.create(host_uri=EIGHT, kind=FaultKind.UNREACHABLE)
    with pytest.raises(HypervisorError) as raised:
        SimulatedDriver().cpu_load(EIGHT)
    assert raised.value.kind == "unreachable"
