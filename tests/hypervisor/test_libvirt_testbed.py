"""Two real libvirt daemons on this machine: topology, a pinned VM, live migration with new pinning, failures.

Needs root and the packages of ``scripts/system-packages libvirt``; run it with ``make test-libvirt``, i.e.
``HPADMIN_LIBVIRT_TESTBED=1 .venv/bin/pytest tests/hypervisor/test_libvirt_testbed.py -m libvirt -v``.
The module starts the testbed (scripts/libvirt-testbed) once and always stops it, then checks that no
daemon, QEMU or cgroup directory is left behind.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import libvirt
import pytest

from hpadmin.hypervisor.base import (
    DomainSpec,
    DomainState,
    GuestNumaCell,
    HostCapabilities,
    HypervisorError,
    MigrationOptions,
)
from hpadmin.hypervisor.capabilities import parse_cpuset
from hpadmin.hypervisor.registry import get_driver

pytestmark = [
    pytest.mark.libvirt,
    pytest.mark.skipif(
        os.environ.get("HPADMIN_LIBVIRT_TESTBED") != "1",
        reason="real libvirt daemons: set HPADMIN_LIBVIRT_TESTBED=1 and run as root (make test-libvirt)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
TESTBED = ROOT / "scripts" / "libvirt-testbed"
NOWHERE = "qemu+tcp://127.0.0.1:16599/system"

# Waits on stdin, then cancels the migration: a second process, as a web request or worker would.
ABORTER = """
import sys
from hpadmin.hypervisor.libvirt_driver import LibvirtDriver
driver = LibvirtDriver()
driver.capabilities(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
driver.abort_migration(sys.argv[1], sys.argv[2])
print("aborted", flush=True)
"""


@dataclasses.dataclass
class TwoHosts:
    a: str
    b: str
    dir: Path
    qemu_pids: list[int] = dataclasses.field(default_factory=list)

    def host_dir(self, uri: str) -> Path:
        return self.dir / ("a" if uri == self.a else "b")


def say(config: pytest.Config, text: str) -> None:
    """A line in pytest's output even without -s."""
    with config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        config.pluginmanager.get_plugin("terminalreporter").write_line(text)


def leftover(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() in {"libvirtd", "qemu-system-x86"}
    except OSError:
        return False


@pytest.fixture(scope="module")
def testbed(request):
    started = time.monotonic()
    daemons: list[int] = []
    cgroups: list[str] = []
    bed = None
    try:
        subprocess.run([TESTBED, "start"], check=True, timeout=300)
        env = dict(
            line.split("=", 1)
            for line in subprocess.run([TESTBED, "env"], check=True, capture_output=True, text=True).stdout.split()
        )
        bed = TwoHosts(
            a=env["HPADMIN_TESTBED_URI_A"], b=env["HPADMIN_TESTBED_URI_B"], dir=Path(env["HPADMIN_TESTBED_DIR"])
        )
        for name in ("a", "b"):
            daemons.append(int((bed.dir / name / "libvirtd.pid").read_text()))
            cgroups += (bed.dir / name / "cgroups").read_text().split()
        say(request.config, f"\ntestbed up in {time.monotonic() - started:.1f} s: {bed.a} {bed.b}")
        yield bed
    finally:
        subprocess.run([TESTBED, "stop"], check=True, timeout=300)
        say(request.config, f"\ntestbed wall time (start, tests, stop): {time.monotonic() - started:.1f} s")
    qemus = bed.qemu_pids if bed else []
    assert not [pid for pid in daemons + qemus if leftover(pid)], "processes left running"
    assert not [cg for cg in cgroups if Path(cg).exists()], "cgroup directories left behind"


@pytest.fixture(scope="module")
def driver(testbed):
    return get_driver(testbed.a)


@pytest.fixture(scope="module")
def host(driver, testbed) -> HostCapabilities:
    caps = driver.capabilities(testbed.a)
    if len(caps.online_cpus) < 2:
        pytest.skip("the pinning checks need two online CPUs")
    return caps


def start_vm(testbed: TwoHosts, driver, host: HostCapabilities, config: pytest.Config) -> DomainSpec:
    """A 128 MiB diskless guest on host A: vCPU 0 on the first CPU, emulator on the second, memory on node 0."""
    first, second = host.online_cpus[:2]
    spec = DomainSpec(
        uuid=str(uuid.uuid4()),
        name=f"hp-test-{uuid.uuid4().hex[:6]}",
        sockets=1,
        cores=1,
        threads=1,
        memory_mib=128,
        # QEMU's default CPU model: host-passthrough does not start under nested KVM here.
        cpu_passthrough=False,
        vcpu_pins={0: (first,)},
        emulator_cpus=(second,),
        numa_cells=(GuestNumaCell(index=0, vcpus=(0,), memory_mib=128, host_nodes=(host.numa_nodes[0].index,)),),
    )
    started = time.monotonic()
    driver.start(testbed.a, spec)
    testbed.qemu_pids.append(qemu_pid(testbed, testbed.a, spec.name))
    say(config, f"  started {spec.name} on A in {time.monotonic() - started:.2f} s")
    return spec


def remove_vm(testbed: TwoHosts, driver, spec: DomainSpec) -> None:
    for uri in (testbed.a, testbed.b):
        if driver.domain_state(uri, spec.name) != DomainState.MISSING:
            driver.stop(uri, spec.name)


@pytest.fixture
def vm(testbed, driver, host, request):
    spec = start_vm(testbed, driver, host, request.config)
    yield spec
    remove_vm(testbed, driver, spec)


@pytest.fixture(scope="module")
def resident_vm(testbed, driver, host, request):
    """One VM for the failure tests: each of them must leave it running, unchanged, on host A."""
    spec = start_vm(testbed, driver, host, request.config)
    yield spec
    remove_vm(testbed, driver, spec)


def qemu_pid(testbed: TwoHosts, uri: str, name: str) -> int:
    return int((testbed.host_dir(uri) / "run" / "libvirt" / "qemu" / f"{name}.pid").read_text())


def thread_affinity(pid: int) -> dict[str, tuple[int, ...]]:
    """Cpus_allowed_list of each QEMU thread by name ("CPU 0/KVM", ...); the main thread is "main"."""
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        status = dict(line.split(":", 1) for line in (task / "status").read_text().splitlines() if ":" in line)
        name = "main" if task.name == str(pid) else status["Name"].strip()
        threads[name] = parse_cpuset(status["Cpus_allowed_list"].strip())
    return threads


def vcpu_affinity(pid: int, vcpu: int) -> tuple[int, ...]:
    threads = thread_affinity(pid)
    matches = [cpus for name, cpus in threads.items() if name in (f"CPU {vcpu}/KVM", f"CPU {vcpu}/TCG")]
    assert matches, f"no thread for vCPU {vcpu} among {sorted(threads)}"
    return matches[0]


def guest_ram_backing(pid: int, memory_mib: int) -> list[tuple[int, int]]:
    """How the kernel backs a QEMU's guest RAM, from ``/proc/<pid>/smaps``: (page size KiB, KiB in hugetlb
    pages) of each mapping the size of the guest's memory. [(2048, memory)] for RAM in 2 MiB hugepages,
    [(4, 0)] for small pages."""
    mappings: list[dict[str, int]] = []
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):  # a mapping's header: "start-end perms offset dev inode path"
            mappings.append({})
        elif line.endswith(" kB"):
            key, value = line.split(":", 1)
            mappings[-1][key] = int(value.split()[0])
    return [
        (m["KernelPageSize"], m.get("Private_Hugetlb", 0) + m.get("Shared_Hugetlb", 0))
        for m in mappings
        if m["Size"] == memory_mib * 1024
    ]


def without_hugepages(caps: HostCapabilities) -> HostCapabilities:
    nodes = tuple(dataclasses.replace(node, hugepages={}) for node in caps.numa_nodes)
    return dataclasses.replace(caps, hugepages={}, numa_nodes=nodes)


def assert_runs_with(testbed: TwoHosts, uri: str, spec: DomainSpec) -> None:
    """Check the pinning through libvirt and through the kernel's view of QEMU's threads."""
    conn = libvirt.open(uri)
    try:
        dom = conn.lookupByName(spec.name)
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        vcpu_pins = dom.vcpuPinInfo(0)
        for vcpu, cpus in spec.vcpu_pins.items():
            assert tuple(i for i, on in enumerate(vcpu_pins[vcpu]) if on) == cpus
        assert tuple(i for i, on in enumerate(dom.emulatorPinInfo(0)) if on) == spec.emulator_cpus
    finally:
        conn.close()
    pid = qemu_pid(testbed, uri, spec.name)
    for vcpu, cpus in spec.vcpu_pins.items():
        assert vcpu_affinity(pid, vcpu) == cpus
    assert thread_affinity(pid)["main"] == spec.emulator_cpus


def test_hosts_report_this_machines_topology(testbed, driver):
    online = parse_cpuset(Path("/sys/devices/system/cpu/online").read_text())
    nodes = sorted(int(p.name[4:]) for p in Path("/sys/devices/system/node").glob("node[0-9]*"))
    node_mem_mib = [
        int(Path(f"/sys/devices/system/node/node{node}/meminfo").read_text().split("MemTotal:")[1].split()[0]) // 1024
        for node in nodes
    ]

    machine_pool = int(Path("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages").read_text())
    caps_a, caps_b = driver.capabilities(testbed.a), driver.capabilities(testbed.b)

    # Two hosts, one machine: the same but for the hugepages, which are A's alone.
    assert machine_pool >= 64
    assert caps_a.hugepages[2048] == machine_pool
    assert sum(node.hugepages[2048] for node in caps_a.numa_nodes) == machine_pool
    assert not any(caps_b.hugepages.values())
    assert not any(pages for node in caps_b.numa_nodes for pages in node.hugepages.values())
    assert without_hugepages(caps_a) == without_hugepages(caps_b)
    assert caps_a.online_cpus == online
    assert caps_a.sockets * caps_a.cores_per_socket * caps_a.threads_per_core == len(online)
    assert [node.index for node in caps_a.numa_nodes] == nodes
    assert sorted(cpu for node in caps_a.numa_nodes for cpu in node.cpus) == sorted(c.id for c in caps_a.cpus)
    assert [node.memory_mib for node in caps_a.numa_nodes] == node_mem_mib
    assert {"sse2", "lm"} <= caps_a.cpu_flags
    assert caps_a.hostname == socket.gethostname()
    assert driver.list_domains(testbed.a) == [] and driver.list_domains(testbed.b) == []


def test_live_migration_applies_the_destination_pinning(testbed, driver, vm, request):
    assert_runs_with(testbed, testbed.a, vm)
    first, second = vm.vcpu_pins[0][0], vm.emulator_cpus[0]
    destination = dataclasses.replace(vm, vcpu_pins={0: (second,)}, emulator_cpus=(first,))
    reports = []

    result = driver.migrate(testbed.a, testbed.b, destination, MigrationOptions(max_downtime_ms=300), reports.append)
    testbed.qemu_pids.append(qemu_pid(testbed, testbed.b, vm.name))

    assert driver.domain_state(testbed.b, vm.name) == DomainState.RUNNING
    assert driver.domain_state(testbed.a, vm.name) == DomainState.MISSING
    assert vm.name not in driver.list_domains(testbed.a)
    assert_runs_with(testbed, testbed.b, destination)
    pinning = driver.applied_pinning(testbed.b, vm.name)
    assert (pinning["vcpus"], pinning["emulator"]) == ({0: (second,)}, (first,))

    conn = libvirt.open(testbed.b)
    try:
        # The destination also keeps the new pinning for the VM's next start there.
        config = conn.lookupByName(vm.name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    finally:
        conn.close()
    assert f"<vcpupin vcpu='0' cpuset='{second}'/>" in config
    assert f"<emulatorpin cpuset='{first}'/>" in config

    assert reports, "no progress reported"
    assert [r.percent for r in reports] == sorted(r.percent for r in reports)
    assert reports[-1].percent == 100.0
    assert {r.phase for r in reports} <= {"setup", "precopy", "completing"}
    assert result.duration_s > 0 and result.transferred_mib > 0
    assert result.downtime_ms is not None
    say(
        request.config,
        f"  migrated A -> B in {result.duration_s:.2f} s, downtime {result.downtime_ms} ms, "
        f"{result.transferred_mib:.1f} MiB sent, {len(reports)} progress reports "
        f"({', '.join(dict.fromkeys(r.phase for r in reports))})",
    )


@pytest.mark.parametrize("unfit", ["numa_node", "cpu"])
def test_refused_migration_keeps_the_vm_on_its_source(testbed, driver, host, resident_vm, unfit, request):
    if unfit == "numa_node":
        # Memory bound to a NUMA node the destination does not have.
        missing = max(node.index for node in host.numa_nodes) + 1
        destination = dataclasses.replace(
            resident_vm, numa_cells=(dataclasses.replace(resident_vm.numa_cells[0], host_nodes=(missing,)),)
        )
    else:
        # A vCPU pinned to a CPU the destination does not have: its QEMU starts and then fails.
        destination = dataclasses.replace(resident_vm, vcpu_pins={0: (max(c.id for c in host.cpus) + 64,)})
    started = time.monotonic()

    with pytest.raises(HypervisorError) as raised:
        driver.migrate(testbed.a, testbed.b, destination, MigrationOptions(), lambda _: None)

    assert raised.value.kind == "refused"
    assert "127.0.0.1:16510" in raised.value.message
    assert driver.domain_state(testbed.a, resident_vm.name) == DomainState.RUNNING
    assert driver.domain_state(testbed.b, resident_vm.name) == DomainState.MISSING
    assert_runs_with(testbed, testbed.a, resident_vm)
    say(request.config, f"  refused in {time.monotonic() - started:.2f} s: {raised.value.message}")


def test_unreachable_destination_keeps_the_vm_on_its_source(testbed, driver, resident_vm):
    with pytest.raises(HypervisorError) as raised:
        driver.migrate(testbed.a, NOWHERE, resident_vm, MigrationOptions(), lambda _: None)

    assert raised.value.kind == "unreachable"
    assert_runs_with(testbed, testbed.a, resident_vm)


def test_cancel_from_another_process_keeps_the_vm_on_its_source(testbed, driver, resident_vm, request):
    aborter = subprocess.Popen(
        [sys.executable, "-c", ABORTER, testbed.a, resident_vm.name],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert aborter.stdout.readline().strip() == "ready"
        destination = dataclasses.replace(
            resident_vm, vcpu_pins={0: resident_vm.emulator_cpus}, emulator_cpus=resident_vm.vcpu_pins[0]
        )
        reports = []

        def cancel_once(report):
            if not reports:
                aborter.stdin.write("go\n")
                aborter.stdin.flush()
            reports.append(report)

        started = time.monotonic()
        with pytest.raises(HypervisorError) as raised:
            # A slow link keeps the migration running long enough to be cancelled.
            driver.migrate(testbed.a, testbed.b, destination, MigrationOptions(bandwidth_mibps=1), cancel_once)
        assert aborter.wait(timeout=30) == 0
        assert aborter.stdout.read().strip() == "aborted"
    finally:
        if aborter.poll() is None:
            aborter.kill()
            aborter.wait()

    assert raised.value.kind == "aborted"
    assert driver.domain_state(testbed.a, resident_vm.name) == DomainState.RUNNING
    assert driver.domain_state(testbed.b, resident_vm.name) == DomainState.MISSING
    assert_runs_with(testbed, testbed.a, resident_vm)
    say(request.config, f"  cancelled after {time.monotonic() - started:.2f} s ({len(reports)} progress reports)")


@pytest.mark.parametrize("guest_numa", [False, True], ids=["without-numa", "numa"])
def test_live_migration_to_small_pages_and_back_to_hugepages(testbed, driver, host, guest_numa, request):
    # Hugepages suspended on B, which has no pool, and restored on the way back to A: QEMU's guest RAM (one
    # "pc.ram" block, or "ram-node0" with a guest NUMA node) moves between a hugetlbfs file and anonymous memory.
    first, second = host.online_cpus[:2]
    cells = (GuestNumaCell(index=0, vcpus=(0,), memory_mib=128, host_nodes=(host.numa_nodes[0].index,)),)
    spec = DomainSpec(
        uuid=str(uuid.uuid4()),
        name=f"hp-pages-{uuid.uuid4().hex[:6]}",
        sockets=1,
        cores=1,
        threads=1,
        memory_mib=128,
        cpu_passthrough=False,
        vcpu_pins={0: (first,)},
        emulator_cpus=(second,),
        numa_cells=cells if guest_numa else (),
        hugepage_kib=2048,
    )
    small_pages = dataclasses.replace(spec, hugepage_kib=None, vcpu_pins={0: (second,)}, emulator_cpus=(first,))
    in_hugepages = [(2048, 128 * 1024)]  # one mapping of the guest's 128 MiB, all of it in 2 MiB pages
    driver.start(testbed.a, spec)
    try:
        pid = qemu_pid(testbed, testbed.a, spec.name)
        testbed.qemu_pids.append(pid)
        assert guest_ram_backing(pid, 128) == in_hugepages

        to_b = driver.migrate(testbed.a, testbed.b, small_pages, MigrationOptions(), lambda _: None)
        pid = qemu_pid(testbed, testbed.b, spec.name)
        testbed.qemu_pids.append(pid)

        assert driver.domain_state(testbed.a, spec.name) == DomainState.MISSING
        assert_runs_with(testbed, testbed.b, small_pages)
        assert guest_ram_backing(pid, 128) == [(4, 0)]

        back = driver.migrate(testbed.b, testbed.a, spec, MigrationOptions(), lambda _: None)
        pid = qemu_pid(testbed, testbed.a, spec.name)
        testbed.qemu_pids.append(pid)

        assert driver.domain_state(testbed.b, spec.name) == DomainState.MISSING
        assert_runs_with(testbed, testbed.a, spec)
        assert guest_ram_backing(pid, 128) == in_hugepages
        say(
            request.config,
            f"  hugepages -> small pages in {to_b.duration_s:.2f} s (downtime {to_b.downtime_ms} ms), "
            f"back in {back.duration_s:.2f} s (downtime {back.downtime_ms} ms)",
        )
    finally:
        remove_vm(testbed, driver, spec)
