"""Real hosts with two NUMA nodes (scripts/numa-testbed): a dedicated VM with two vNUMA nodes starts through
hpadmin with one on each host node, is refused a destination without room for them, and live-migrates through a
Celery worker to a host where its nodes must be mapped and pinned anew; a VM whose vNUMA nodes are pinned to host
nodes 0 and 1 runs with NUMA pinning suspended on a one-node host until it comes back.

Every check reads libvirt (pins, numatune) and the host's kernel (``/proc/<pid>/numa_maps`` of the QEMU process),
and compares what they say with the allocation hpadmin recorded.

Needs root, the packages of ``scripts/system-packages libvirt`` and about a minute to boot the hosts (QEMU's TCG);
run it with ``make test-libvirt``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tempfile
import time
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest

from hpadmin.hypervisor.capabilities import parse_cpuset
from hpadmin.inventory.models import Host
from hpadmin.inventory.services import add_host
from hpadmin.operations.errors import OperationError
from hpadmin.operations.models import JobState, MigrationJob
from hpadmin.operations.services import migrate_vms, start_vm, stop_vm
from hpadmin.vms.models import VirtualMachine
from scheduler.models import Allocation
from tests.factories import make_cluster, make_vm
from tests.hypervisor.test_libvirt_testbed import say
from tests.operations.test_libvirt_engine import domains
from tests.operations.test_worker import wait_for, workers  # noqa: F401 - fixture

pytestmark = [
    pytest.mark.libvirt,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        os.environ.get("HPADMIN_LIBVIRT_TESTBED") != "1",
        reason="real libvirt hosts: set HPADMIN_LIBVIRT_TESTBED=1 and run as root (make test-libvirt)",
    ),
]

TESTBED = Path(__file__).resolve().parents[2] / "scripts" / "numa-testbed"
AGENT_PORT = 16600  # scripts/testbed/numa-host serves the host's /proc here
PAGE_KIB = 2048


@dataclasses.dataclass(frozen=True)
class NumaHosts:
    a: str  # two nodes
    b: str  # two nodes
    c: str  # one node


def virtme_files() -> set[Path]:
    """virtme-ng's temporary files (one per VM while it runs)."""
    return set(Path(tempfile.gettempdir()).glob("virtme_*"))


@pytest.fixture(scope="module")
def numa_testbed(request):
    before = virtme_files()
    started = time.monotonic()
    try:
        subprocess.run([TESTBED, "start"], check=True, timeout=600)
        env = dict(
            line.split("=", 1)
            for line in subprocess.run([TESTBED, "env"], check=True, capture_output=True, text=True).stdout.split()
        )
        say(request.config, f"\nNUMA testbed up in {time.monotonic() - started:.1f} s")
        yield NumaHosts(*(env[f"HPADMIN_NUMA_TESTBED_URI_{name}"] for name in "ABC"))
    finally:
        stopping = time.monotonic()
        subprocess.run([TESTBED, "stop"], check=True, timeout=300)
        say(
            request.config,
            f"\nNUMA testbed stopped in {time.monotonic() - stopping:.1f} s; "
            f"wall time (start, tests, stop) {time.monotonic() - started:.1f} s",
        )
    left = subprocess.run(["pgrep", "-f", "qemu-system-x86_64 -name hpnuma-"], capture_output=True, text=True).stdout
    assert not left, f"first-level VMs left running: {left.split()}"
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert "hpnuma" not in links, "the testbed's bridge or taps were left behind"
    assert virtme_files() <= before, "virtme-ng's temporary files were left behind"


def kernel_file(uri: str, path: str) -> str:
    """A file as the host's own kernel shows it (read through the host's agent)."""
    host = uri.split("//")[1].split("/")[0]
    with urllib.request.urlopen(f"http://{host}:{AGENT_PORT}{path}", timeout=30) as answer:
        return answer.read().decode()


def qemu_pid(uri: str, name: str) -> int:
    return int(kernel_file(uri, f"/run/libvirt/qemu/{name}.pid"))


def guest_ram(uri: str, name: str) -> dict[int, tuple[str, dict[int, int]]]:
    """Per guest NUMA node: the memory policy of its RAM and the 2 MiB pages it holds on each host node, from
    ``/proc/<pid>/numa_maps`` of the QEMU process (libvirt backs guest node N with ``ram-nodeN``)."""
    pid = qemu_pid(uri, name)
    ram: dict[int, tuple[str, dict[int, int]]] = {}
    for line in kernel_file(uri, f"/proc/{pid}/numa_maps").splitlines():
        backing = re.search(r"qemu_back_mem\.ram-node(\d+)\.", line)
        if backing and f"kernelpagesize_kB={PAGE_KIB}" in line:
            policy = line.split()[1]
            pages = {int(node): int(count) for node, count in re.findall(r" N(\d+)=(\d+)", line)}
            ram[int(backing.group(1))] = (policy, pages)
    return ram


@dataclasses.dataclass(frozen=True)
class Running:
    """What libvirt reports of a running domain."""

    pins: dict[int, tuple[int, ...]]  # vCPU -> host CPUs
    emulator: tuple[int, ...]  # host CPUs of the emulator threads
    memnodes: dict[int, tuple[str, str]]  # guest node -> (mode, host nodeset)


def cpus_of(mask) -> tuple[int, ...]:
    return tuple(i for i, on in enumerate(mask) if on)


def running(uri: str, name: str) -> Running:
    conn = libvirt.open(uri)
    try:
        dom = conn.lookupByName(name)
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        pins = {vcpu: cpus_of(mask) for vcpu, mask in enumerate(dom.vcpuPinInfo(0))}
        numatune = ET.fromstring(dom.XMLDesc(0)).find("numatune")
        memnodes = {
            int(node.get("cellid")): (node.get("mode"), node.get("nodeset"))
            for node in (numatune.findall("memnode") if numatune is not None else [])
        }
        return Running(pins, cpus_of(dom.emulatorPinInfo(0)), memnodes)
    finally:
        conn.close()


def recorded(vm: VirtualMachine) -> Allocation:
    return Allocation.objects.active().get(vm=vm)


def placement(allocation: Allocation) -> tuple:
    return allocation.pk, allocation.host_id, allocation.cpu_pinning, allocation.numa_mapping, allocation.hugepages


def every_cpu(allocation: Allocation) -> tuple[int, ...]:
    return tuple(sorted(allocation.host.cpus.values_list("cpu_id", flat=True)))


def pins_of(allocation: Allocation) -> dict[int, tuple[int, ...]]:
    """The host CPUs of each vCPU: as pinned, or all of the host's when the VM's vCPUs float."""
    if allocation.cpu_pinning:
        return {int(vcpu): tuple(cpus) for vcpu, cpus in allocation.cpu_pinning.items()}
    return dict.fromkeys(range(allocation.vcpus), every_cpu(allocation))


def emulator_of(allocation: Allocation) -> tuple[int, ...]:
    return tuple(allocation.emulator_cpus) or every_cpu(allocation)


def assert_runs_as_recorded(uri: str, vm: VirtualMachine, allocation: Allocation) -> None:
    """libvirt's pins and memory nodes, the affinity of QEMU's main (emulator) thread and where the kernel put
    each guest node's pages are the allocation's."""
    mapping = {int(vnode): node for vnode, node in allocation.numa_mapping.items()}
    emulator = emulator_of(allocation)
    assert running(uri, vm.name) == Running(
        pins_of(allocation), emulator, memnodes={vnode: ("strict", str(node)) for vnode, node in mapping.items()}
    )
    pid = qemu_pid(uri, vm.name)
    status = dict(line.split(":\t", 1) for line in kernel_file(uri, f"/proc/{pid}/status").splitlines())
    assert parse_cpuset(status["Cpus_allowed_list"].strip()) == emulator
    pages = {vnode: 64 * 1024 // PAGE_KIB for vnode in mapping}  # every guest node holds 64 MiB
    assert guest_ram(uri, vm.name) == {vnode: (f"bind:{node}", {node: pages[vnode]}) for vnode, node in mapping.items()}


def wait_for_job(job: MigrationJob, worker, what: str) -> MigrationJob:
    wait_for(lambda: not MigrationJob.objects.get(pk=job.pk).is_active, 300, what, [worker.log])
    job.refresh_from_db()
    return job


def two_node_vm(cluster, hosts, pins=({}, {}), **values) -> VirtualMachine:
    """A 2-vCPU VM with 128 MiB in 2 MiB pages, as two vNUMA nodes of one vCPU and 64 MiB each."""
    return make_vm(
        cluster,
        hosts,
        name=f"hp-numa-{uuid.uuid4().hex[:6]}",
        optimized_for="high_performance",
        cpu_passthrough=False,  # TCG runs QEMU's own CPU models only
        sockets=2,
        cores=1,
        memory_mib=128,
        hugepage_kib=PAGE_KIB,
        memory_balloon=False,
        numa_nodes=[
            {"index": index, "vcpus": [index], "memory_mib": 64, "tune_mode": "strict", **node_pins}
            for index, node_pins in enumerate(pins)
        ],
        **values,
    )


def blocker(cluster, host: Host, node: int, memory_mib: int) -> VirtualMachine:
    """A VM holding ``memory_mib`` of the 2 MiB pages of ``node`` on ``host`` (its vCPU floats)."""
    vm = make_vm(
        cluster,
        [host],
        name=f"blocker-{node}-{uuid.uuid4().hex[:6]}",
        optimized_for="server",
        cores=1,
        memory_mib=memory_mib,
        hugepage_kib=PAGE_KIB,
        cpu_pinning_policy="none",
        memory_balloon=False,
        numa_nodes=[{"index": 0, "vcpus": [0], "memory_mib": memory_mib, "tune_mode": "strict", "pinned_to": [node]}],
    )
    return start_vm(vm, host=host)


def test_hosts_have_two_numa_nodes_with_hugepages(numa_testbed):
    host = add_host(make_cluster(), "numa-a", numa_testbed.a)
    assert sorted(host.numa_nodes.values_list("index", flat=True)) == [0, 1]
    # What the host's kernel says, not what hpadmin imported.
    for node in (0, 1):
        first, last = kernel_file(numa_testbed.a, f"/sys/devices/system/node/node{node}/cpulist").strip().split("-")
        assert sorted(host.cpus.filter(numa_node=node).values_list("cpu_id", flat=True)) == list(
            range(int(first), int(last) + 1)
        )
        pages = kernel_file(
            numa_testbed.a, f"/sys/devices/system/node/node{node}/hugepages/hugepages-{PAGE_KIB}kB/nr_hugepages"
        )
        assert host.hugepage_pools.get(node_index=node, size_kib=PAGE_KIB).total == int(pages) > 0


def test_a_dedicated_two_node_vm_moves_to_a_host_where_it_is_mapped_anew(numa_testbed, workers, pytestconfig):  # noqa: F811
    cluster = make_cluster()
    host_a = add_host(cluster, "numa-a", numa_testbed.a)
    host_b = add_host(cluster, "numa-b", numa_testbed.b)
    # Dedicated pinning: the scheduler maps the guest nodes to host nodes and pins the vCPUs on each host.
    vm = two_node_vm(cluster, [host_a, host_b], cpu_pinning_policy="dedicated")
    started = time.monotonic()
    vm = start_vm(vm, host=host_a)
    say(pytestconfig, f"  started on A in {time.monotonic() - started:.1f} s")
    on_a = recorded(vm)
    assert sorted(on_a.numa_mapping.values()) == [0, 1]  # one guest node on each host node of the empty host
    assert_runs_as_recorded(numa_testbed.a, vm, on_a)

    # B has the 64 pages the VM needs (24 free on node 0, 48 on node 1), but no two places for its two guest
    # nodes of 32 pages each: refused, and the VM runs on as it did.
    blockers = [blocker(cluster, host_b, 0, 80), blocker(cluster, host_b, 1, 32)]
    with pytest.raises(OperationError) as refused:
        migrate_vms([vm], host_b, force=True)
    say(pytestconfig, f"  refused: {refused.value.message}")
    message = refused.value.message
    assert "numa-b" in message and "NUMA pinning" in message
    assert "24 x 2 MiB pages" in message and "48 x 2 MiB pages" in message
    vm.refresh_from_db()
    assert (vm.host, vm.status) == (host_a, "up")
    assert placement(recorded(vm)) == placement(on_a)
    assert_runs_as_recorded(numa_testbed.a, vm, on_a)
    assert vm.name not in domains(numa_testbed.b)

    # Node 1 of B is free again, node 0 still too short: both guest nodes go to node 1, on its CPUs.
    stop_vm(blockers.pop())
    worker = workers()
    started = time.monotonic()
    (job,) = migrate_vms([vm], host_b, force=True, reason_text="real NUMA hosts")
    job = wait_for_job(job, worker, "the migration to B")
    assert job.state == JobState.SUCCEEDED, job.error
    say(
        pytestconfig,
        f"  migrated to B through the worker in {time.monotonic() - started:.1f} s, downtime {job.downtime_ms} ms",
    )
    vm.refresh_from_db()
    on_b = recorded(vm)
    assert (vm.host, on_b.host, on_b.numa_mapping) == (host_b, host_b, {"0": 1, "1": 1})
    node1_cpus = set(host_b.cpus.filter(numa_node=1).values_list("cpu_id", flat=True))
    assert {cpu for cpus in on_b.cpu_pinning.values() for cpu in cpus} == node1_cpus
    assert_runs_as_recorded(numa_testbed.b, vm, on_b)
    assert vm.name not in domains(numa_testbed.a)
    stop_vm(vm)
    for other in blockers:
        stop_vm(other)
    assert domains(numa_testbed.b) == []


def test_numa_pinning_is_suspended_on_a_one_node_host_and_restored_on_the_way_back(numa_testbed, workers):  # noqa: F811
    cluster = make_cluster()
    host_a = add_host(cluster, "numa-a", numa_testbed.a)
    host_c = add_host(cluster, "numa-c", numa_testbed.c)
    assert host_c.numa_nodes.count() == 1
    vm = two_node_vm(cluster, [host_a], [{"pinned_to": [0]}, {"pinned_to": [1]}], cpu_pinning_policy="none")
    vm = start_vm(vm, host=host_a)
    assert_runs_as_recorded(numa_testbed.a, vm, recorded(vm))
    worker = workers()

    # C has no node 1: the admin chose C and confirmed what it suspends.
    (job,) = migrate_vms([vm], host_c, force=True, allow_degraded=True)
    job = wait_for_job(job, worker, "the move to C")
    assert job.state == JobState.SUCCEEDED, job.error
    vm.refresh_from_db()
    assert vm.host == host_c and "numa_pinning" in [item["setting"] for item in vm.suspended_settings]
    on_c = recorded(vm)
    assert running(numa_testbed.c, vm.name) == Running(pins_of(on_c), emulator_of(on_c), memnodes={})
    # Still in 2 MiB pages (only NUMA pinning is suspended), on the one node there is, bound to none.
    ram = guest_ram(numa_testbed.c, vm.name)
    assert {vnode: pages for vnode, (_, pages) in ram.items()} == {0: {0: 32}, 1: {0: 32}}
    assert not [policy for policy, _ in ram.values() if policy.startswith("bind")]
    assert vm.name not in domains(numa_testbed.a)

    (back,) = migrate_vms([vm], host_a, force=True)
    back = wait_for_job(back, worker, "the way back to A")
    assert back.state == JobState.SUCCEEDED, back.error
    vm.refresh_from_db()
    assert (vm.host, vm.suspended_settings) == (host_a, [])
    on_a = recorded(vm)
    assert on_a.numa_mapping == {"0": 0, "1": 1}
    assert_runs_as_recorded(numa_testbed.a, vm, on_a)
    assert vm.name not in domains(numa_testbed.c)
    stop_vm(vm)
