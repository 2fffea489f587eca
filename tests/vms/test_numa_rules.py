"""oVirt's NumaValidator rules in ``VmConfig.clean()``: 'preferred' serves one vNUMA node, and NUMA pinning needs
hosts with NUMA wherever it applies, as the scheduler judges it."""

import pytest
from django.core.exceptions import ValidationError

from hpadmin.vms.models import VirtualMachine
from scheduler import services as scheduling
from tests.factories import make_cluster, make_host, make_vm

pytestmark = pytest.mark.django_db


def node(index: int, vcpus: list[int], pinned_to=(), tune_mode="strict", **extra) -> dict:
    return {
        "index": index,
        "vcpus": vcpus,
        "memory_mib": 1024,
        "tune_mode": tune_mode,
        "pinned_to": list(pinned_to),
        **extra,
    }


def numa_errors(vm: VirtualMachine, hosts) -> list[str]:
    vm.stage_placement_hosts(hosts)
    try:
        vm.full_clean(validate_unique=False)
    except ValidationError as exc:
        return exc.message_dict.get("numa_nodes", [])
    return []


def new_vm(cluster, nodes, **values) -> VirtualMachine:
    return VirtualMachine(name="vm", cluster=cluster, cores=2, memory_mib=2048, numa_nodes=nodes, **values)


@pytest.mark.parametrize("modes", [("preferred", "preferred"), ("strict", "preferred"), ("preferred", "interleave")])
def test_preferred_tune_mode_serves_a_single_vnuma_node_only(modes):
    cluster = make_cluster()
    nodes = [node(i, [i], tune_mode=mode) for i, mode in enumerate(modes)]
    assert numa_errors(new_vm(cluster, nodes), []) == [
        "Preferred NUMA tune mode is allowed for a single vNUMA node only; the VM has 2."
    ]


def test_one_preferred_vnuma_node_is_accepted_pinned_or_not():
    cluster = make_cluster()
    host = make_host(cluster, numa_nodes=2)
    assert numa_errors(new_vm(cluster, [node(0, [0, 1], tune_mode="preferred")]), []) == []
    assert numa_errors(new_vm(cluster, [node(0, [0, 1], [1], tune_mode="preferred")]), [host]) == []


def test_a_host_without_numa_is_refused_where_the_pinning_applies_to_it():
    cluster = make_cluster()
    numa, flat = make_host(cluster, "numa", numa_nodes=2), make_host(cluster, "flat", numa_nodes=0)
    nodes = [node(0, [0, 1], [1])]  # pinned to host node 1 on every host
    assert numa_errors(new_vm(cluster, nodes), [numa, flat]) == [
        "Host flat does not support NUMA; it cannot take NUMA pinning."
    ]


def test_a_host_without_numa_where_no_vnuma_node_is_pinned_is_accepted_as_the_scheduler_does():
    cluster = make_cluster()
    numa, flat = make_host(cluster, "numa", numa_nodes=2), make_host(cluster, "flat", numa_nodes=0)
    # Pinned on 'numa' only: on 'flat' (its own, empty pinning) the guest runs unbound.
    nodes = [node(0, [0, 1], [], pinned_to_by_host={str(numa.pk): [1]})]
    vm = make_vm(cluster, hosts=[flat, numa], name="vm", cores=2, memory_mib=2048, numa_nodes=nodes)
    decision, _ = scheduling.decide(vm, action="start")
    assert {v.host_id for v in decision.verdicts if v.eligible} == {numa.pk, flat.pk}
