"""A realistic demo inventory: two clusters of simulated hosts of different shapes, VMs of all three types,
templates and a pool. Idempotent: objects are found by name and left alone when they exist."""

from __future__ import annotations

import os
import random
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from hpadmin.affinity.models import AffinityGroup, AffinityLabel, AffinityRule
from hpadmin.hypervisor.simulated import capabilities_from_uri, host_shape_uri
from hpadmin.inventory.models import Cluster, Host, HostCpu, HostNumaNode, HostStatus, HugePagePool
from hpadmin.inventory.services import HOST_TOPOLOGY_FIELDS, import_capabilities, set_host_fields, topology_rows
from hpadmin.vms.models import CpuPinningPolicy, OptimizedFor, Pool, Template, VirtualMachine
from hpadmin.vms.profiles import prepare_new

from .errors import OperationError
from .services import start_vm

GIB = 1024
AVX512 = "sse4_2,avx,avx2,avx512f,avx512bw,aes,pdpe1gb,vmx"
AVX2 = "sse4_2,avx,avx2,aes,pdpe1gb,vmx"
OLD = "sse4_2,avx,aes,vmx"


@dataclass(frozen=True)
class HostPlan:
    name: str
    cluster: str
    shape: dict
    status: str = HostStatus.UP


CLUSTERS = {
    "hp-cluster": {"description": "Pinned, hugepage-backed High Performance workloads", "cpu_level_flags": ["avx2"]},
    "general": {"description": "Servers and desktops", "cpu_level_flags": ["sse4_2"], "threads_as_cores": True},
}

HOSTS = [
    # Two identical 2-socket SMT hosts with 1 GiB and 2 MiB pages: the classic pair to migrate between.
    HostPlan(
        "hp-a1",
        "hp-cluster",
        dict(sockets=2, cores=8, threads=2, nodes=2, memory=256 * GIB, hp1g=32, hp2m=4096, flags=AVX512),
    ),
    HostPlan(
        "hp-a2",
        "hp-cluster",
        dict(sockets=2, cores=8, threads=2, nodes=2, memory=256 * GIB, hp1g=32, hp2m=4096, flags=AVX512),
    ),
    # SMT off, sub-NUMA clustering: 4 nodes on 2 sockets.
    HostPlan(
        "hp-b1", "hp-cluster", dict(sockets=2, cores=12, threads=1, nodes=4, memory=384 * GIB, hp1g=16, flags=AVX512)
    ),
    # One socket, one node, 2 MiB pages only, no AVX-512.
    HostPlan(
        "hp-c1", "hp-cluster", dict(sockets=1, cores=16, threads=2, nodes=1, memory=128 * GIB, hp2m=8192, flags=AVX2)
    ),
    # A big 4-socket host with 4 nodes.
    HostPlan(
        "hp-d1", "hp-cluster", dict(sockets=4, cores=8, threads=2, nodes=4, memory=512 * GIB, hp1g=32, flags=AVX512)
    ),
    HostPlan(
        "hp-m1",
        "hp-cluster",
        dict(sockets=2, cores=8, threads=2, nodes=2, memory=256 * GIB, hp1g=32, flags=AVX512),
        HostStatus.MAINTENANCE,
    ),
    # A host without NUMA support.
    HostPlan("gen-1", "general", dict(sockets=1, cores=8, threads=2, nodes=0, memory=64 * GIB, flags=AVX2)),
    HostPlan("gen-2", "general", dict(sockets=2, cores=6, threads=2, nodes=2, memory=96 * GIB, hp2m=2048, flags=AVX2)),
    HostPlan("gen-3", "general", dict(sockets=1, cores=8, threads=1, nodes=1, memory=32 * GIB, flags=OLD, offline=7)),
]


def _numa(*nodes) -> list[dict]:
    return [
        {"index": i, "vcpus": list(vcpus), "memory_mib": mem, "tune_mode": mode, "pinned_to": list(pins)}
        for i, (vcpus, mem, mode, pins) in enumerate(nodes)
    ]


# name, cluster, values, placement host names, start it?
VMS: list[tuple[str, str, dict, list[str], bool]] = [
    (
        "hp-db-1",
        "hp-cluster",
        dict(
            optimized_for=OptimizedFor.HIGH_PERFORMANCE,
            sockets=2,
            cores=4,
            threads=2,
            memory_mib=16 * GIB,
            cpu_pinning_policy=CpuPinningPolicy.DEDICATED,
            hugepage_kib=1048576,
            numa_nodes=_numa((range(0, 8), 8 * GIB, "strict", ()), (range(8, 16), 8 * GIB, "strict", ())),
        ),
        [],
        True,
    ),
    (
        "hp-db-2",
        "hp-cluster",
        dict(
            optimized_for=OptimizedFor.HIGH_PERFORMANCE,
            sockets=1,
            cores=4,
            threads=2,
            memory_mib=8 * GIB,
            cpu_pinning_policy=CpuPinningPolicy.DEDICATED,
            hugepage_kib=2048,
        ),
        [],
        True,
    ),
    (
        "hp-trading",
        "hp-cluster",
        dict(
            optimized_for=OptimizedFor.HIGH_PERFORMANCE,
            sockets=1,
            cores=4,
            threads=1,
            memory_mib=8 * GIB,
            cpu_pinning_policy=CpuPinningPolicy.ISOLATE_THREADS,
            hugepage_kib=1048576,
        ),
        [],
        True,
    ),
    (
        "hp-nfv-1",
        "hp-cluster",
        dict(
            optimized_for=OptimizedFor.HIGH_PERFORMANCE,
            sockets=1,
            cores=4,
            threads=1,
            memory_mib=4 * GIB,
            cpu_pinning_policy=CpuPinningPolicy.MANUAL,
            cpu_pinning="0#2_1#3_2#4_3#5",
            hugepage_kib=2048,
        ),
        ["hp-a1", "hp-a2"],
        True,
    ),
    (
        "hp-sap",
        "hp-cluster",
        dict(
            optimized_for=OptimizedFor.HIGH_PERFORMANCE,
            sockets=2,
            cores=7,
            threads=2,
            memory_mib=64 * GIB,
            cpu_pinning_policy=CpuPinningPolicy.RESIZE_AND_PIN_NUMA,
        ),
        ["hp-a1", "hp-a2"],
        False,
    ),
    (
        "hp-hpc-1",
        "hp-cluster",
        dict(
            optimized_for=OptimizedFor.HIGH_PERFORMANCE,
            sockets=2,
            cores=2,
            threads=1,
            memory_mib=8 * GIB,
            hugepage_kib=1048576,
            numa_nodes=_numa(([0, 1], 4 * GIB, "strict", [0]), ([2, 3], 4 * GIB, "strict", [1])),
        ),
        ["hp-a1", "hp-a2", "hp-b1"],
        True,
    ),
    (
        "hp-hpc-2",
        "hp-cluster",
        dict(
            optimized_for=OptimizedFor.HIGH_PERFORMANCE,
            sockets=1,
            cores=8,
            threads=1,
            memory_mib=16 * GIB,
            numa_nodes=_numa((range(8), 16 * GIB, "interleave", [1])),
        ),
        ["hp-b1", "hp-d1"],
        False,
    ),
    (
        "hp-rt",
        "hp-cluster",
        dict(
            optimized_for=OptimizedFor.HIGH_PERFORMANCE,
            sockets=1,
            cores=2,
            threads=1,
            memory_mib=2 * GIB,
            migration_mode="pinned",
        ),
        ["hp-c1"],
        False,
    ),
    (
        "hp-cache",
        "hp-cluster",
        dict(optimized_for=OptimizedFor.HIGH_PERFORMANCE, sockets=1, cores=2, threads=1, memory_mib=4 * GIB),
        [],
        True,
    ),
    ("web-1", "hp-cluster", dict(optimized_for=OptimizedFor.SERVER, sockets=1, cores=2, memory_mib=4 * GIB), [], True),
    ("web-2", "hp-cluster", dict(optimized_for=OptimizedFor.SERVER, sockets=1, cores=2, memory_mib=4 * GIB), [], True),
    (
        "build-1",
        "hp-cluster",
        dict(optimized_for=OptimizedFor.SERVER, sockets=1, cores=8, memory_mib=16 * GIB, cpu_passthrough=True),
        [],
        True,
    ),
    (
        "db-replica",
        "general",
        dict(optimized_for=OptimizedFor.SERVER, sockets=1, cores=4, memory_mib=8 * GIB),
        [],
        True,
    ),
    ("mail", "general", dict(optimized_for=OptimizedFor.SERVER, sockets=1, cores=2, memory_mib=4 * GIB), [], True),
    (
        "monitoring",
        "general",
        dict(optimized_for=OptimizedFor.SERVER, sockets=1, cores=2, memory_mib=2 * GIB),
        [],
        True,
    ),
    (
        "ci-runner",
        "general",
        dict(optimized_for=OptimizedFor.SERVER, sockets=2, cores=2, memory_mib=8 * GIB),
        [],
        False,
    ),
    ("jumphost", "general", dict(optimized_for=OptimizedFor.SERVER, sockets=1, cores=1, memory_mib=1 * GIB), [], True),
    (
        "designer-ws",
        "general",
        dict(optimized_for=OptimizedFor.DESKTOP, sockets=1, cores=4, memory_mib=8 * GIB),
        [],
        True,
    ),
    (
        "analyst-ws",
        "general",
        dict(optimized_for=OptimizedFor.DESKTOP, sockets=1, cores=2, memory_mib=4 * GIB),
        [],
        False,
    ),
    ("kiosk", "general", dict(optimized_for=OptimizedFor.DESKTOP, sockets=1, cores=1, memory_mib=2 * GIB), [], False),
]

TEMPLATES = [
    (
        "hp-dedicated-1g",
        "hp-cluster",
        dict(
            optimized_for=OptimizedFor.HIGH_PERFORMANCE,
            sockets=1,
            cores=4,
            threads=2,
            memory_mib=8 * GIB,
            cpu_pinning_policy=CpuPinningPolicy.DEDICATED,
            hugepage_kib=1048576,
        ),
    ),
    ("server-small", "general", dict(optimized_for=OptimizedFor.SERVER, sockets=1, cores=2, memory_mib=4 * GIB)),
    ("desktop-std", "general", dict(optimized_for=OptimizedFor.DESKTOP, sockets=1, cores=2, memory_mib=4 * GIB)),
]

POOLS = [("hp-workers", "hp-dedicated-1g", 3), ("desktops", "desktop-std", 4)]


def _new_config(model, name: str, cluster: Cluster, values: dict, source=None, hosts=()):
    obj = model(name=name, cluster=cluster)
    prepare_new(obj, values, source=source)
    obj.stage_placement_hosts(hosts)
    obj.full_clean(validate_unique=False)
    obj.save()
    if hosts:
        obj.placement_hosts.set(hosts)
    return obj


def ensure_admin(stdout) -> None:
    """An admin login for the embedded set-up; its password is made once and kept under var/, readable by its
    owner only (a file an earlier version left readable by others is narrowed too)."""
    user_model = get_user_model()
    secret_file = settings.VAR_DIR / "admin-password.txt"
    if not user_model.objects.filter(username="admin").exists():
        password = secrets.token_urlsafe(9)
        user_model.objects.create_superuser("admin", "admin@localhost", password)
        secret_file.unlink(missing_ok=True)
        # Created with mode 0600, so that the password is never readable by others, not even for a moment.
        with os.fdopen(os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(password + "\n")
    if secret_file.exists():
        secret_file.chmod(0o600)
        stdout.write(f"Log in as admin with password {secret_file.read_text().strip()}")


@transaction.atomic
def build_inventory() -> tuple[list[VirtualMachine], list[VirtualMachine]]:
    """Create what is missing of the demo inventory; return the VMs created (those of pools too) and the ones
    of them the demo starts."""
    clusters = {}
    for name, values in CLUSTERS.items():
        clusters[name], _ = Cluster.objects.get_or_create(name=name, defaults=values)
    existing = set(Host.objects.values_list("name", flat=True))
    for plan in HOSTS:
        if plan.name in existing:
            continue
        uri = host_shape_uri(plan.name, **plan.shape)
        # A simulated host's power management: its fence command need do nothing, the simulator cuts the power.
        host = Host.objects.create(
            cluster=clusters[plan.cluster], name=plan.name, uri=uri, status=plan.status, fence_command="true"
        )
        import_capabilities(host, capabilities_from_uri(uri))
    hosts = {h.name: h for h in Host.objects.all()}
    templates = {t.name: t for t in Template.objects.all()}
    for name, cluster, values in TEMPLATES:
        if name not in templates:
            templates[name] = _new_config(Template, name, clusters[cluster], values)
    existing_vms = set(VirtualMachine.objects.values_list("name", flat=True))
    created, to_start = [], []
    for name, cluster, values, host_names, start in VMS:
        if name not in existing_vms:
            vm = _new_config(VirtualMachine, name, clusters[cluster], values, hosts=[hosts[h] for h in host_names])
            created.append(vm)
            if start:
                to_start.append(vm)
    for name, template_name, size in POOLS:
        template = templates[template_name]
        pool = Pool.objects.filter(name=name).first()
        if pool is None:
            pool = _new_config(Pool, name, template.cluster, {"template": template, "size": size}, source=template)
        for i in range(1, pool.size + 1):
            vm_name = f"{name}-{i}"
            if vm_name not in existing_vms:
                vm = _new_config(
                    VirtualMachine, vm_name, pool.cluster, {"pool": pool, "template": template}, source=pool
                )
                created.append(vm)
                if i == 1:
                    to_start.append(vm)
    _affinity(clusters["hp-cluster"])
    return created, to_start


def _affinity(cluster: Cluster) -> None:
    """A label for the databases and a soft group spreading them over the hosts (hpadmin adds its own for HP VMs)."""
    label = AffinityLabel.objects.filter(name="databases").first()
    if label is None:
        label = AffinityLabel.objects.create(name="databases", description="The database VMs")
        label.vms.set(VirtualMachine.objects.filter(name__in=["hp-db-1", "hp-db-2"]))
    if not AffinityGroup.objects.filter(cluster=cluster, name="db-spread").exists():
        group = AffinityGroup(
            cluster=cluster,
            name="db-spread",
            description="Keep the databases apart when the hosts allow it",
            vm_rule=AffinityRule.NEGATIVE,
            vm_enforcing=False,
            priority=2.0,
        )
        group.stage_members(vm_labels=[label])
        group.full_clean(validate_unique=False)
        group.save()
        group.vm_labels.set([label])


SCALE_SHAPES = [
    dict(sockets=2, cores=16, threads=2, nodes=2, memory=512 * GIB, hp1g=64, flags=AVX512),
    dict(sockets=2, cores=12, threads=1, nodes=2, memory=384 * GIB, hp1g=32, hp2m=8192, flags=AVX512),
    dict(sockets=1, cores=16, threads=2, nodes=1, memory=256 * GIB, hp2m=16384, flags=AVX2),
    dict(sockets=4, cores=8, threads=2, nodes=4, memory=1024 * GIB, hp1g=64, flags=AVX512),
    dict(sockets=1, cores=8, threads=2, nodes=0, memory=128 * GIB, flags=AVX2),
]


@transaction.atomic
def build_scale(host_count: int, vm_count: int, seed: int = 7) -> tuple[int, int]:
    """Add simulated hosts and VMs until there are ``host_count`` scale hosts and ``vm_count`` scale VMs,
    with bulk inserts so that 1,000 hosts and 10,000 VMs take seconds."""
    rng = random.Random(seed)
    cluster, _ = Cluster.objects.get_or_create(name="scale", defaults={"description": "Benchmark cluster"})
    have = Host.objects.filter(cluster=cluster).count()
    new_hosts = []
    for i in range(have, host_count):
        shape = SCALE_SHAPES[i % len(SCALE_SHAPES)]
        name = f"scale-h{i:05d}"
        new_hosts.append(Host(cluster=cluster, name=name, uri=host_shape_uri(name, **shape)))
    Host.objects.bulk_create(new_hosts, batch_size=500)
    cpus, nodes, pools = [], [], []
    fresh = list(Host.objects.filter(cluster=cluster, refreshed_at__isnull=True))
    for host in fresh:
        caps = capabilities_from_uri(host.uri)
        set_host_fields(host, caps)
        for rows, new in zip((cpus, nodes, pools), topology_rows(host, caps), strict=True):
            rows.extend(new)
    Host.objects.bulk_update(fresh, HOST_TOPOLOGY_FIELDS, batch_size=500)
    HostCpu.objects.bulk_create(cpus, batch_size=5000)
    HostNumaNode.objects.bulk_create(nodes, batch_size=2000)
    HugePagePool.objects.bulk_create(pools, batch_size=2000)
    have_vms = VirtualMachine.objects.filter(cluster=cluster).count()
    kinds = [
        (
            OptimizedFor.HIGH_PERFORMANCE,
            dict(cores=4, threads=2, memory_mib=8 * GIB, cpu_pinning_policy="dedicated", hugepage_kib=1048576),
        ),
        (OptimizedFor.HIGH_PERFORMANCE, dict(cores=8, memory_mib=16 * GIB, cpu_pinning_policy="isolate_threads")),
        (OptimizedFor.SERVER, dict(cores=2, memory_mib=4 * GIB)),
        (OptimizedFor.SERVER, dict(cores=4, memory_mib=8 * GIB)),
        (OptimizedFor.DESKTOP, dict(cores=2, memory_mib=4 * GIB)),
    ]
    vms = []
    for i in range(have_vms, vm_count):
        kind, values = kinds[rng.randrange(len(kinds))]
        vm = VirtualMachine(name=f"scale-vm{i:06d}", cluster=cluster)
        prepare_new(vm, {"optimized_for": kind, **values})
        vms.append(vm)
    VirtualMachine.objects.bulk_create(vms, batch_size=1000)
    return host_count - have if host_count > have else 0, max(vm_count - have_vms, 0)


def start_vms(vms: list[VirtualMachine]) -> list[VirtualMachine]:
    """Start the given VMs through the scheduler, as an admin would; a VM no host can take stays down."""

    started = []
    for vm in vms:
        try:
            start_vm(vm)
        except OperationError:
            continue
        started.append(vm)
    return started
