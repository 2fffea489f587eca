"""What must hold after every race and fault, checked against the raw rows: the database and the (simulated)
hypervisors agree on where each VM runs, and nothing is held twice."""

from __future__ import annotations

from collections import Counter, defaultdict

from hpadmin.hypervisor.models import SimulatedDomain
from hpadmin.inventory.models import Host
from hpadmin.operations.models import MigrationJob
from hpadmin.vms.models import VirtualMachine
from scheduler.models import Allocation


def assert_nothing_held_twice(hosts: list[Host]) -> None:
    """No pCPU in two exclusive allocations, no hugepage pool or node memory beyond its capacity."""
    for host in hosts:
        rows = list(Allocation.objects.filter(host=host))
        cpus = Counter(c for a in rows for c in a.exclusive_cpus)
        assert not [c for c, n in cpus.items() if n > 1], f"{host.name}: pCPUs held twice"
        pages: dict[tuple[str, str], int] = defaultdict(int)
        memory: dict[str, int] = defaultdict(int)
        for a in rows:
            for node, sizes in a.hugepages.items():
                for size, count in sizes.items():
                    pages[node, size] += count
            for node, mib in a.memory_mib.items():
                memory[node] += mib
        for pool in host.hugepage_pools.all():
            assert pages.pop((str(pool.node_index), str(pool.size_kib)), 0) <= pool.total, f"{host.name}: pages"
        assert not pages, f"{host.name}: pages from pools that do not exist: {pages}"
        for node in host.numa_nodes.all():
            assert memory.get(str(node.index), 0) <= node.memory_mib, f"{host.name}: node {node.index} memory"


def assert_consistent() -> None:
    """Every VM: no job in flight, at most one allocation, and it is where the hypervisors run the VM."""
    assert not MigrationJob.objects.active().exists(), "a job is still in flight"
    assert not Allocation.objects.filter(state="pending").exists(), "a claim outlived its job or start"
    running = defaultdict(list)
    for name, uri, state in SimulatedDomain.objects.values_list("name", "host_uri", "state"):
        running[name].append((uri, state))
    for vm in VirtualMachine.objects.select_related("host"):
        allocations = list(Allocation.objects.filter(vm=vm).values_list("host", "state"))
        if vm.status == "down":
            assert not allocations, f"{vm.name} is down but holds {allocations}"
            assert vm.name not in running, f"{vm.name} is down in the database but runs on {running[vm.name]}"
        else:
            assert vm.status == "up", f"{vm.name} is left {vm.status}"
            assert allocations == [(vm.host_id, "active")], f"{vm.name} on {vm.host}: {allocations}"
            assert running.get(vm.name) == [(vm.host.uri, "running")], f"{vm.name}: {running.get(vm.name)}"
    assert_nothing_held_twice(list(Host.objects.all()))
