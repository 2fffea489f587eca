"""The whole path on real libvirt hosts: hosts added through the driver, a VM started by the scheduler,
``migrate_vms`` carried out by a Celery worker process, a refused migration that leaves the VM be, a
host's maintenance that moves its pinned VM, and a hugepage VM that runs degraded on a host without a pool
and gets its hugepages back.

Needs root and the testbed (``make test-libvirt``)."""

from __future__ import annotations

import os
import time
import uuid

import libvirt
import pytest
from django.contrib.auth import get_user_model

from hpadmin.inventory.models import Host
from hpadmin.inventory.services import add_host
from hpadmin.operations.maintenance import activate_host, start_maintenance
from hpadmin.operations.models import JobState, MigrationJob
from hpadmin.operations.services import migrate_vms, start_vm, stop_vm
from scheduler.models import Allocation
from tests.factories import make_cluster, make_vm
from tests.hypervisor.test_libvirt_testbed import (  # noqa: F401 - fixture
    guest_ram_backing,
    qemu_pid,
    testbed,
    vcpu_affinity,
)
from tests.operations.test_worker import wait_for, workers  # noqa: F401 - fixture

pytestmark = [
    pytest.mark.libvirt,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        os.environ.get("HPADMIN_LIBVIRT_TESTBED") != "1",
        reason="real libvirt daemons: set HPADMIN_LIBVIRT_TESTBED=1 and run as root (make test-libvirt)",
    ),
]


def pins(uri: str, name: str) -> tuple[int, ...]:
    conn = libvirt.open(uri)
    try:
        dom = conn.lookupByName(name)
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        return tuple(i for i, on in enumerate(dom.vcpuPinInfo(0)[0]) if on)
    finally:
        conn.close()


def domains(uri: str) -> list[str]:
    conn = libvirt.open(uri)
    try:
        return [d.name() for d in conn.listAllDomains()]
    finally:
        conn.close()


def test_migrate_vms_through_a_worker_on_real_hosts(testbed, workers):  # noqa: F811
    cluster = make_cluster()
    host_a = add_host(cluster, "libvirt-a", testbed.a)
    host_b = add_host(cluster, "libvirt-b", testbed.b)
    assert host_a.cpus.count() >= 2 and host_a.numa_nodes.exists()

    # pCPU 0 of B is held by another VM, so the destination's pinning must differ from the source's.
    blocker = make_vm(cluster, name=f"blocker-{uuid.uuid4().hex[:6]}")
    Allocation.objects.create(vm=blocker, host=host_b, state="active", vcpus=1, exclusive_cpus=[0])
    vm = make_vm(
        cluster,
        name=f"hp-engine-{uuid.uuid4().hex[:6]}",
        optimized_for="server",
        cores=1,
        memory_mib=128,
        cpu_pinning_policy="dedicated",
        memory_balloon=False,
    )
    vm = start_vm(vm, host=host_a)
    assert Allocation.objects.get(vm=vm).exclusive_cpus == [0]
    assert pins(testbed.a, vm.name) == (0,)

    worker = workers()
    started = time.monotonic()
    (job,) = migrate_vms([vm], force=True, reason_text="real hosts")
    wait_for(lambda: not MigrationJob.objects.get(pk=job.pk).is_active, 120, "the migration", [worker.log])
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    print(f"migration through the worker took {time.monotonic() - started:.1f} s, downtime {job.downtime_ms} ms")
    allocation = Allocation.objects.get(vm=vm)
    assert (allocation.host, allocation.exclusive_cpus) == (host_b, [1])
    assert pins(testbed.b, vm.name) == (1,)
    assert vcpu_affinity(qemu_pid(testbed, testbed.b, vm.name), 0) == (1,)
    assert vm.name not in domains(testbed.a)

    # A domain of the same name defined on A makes libvirt refuse the way back: the VM stays on B as it was.
    conn = libvirt.open(testbed.a)
    squatter = conn.defineXML(
        f"<domain type='qemu'><name>{vm.name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64'>hvm</type></os></domain>"
    )
    try:
        (back,) = migrate_vms([vm], host_a, force=True)
        wait_for(lambda: not MigrationJob.objects.get(pk=back.pk).is_active, 120, "the refusal", [worker.log])
        back.refresh_from_db()
        assert back.state == JobState.FAILED and back.attempt == 1
        vm.refresh_from_db()
        assert vm.host == host_b and vm.status == "up"
        assert list(Allocation.objects.filter(vm=vm).values_list("pk", "state")) == [(allocation.pk, "active")]
        assert pins(testbed.b, vm.name) == (1,)
    finally:
        squatter.undefine()
        conn.close()
        stop_vm(vm)
    assert vm.name not in domains(testbed.b)


def test_maintenance_of_a_real_host_moves_its_pinned_vm_with_the_destinations_pinning(testbed, workers):  # noqa: F811
    cluster = make_cluster()
    host_a = add_host(cluster, "libvirt-ma", testbed.a)
    host_b = add_host(cluster, "libvirt-mb", testbed.b)
    blocker = make_vm(cluster, name=f"blocker-{uuid.uuid4().hex[:6]}")
    Allocation.objects.create(vm=blocker, host=host_b, state="active", vcpus=1, exclusive_cpus=[0])
    vm = make_vm(
        cluster,
        name=f"hp-maint-{uuid.uuid4().hex[:6]}",
        optimized_for="server",
        cores=1,
        memory_mib=128,
        cpu_pinning_policy="dedicated",
        memory_balloon=False,
    )
    vm = start_vm(vm, host=host_a)
    assert pins(testbed.a, vm.name) == (0,)
    admin = get_user_model().objects.create_user(f"ops-{uuid.uuid4().hex[:6]}", password="pw-ops-12345")
    worker = workers()
    try:
        start_maintenance(host_a, user=admin, reason="real hosts")
        wait_for(lambda: Host.objects.get(pk=host_a.pk).status == "maintenance", 120, "maintenance", [worker.log])
        vm.refresh_from_db()
        assert vm.host == host_b
        assert Allocation.objects.get(vm=vm).exclusive_cpus == [1]
        assert pins(testbed.b, vm.name) == (1,)
        assert vm.name not in domains(testbed.a)
    finally:
        stop_vm(vm)
        activate_host(host_a, user=admin)


def test_a_hugepage_vm_moves_to_a_host_without_pool_with_hugepages_suspended_and_back(testbed, workers):  # noqa: F811
    cluster = make_cluster()
    host_a = add_host(cluster, "libvirt-ha", testbed.a)
    host_b = add_host(cluster, "libvirt-hb", testbed.b)
    # The testbed reserves 2 MiB pages for A alone; B reports none.
    assert host_a.hugepage_pools.filter(size_kib=2048, total__gte=64).exists()
    assert not host_b.hugepage_pools.exists()
    vm = make_vm(
        cluster,
        name=f"hp-pages-{uuid.uuid4().hex[:6]}",
        optimized_for="server",
        cores=1,
        memory_mib=128,
        hugepage_kib=2048,
        cpu_pinning_policy="dedicated",
        memory_balloon=False,
    )
    in_hugepages = [(2048, 128 * 1024)]  # one mapping of the guest's 128 MiB, all of it in 2 MiB pages
    vm = start_vm(vm, host=host_a)
    worker = workers()
    try:
        pid = qemu_pid(testbed, testbed.a, vm.name)
        testbed.qemu_pids.append(pid)
        assert guest_ram_backing(pid, 128) == in_hugepages

        # No host fits the whole configuration; the admin chose B and confirmed what it suspends.
        (job,) = migrate_vms([vm], host_b, force=True, allow_degraded=True)
        wait_for(lambda: not MigrationJob.objects.get(pk=job.pk).is_active, 120, "the move to B", [worker.log])
        job.refresh_from_db()
        assert job.state == JobState.SUCCEEDED, job.error
        assert "hugepages" in [item["setting"] for item in job.suspended_settings]
        vm.refresh_from_db()
        assert vm.host == host_b and vm.status == "up"
        assert "hugepages" in [item["setting"] for item in vm.suspended_settings]
        allocation = Allocation.objects.active().get(vm=vm)
        assert (allocation.host, allocation.hugepages) == (host_b, {})
        assert vm.name not in domains(testbed.a)
        pid = qemu_pid(testbed, testbed.b, vm.name)
        testbed.qemu_pids.append(pid)
        assert guest_ram_backing(pid, 128) == [(4, 0)]
        assert pins(testbed.b, vm.name) == vcpu_affinity(pid, 0) == tuple(allocation.exclusive_cpus)

        (back,) = migrate_vms([vm], host_a, force=True)
        wait_for(lambda: not MigrationJob.objects.get(pk=back.pk).is_active, 120, "the way back", [worker.log])
        back.refresh_from_db()
        assert back.state == JobState.SUCCEEDED, back.error
        vm.refresh_from_db()
        assert (vm.host, vm.suspended_settings) == (host_a, [])
        allocation = Allocation.objects.active().get(vm=vm)
        assert allocation.hugepages == {"0": {"2048": 128 * 1024 // 2048}}
        assert vm.name not in domains(testbed.b)
        pid = qemu_pid(testbed, testbed.a, vm.name)
        testbed.qemu_pids.append(pid)
        assert guest_ram_backing(pid, 128) == in_hugepages
        assert pins(testbed.a, vm.name) == vcpu_affinity(pid, 0) == tuple(allocation.exclusive_cpus)
    finally:
        stop_vm(vm)
