"""A VM and its allocation on one host -> the DomainSpec a driver runs (pinning, NUMA cells, hugepages)."""

from __future__ import annotations

from hpadmin.hypervisor.base import DomainSpec, GuestNumaCell
from hpadmin.vms.models import VirtualMachine
from scheduler.models import Allocation


def domain_spec(vm: VirtualMachine, allocation: Allocation) -> DomainSpec:
    mapping = {int(v): int(h) for v, h in allocation.numa_mapping.items()}
    pins = {int(v): tuple(sorted(cpus)) for v, cpus in allocation.cpu_pinning.items()}
    vnodes = vm.vnuma()
    cells = tuple(
        GuestNumaCell(
            index=n.index,
            vcpus=tuple(sorted(n.vcpus)),
            memory_mib=n.memory_mib,
            host_node=mapping.get(n.index),
            mode=n.tune_mode,
        )
        for n in vnodes
    )
    sockets, cores, threads = allocation.topology or (vm.sockets, vm.cores, vm.threads)
    return DomainSpec(
        uuid=str(vm.uuid),
        name=vm.name,
        sockets=sockets,
        cores=cores,
        threads=threads,
        memory_mib=vm.memory_mib,
        cpu_passthrough=vm.cpu_passthrough,
        vcpu_pins=pins,
        emulator_cpus=tuple(sorted(allocation.emulator_cpus)),
        iothreads=vm.io_threads,
        iothread_cpus=tuple(sorted(allocation.iothread_cpus)),
        numa_cells=cells,
        hugepage_kib=vm.hugepage_kib,
        headless=vm.headless,
        memballoon=vm.memory_balloon,
    )
