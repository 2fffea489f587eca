"""Adding hosts, refreshing their topology from the hypervisor driver, and saving an admin's edit of one."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from hpadmin.hypervisor.base import HostCapabilities
from hpadmin.hypervisor.registry import get_driver
from scheduler.core.cpuset import MAX_CPU

from .models import Cluster, Host, HostCpu, HostNumaNode, HugePagePool


def default_uri(address: str) -> str:
    """A bare host name becomes a URI of the configured driver (``HPADMIN_DRIVER``)."""
    if "://" in address or address.endswith(":///system"):
        return address
    if settings.HPADMIN_DRIVER == "libvirt":
        return f"qemu+tcp://{address}/system"
    return f"sim://{address}"


HOST_TOPOLOGY_FIELDS = [
    "cpu_model",
    "cpu_flags",
    "sockets",
    "cores_per_socket",
    "threads_per_core",
    "memory_mib",
    "tsc_khz",
    "refreshed_at",
]


def set_host_fields(host: Host, caps: HostCapabilities) -> None:
    host.cpu_model = caps.cpu_model
    host.cpu_flags = sorted(caps.cpu_flags)
    host.sockets = caps.sockets
    host.cores_per_socket = caps.cores_per_socket
    host.threads_per_core = caps.threads_per_core
    host.memory_mib = caps.memory_mib or sum(n.memory_mib for n in caps.numa_nodes)
    host.tsc_khz = caps.tsc_khz
    host.refreshed_at = timezone.now()


def topology_rows(host: Host, caps: HostCapabilities) -> tuple[list[HostCpu], list[HostNumaNode], list[HugePagePool]]:
    """Unsaved CPU, NUMA node and hugepage pool rows describing ``caps`` for ``host``."""
    cpus = [
        HostCpu(host=host, cpu_id=c.id, socket=c.socket, core=c.core, numa_node=c.node, online=c.online)
        for c in caps.cpus
    ]
    nodes = [
        HostNumaNode(
            host=host, index=n.index, memory_mib=n.memory_mib, distances={str(k): v for k, v in n.distances.items()}
        )
        for n in caps.numa_nodes
    ]
    pools = [(n.index, size, total) for n in caps.numa_nodes for size, total in n.hugepages.items()]
    pools += [(None, size, total) for size, total in caps.hugepages.items()]
    return (
        cpus,
        nodes,
        [HugePagePool(host=host, node_index=node, size_kib=size, total=total) for node, size, total in pools if total],
    )


@transaction.atomic
def import_capabilities(host: Host, caps: HostCapabilities) -> Host:
    """Replace the host's stored topology with what its hypervisor reports (only that: a status that changed
    since ``host`` was read, by a maintenance for one, stays)."""
    set_host_fields(host, caps)
    host.save(update_fields=HOST_TOPOLOGY_FIELDS)
    host.cpus.all().delete()
    host.numa_nodes.all().delete()
    host.hugepage_pools.all().delete()
    cpus, nodes, pools = topology_rows(host, caps)
    HostCpu.objects.bulk_create(cpus)
    HostNumaNode.objects.bulk_create(nodes)
    HugePagePool.objects.bulk_create(pools)
    return host


def read_capabilities(uri: str) -> HostCapabilities:
    """What the host's hypervisor reports; a ValidationError (on ``uri``) for a host whose CPUs the scheduler
    cannot number (its CPU sets end at ``MAX_CPU``)."""
    caps = get_driver(uri).capabilities(uri)
    highest = max((cpu.id for cpu in caps.cpus), default=0)
    if highest > MAX_CPU:
        raise ValidationError(
            {"uri": f"{uri} has CPUs up to {highest}; hpadmin schedules hosts whose CPUs are numbered 0-{MAX_CPU}."}
        )
    return caps


def add_host(cluster: Cluster, name: str, uri: str) -> Host:
    """Register a host and import its topology; a host whose hypervisor does not answer is not added.
    Raises ValidationError for a URI hpadmin may not connect to, or a host it cannot schedule."""
    uri = default_uri(uri)
    Host(cluster=cluster, name=name, uri=uri).full_clean(validate_unique=False)
    caps = read_capabilities(uri)
    with transaction.atomic():
        host = Host.objects.create(cluster=cluster, name=name, uri=uri)
        return import_capabilities(host, caps)


def refresh_capabilities(host: Host) -> Host:
    """Read the host's topology again (ValidationError: see ``read_capabilities``)."""
    return import_capabilities(host, read_capabilities(host.uri))


@transaction.atomic
def update_host(host: Host, fields: Iterable[str]) -> Host:
    """Save an admin's edit of ``host``: only the edited ``fields``, so a status that changed since the host was
    read is not written back, and with ``Host.clean()`` checked again under the host's row lock (a cluster
    changes only in maintenance, and an activation may have come first). Raises ValidationError."""
    Host.objects.select_for_update(no_key=True).get(pk=host.pk)
    host.clean()
    host.save(update_fields=list(fields))
    return host
