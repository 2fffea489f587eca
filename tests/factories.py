"""Small builders for tests: simulated hosts of any shape, and VMs with their profile defaults applied."""

from __future__ import annotations

import itertools

from hpadmin.affinity.models import AffinityGroup, AffinityLabel
from hpadmin.hypervisor.simulated import capabilities_from_uri, host_shape_uri
from hpadmin.inventory.models import Cluster, Host
from hpadmin.inventory.services import import_capabilities
from hpadmin.operations.services import start_vm
from hpadmin.vms.models import Pool, Template, VirtualMachine
from hpadmin.vms.profiles import prepare_new

_names = itertools.count(1)


def make_cluster(name: str | None = None, **values) -> Cluster:
    return Cluster.objects.create(name=name or f"cluster-{next(_names)}", **values)


def make_host(
    cluster: Cluster | None = None,
    name: str | None = None,
    numa_nodes: int = 2,
    sockets: int | None = None,
    cores: int = 4,
    threads: int = 2,
    memory_mib: int = 65536,
    status: str = "up",
    **shape,
) -> Host:
    """A simulated host; ``numa_nodes=0`` gives a host without NUMA. Extra ``shape`` keys: hp2m, hp1g, flags,
    offline (see ``hpadmin.hypervisor.simulated.capabilities_from_uri``)."""
    cluster = cluster or make_cluster()
    name = name or f"host-{next(_names)}"
    sockets = sockets or max(numa_nodes, 1)
    uri = host_shape_uri(
        name, sockets=sockets, cores=cores, threads=threads, nodes=numa_nodes, memory=memory_mib, **shape
    )
    host = Host.objects.create(cluster=cluster, name=name, uri=uri, status=status)
    return import_capabilities(host, capabilities_from_uri(uri))


def _make(model, cluster, hosts, source=None, **values):
    obj = model(name=values.pop("name", f"{model.__name__.lower()}-{next(_names)}"), cluster=cluster)
    prepare_new(obj, values, source=source)
    obj.stage_placement_hosts(hosts)
    obj.full_clean(validate_unique=False)
    obj.save()
    obj.placement_hosts.set(hosts)
    return obj


def make_vm(cluster: Cluster | None = None, hosts=(), source=None, **values) -> VirtualMachine:
    return _make(VirtualMachine, cluster or make_cluster(), list(hosts), source=source, **values)


#: The HP VM most tests move: 4 dedicated vCPUs (1 socket x 2 cores x 2 threads), 2 GiB in 2 MiB pages.
HP_VM = {
    "optimized_for": "high_performance",
    "cpu_pinning_policy": "dedicated",
    "cores": 2,
    "threads": 2,
    "memory_mib": 2048,
    "hugepage_kib": 2048,
}


def make_hp_vm(cluster: Cluster | None = None, hosts=(), **values) -> VirtualMachine:
    """An ``HP_VM``; ``values`` override its settings."""
    return make_vm(cluster, hosts, **{**HP_VM, **values})


def start_hp_vm(cluster: Cluster, host: Host, hosts=(), **values) -> VirtualMachine:
    """An ``HP_VM`` (``values`` override its settings) started on ``host`` through the service."""
    return start_vm(make_hp_vm(cluster, hosts, **values), host=host)


def make_template(cluster: Cluster | None = None, hosts=(), **values) -> Template:
    return _make(Template, cluster or make_cluster(), list(hosts), **values)


def make_pool(template: Template, size: int = 2, **values) -> Pool:
    return _make(Pool, template.cluster, [], source=template, template=template, size=size, **values)


def make_label(name: str | None = None, vms=(), hosts=(), **values) -> AffinityLabel:
    label = AffinityLabel.objects.create(name=name or f"label-{next(_names)}", **values)
    label.vms.set(vms)
    label.hosts.set(hosts)
    return label


def make_affinity_group(
    cluster: Cluster, name: str | None = None, vms=(), hosts=(), vm_labels=(), host_labels=(), **values
) -> AffinityGroup:
    """A group checked by its ``clean()`` as the API checks it; ``values`` set its rules."""
    group = AffinityGroup(cluster=cluster, name=name or f"group-{next(_names)}", **values)
    members = {"vms": vms, "hosts": hosts, "vm_labels": vm_labels, "host_labels": host_labels}
    group.stage_members(**members)
    group.full_clean(validate_unique=False)
    group.save()
    for field, objs in members.items():
        getattr(group, field).set(objs)
    return group
