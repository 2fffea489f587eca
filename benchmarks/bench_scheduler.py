"""Times one full scheduling decision over seeded clusters of 1,000 and 10,000 hosts.

Each host: 2 sockets = 2 NUMA nodes x 16 cores x 2 threads (64 pCPUs), 256 GiB per node of which a 64 x 1 GiB
hugepage pool; 0-90% of the pCPUs already held by dedicated VMs, the 1 GiB pools partly used. A decision
judges every host with every filter, scores the eligible ones and places the VM on the best one.

Run from the repo root: ``.venv/bin/python benchmarks/bench_scheduler.py``.
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scheduler.core import (  # noqa: E402
    Allocation,
    HostCpu,
    HostNumaNode,
    HostState,
    HostTopology,
    ScheduleRequest,
    VMRequest,
    VNumaNode,
    build_host_state,
    schedule,
)

GIB = 1024
PAGE_1G = 1024 * 1024
NODES, CORES_PER_NODE, THREADS = 2, 16, 2
NODE_MIB, POOL_PAGES = 256 * GIB, 64


def make_host(host_id: int, rng: random.Random) -> HostState:
    cpus = []
    for node in range(NODES):
        for core in range(CORES_PER_NODE):
            core_id = node * CORES_PER_NODE + core
            for thread in range(THREADS):
                # Linux numbering: first threads of all cores, then their siblings.
                cpu = thread * NODES * CORES_PER_NODE + core_id
                cpus.append(HostCpu(cpu, socket=node, core=core_id, node=node))
    nodes = tuple(
        HostNumaNode(n, frozenset(c.id for c in cpus if c.node == n), NODE_MIB, {PAGE_1G: POOL_PAGES})
        for n in range(NODES)
    )
    topology = HostTopology(
        id=host_id,
        name=f"host{host_id:05d}",
        cpu_flags=frozenset({"sse4_2", "avx2"}),
        sockets=NODES,
        cores_per_socket=CORES_PER_NODE,
        threads_per_core=THREADS,
        cpus=tuple(cpus),
        numa_nodes=nodes,
    )
    return build_host_state(topology, _allocations(host_id, cpus, rng))


def _allocations(host_id: int, cpus: list[HostCpu], rng: random.Random) -> list[Allocation]:
    """Dedicated VMs of 2-8 vCPUs, each on one node, until 0-90% of the pCPUs are held."""
    target = int(len(cpus) * rng.uniform(0.0, 0.9))
    free = {n: sorted(c.id for c in cpus if c.node == n) for n in range(NODES)}
    pages_left = {n: POOL_PAGES for n in range(NODES)}
    allocations, held = [], 0
    while held < target:
        node = rng.randrange(NODES)
        size = min(rng.choice((2, 4, 6, 8)), target - held, len(free[node]))
        if size <= 0:
            continue
        picked, free[node] = free[node][:size], free[node][size:]
        pages = min(rng.choice((0, 0, 4, 8, 16)), pages_left[node])
        pages_left[node] -= pages
        allocations.append(
            Allocation(
                vm_id=host_id * 1000 + len(allocations),
                exclusive_cpus=frozenset(picked),
                vcpus=size,
                memory_mib={} if pages else {node: size * 2 * GIB},
                hugepages={node: {PAGE_1G: pages}} if pages else {},
            )
        )
        held += size
    return allocations


def _two_nodes(vm_id: int, name: str, policy: str, hugepage_kib: int | None) -> VMRequest:
    return VMRequest(
        id=vm_id,
        name=name,
        sockets=2,
        cores=8,
        memory_mib=16 * GIB,
        optimized_for="high_performance",
        cpu_pinning_policy=policy,
        numa_nodes=(
            VNumaNode(0, frozenset(range(8)), 8 * GIB),
            VNumaNode(1, frozenset(range(8, 16)), 8 * GIB),
        ),
        hugepage_kib=hugepage_kib,
    )


CASES = {
    "1x8 dedicated": VMRequest(
        id=1, name="d8", cores=8, memory_mib=16 * GIB, optimized_for="high_performance", cpu_pinning_policy="dedicated"
    ),
    "2x8 dedicated": _two_nodes(2, "d2x8", "dedicated", None),
    "2x8 isolate_threads, 1 GiB pages": _two_nodes(3, "i2x8", "isolate_threads", PAGE_1G),
    "1x16 no pinning": VMRequest(id=4, name="s16", cores=16, memory_mib=32 * GIB),
}


def _p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    print(
        "Host states are built before timing (then frozen for the garbage collector, as a long-lived snapshot\n"
        "would be); each figure is one full decision: every host judged, all eligible ones scored, the best placed.\n"
        "CPU = the process's CPU time (one core, unaffected by other processes queueing for the CPU); wall = elapsed."
    )
    for count, runs in ((1_000, 31), (10_000, 11)):
        rng = random.Random(20240601 + count)
        started = time.perf_counter()
        hosts = [make_host(i, rng) for i in range(1, count + 1)]
        built = time.perf_counter() - started
        gc.collect()
        gc.freeze()
        print(f"\n{count:,} hosts (states built in {built:.1f} s), {runs} runs per case")
        for label, vm in CASES.items():
            cpu, wall, decision = [], [], None
            for _ in range(runs):
                started, started_cpu = time.perf_counter(), time.process_time()
                decision = schedule(hosts, vm, ScheduleRequest(action="start"))
                cpu.append((time.process_time() - started_cpu) * 1000)
                wall.append((time.perf_counter() - started) * 1000)
            print(
                f"  {label:34s} CPU median {statistics.median(cpu):6.1f} ms  p95 {_p95(cpu):6.1f} ms   "
                f"wall median {statistics.median(wall):6.1f} ms  p95 {_p95(wall):6.1f} ms   "
                f"eligible {len(decision.ranked):5d}"
            )
        del hosts
        gc.unfreeze()


if __name__ == "__main__":
    main()
