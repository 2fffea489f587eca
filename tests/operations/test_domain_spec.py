"""What a VM runs with is what the scheduler accounted for: its vNUMA nodes, where their memory is bound, its
size under Resize and Pin NUMA, its emulator threads and its devices, read from the domain XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict

import pytest

from hpadmin.api.serializers.vms import CONFIG_FIELDS as API_FIELDS
from hpadmin.hypervisor.domain_xml import build_domain_xml
from hpadmin.hypervisor.models import SimulatedDomain
from hpadmin.hypervisor.simulated import spec_from_json
from hpadmin.operations.errors import OperationError
from hpadmin.operations.models import JobState, MigrationJob
from hpadmin.operations.services import migrate_vms, start_vm
from hpadmin.operations.specs import domain_spec
from hpadmin.webadmin.vms.forms.dialog import TABS
from scheduler.core.cpuset import parse_cpuset
from scheduler.models import Allocation
from tests.factories import make_cluster, make_host, make_vm

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster():
    return make_cluster("c1")


def active(vm) -> Allocation:
    return Allocation.objects.get(vm=vm, state="active")


def running_xml(vm) -> ET.Element:
    """The domain XML of the VM as its host runs it (the simulated host keeps the spec it was given)."""
    spec = spec_from_json(SimulatedDomain.objects.get(name=vm.name).spec)
    return ET.fromstring(build_domain_xml(spec))


def cells(root: ET.Element) -> dict[int, tuple[set[int], int]]:
    """Guest NUMA cell -> (vCPUs, MiB)."""
    return {
        int(c.get("id")): (set(parse_cpuset(c.get("cpus"))), int(c.get("memory")))
        for c in root.findall("cpu/numa/cell")
    }


def memnodes(root: ET.Element) -> dict[int, tuple[str, frozenset[int]]]:
    return {
        int(m.get("cellid")): (m.get("mode"), parse_cpuset(m.get("nodeset"))) for m in root.findall("numatune/memnode")
    }


def charged_kib(allocation: Allocation) -> dict[int, int]:
    """Memory the allocation charges per host node, small pages and hugepages together."""
    out: dict[int, int] = defaultdict(int)
    for node, mib in allocation.memory_mib.items():
        out[int(node)] += mib * 1024
    for node, pools in allocation.hugepages.items():
        out[int(node)] += sum(int(size) * pages for size, pages in pools.items())
    return {node: kib for node, kib in out.items() if kib}


def bound_kib(root: ET.Element) -> dict[int, int]:
    """Memory the XML binds to each host node, from cells bound to a single node."""
    sizes = cells(root)
    out: dict[int, int] = defaultdict(int)
    for cell, (_, nodes) in memnodes(root).items():
        assert len(nodes) == 1, f"cell {cell} is bound to {sorted(nodes)}"
        out[next(iter(nodes))] += sizes[cell][1] * 1024
    return dict(out)


# -- vNUMA nodes and their binding --------------------------------------------------------------------------------


def test_vnuma_nodes_that_leave_vcpus_and_memory_out_are_completed_in_the_domain(cluster):
    host = make_host(cluster, numa_nodes=2, cores=4, threads=1, memory_mib=16384)
    vm = make_vm(
        cluster,
        hosts=[host],
        cores=4,
        memory_mib=4096,
        numa_nodes=[
            {"index": 0, "vcpus": [0], "memory_mib": 1024, "pinned_to": [0]},
            {"index": 1, "vcpus": [1], "memory_mib": 1024, "pinned_to": [1]},
        ],
    )
    vm = start_vm(vm, host=host)
    root = running_xml(vm)

    # vCPUs 2 and 3 are dealt round-robin, the 2,048 MiB no node holds go to the last node.
    assert cells(root) == {0: ({0, 2}, 1024), 1: ({1, 3}, 3072)}
    assert root.findtext("vcpu") == "4" and int(root.findtext("memory")) == 4096
    assert bound_kib(root) == charged_kib(active(vm)) == {0: 1024 * 1024, 1: 3072 * 1024}


def test_numatune_binds_every_vnuma_node_where_the_allocation_charged_it(cluster):
    # Two 3 GiB vNUMA nodes, only the first pinned (to host node 0): the second is charged to node 1, which
    # has more room left, and must be bound there rather than follow the first onto node 0.
    host = make_host(cluster, numa_nodes=2, cores=4, threads=1, memory_mib=16384)
    vm = make_vm(
        cluster,
        hosts=[host],
        cores=2,
        memory_mib=6144,
        numa_nodes=[
            {"index": 0, "vcpus": [0], "memory_mib": 3072, "pinned_to": [0]},
            {"index": 1, "vcpus": [1], "memory_mib": 3072},
        ],
    )
    vm = start_vm(vm, host=host)
    root = running_xml(vm)
    charged = charged_kib(active(vm))

    assert charged == {0: 3072 * 1024, 1: 3072 * 1024}
    assert parse_cpuset(root.find("numatune/memory").get("nodeset")) == set(charged)
    assert bound_kib(root) == charged
    assert memnodes(root) == {0: ("strict", {0}), 1: ("strict", {1})}


def test_a_vnuma_node_bound_to_no_host_node_is_left_to_the_kernel(cluster):
    host = make_host(cluster, numa_nodes=2, cores=4, threads=1)
    vm = make_vm(cluster, cores=2, memory_mib=2048, numa_nodes=[{"index": 0, "vcpus": [0, 1], "memory_mib": 2048}])
    root = running_xml(start_vm(vm, host=host))

    assert cells(root) == {0: ({0, 1}, 2048)}
    assert root.find("numatune") is None


def test_a_simulated_domain_recorded_with_one_host_node_per_cell_still_reads():
    cell = {"index": 0, "vcpus": [0, 1], "memory_mib": 1024, "host_node": 1, "mode": "strict", "hugepage_kib": None}
    unbound = {**cell, "index": 1, "host_node": None}
    spec = spec_from_json(
        {
            "uuid": "u",
            "name": "old",
            "sockets": 1,
            "cores": 2,
            "threads": 1,
            "memory_mib": 2048,
            "numa_cells": [cell, unbound],
        }
    )

    assert [c.host_nodes for c in spec.numa_cells] == [(1,), ()]


# -- Resize and Pin NUMA ------------------------------------------------------------------------------------------


@pytest.fixture
def resize_hosts(cluster):
    """Two 2 x 4 x 2 hosts (a Resize and Pin NUMA VM gets 2 x 3 x 2 there) and one 2 x 8 x 2 (2 x 7 x 2)."""
    small = [make_host(cluster, name=f"small{i}", numa_nodes=2, cores=4, threads=2) for i in (1, 2)]
    return [*small, make_host(cluster, name="big", numa_nodes=2, cores=8, threads=2)]


def resize_vm(cluster, host):
    vm = make_vm(cluster, optimized_for="high_performance", cpu_pinning_policy="resize_and_pin_numa", memory_mib=4096)
    return start_vm(vm, host=host)


def test_resize_and_pin_domain_has_one_strict_vnuma_node_per_host_node(cluster, resize_hosts):
    vm = resize_vm(cluster, resize_hosts[0])
    root = running_xml(vm)
    allocation = active(vm)

    assert root.findtext("vcpu") == "12"
    assert cells(root) == {0: (set(range(0, 6)), 2048), 1: (set(range(6, 12)), 2048)}
    assert memnodes(root) == {int(c): ("strict", {n}) for c, n in allocation.numa_mapping.items()}
    assert {int(c): n for c, n in allocation.numa_mapping.items()} == {0: 0, 1: 1}
    assert bound_kib(root) == charged_kib(allocation)
    # Each vNUMA node's vCPUs run on the host node its memory is bound to.
    node_of = {cpu.cpu_id: cpu.numa_node for cpu in resize_hosts[0].cpus.all()}
    for cell, (vcpus, _) in cells(root).items():
        pins = {int(p.get("vcpu")): parse_cpuset(p.get("cpuset")) for p in root.findall("cputune/vcpupin")}
        assert {node_of[cpu] for vcpu in vcpus for cpu in pins[vcpu]} == {allocation.numa_mapping[str(cell)]}


def test_resize_and_pin_vm_migrates_only_where_it_keeps_its_size(
    cluster, resize_hosts, django_capture_on_commit_callbacks
):
    small1, small2, big = resize_hosts
    vm = resize_vm(cluster, small1)

    with pytest.raises(OperationError) as refused:
        migrate_vms([vm], big, force=True)
    assert "CpuTopology" in refused.value.message
    assert "12 vCPUs" in refused.value.message and "28 vCPUs" in refused.value.message

    with django_capture_on_commit_callbacks(execute=True):
        (job,) = migrate_vms([vm], force=True)
    job = MigrationJob.objects.get(pk=job.pk)
    assert job.state == JobState.SUCCEEDED and job.destination == small2
    root = running_xml(vm)
    assert root.findtext("vcpu") == "12"
    assert cells(root) == {0: (set(range(0, 6)), 2048), 1: (set(range(6, 12)), 2048)}
    # Pinned anew on the destination: every thread but the first core's of each node.
    pinned = {cpu for p in root.findall("cputune/vcpupin") for cpu in parse_cpuset(p.get("cpuset"))}
    first_cores = {0, 8, 4, 12}  # cores 0 and 4 (the first of each node) with their sibling threads
    assert pinned == set(range(16)) - first_cores
    assert bound_kib(root) == charged_kib(active(vm))


# -- emulator and I/O threads -------------------------------------------------------------------------------------


def test_hp_emulator_threads_stay_off_the_vm_cores_and_are_held_as_shared(cluster, client, admin_user):
    host = make_host(cluster, numa_nodes=1, cores=4, threads=2)
    vm = make_vm(cluster, optimized_for="high_performance", cpu_pinning_policy="isolate_threads", cores=2)
    vm = start_vm(vm, host=host)
    allocation = active(vm)
    root = running_xml(vm)

    emulator = parse_cpuset(root.find("cputune/emulatorpin").get("cpuset"))
    iothreads = {parse_cpuset(p.get("cpuset")) for p in root.findall("cputune/iothreadpin")}
    core_of = {cpu.cpu_id: cpu.core for cpu in host.cpus.all()}
    vm_cores = {core_of[cpu] for cpu in allocation.exclusive_cpus}
    assert emulator and iothreads == {emulator}
    assert not {core_of[cpu] for cpu in emulator} & vm_cores
    assert emulator <= set(allocation.shared_cpus) and not emulator & set(allocation.exclusive_cpus)

    client.force_login(admin_user)
    page = client.get(vm.get_absolute_url()).content.decode()
    assert f"{root.find('cputune/emulatorpin').get('cpuset')} / " in page
    assert "apart from the VM&#x27;s vCPUs" in page


def test_emulator_pinning_set_by_the_admin_is_applied_and_needs_the_pcpus(cluster):
    small = make_host(cluster, name="small", numa_nodes=1, cores=4, threads=1)
    vm = make_vm(cluster, optimized_for="high_performance", cpu_pinning_policy="dedicated", emulator_pinning="6")

    with pytest.raises(OperationError) as refused:
        start_vm(vm, host=small)
    assert "EmulatorPinning: the emulator and I/O thread pinning cannot be applied" in str(refused.value.errors)
    assert "pCPU 6 does not exist on the host" in str(refused.value.errors)

    large = make_host(cluster, name="large", numa_nodes=1, cores=8, threads=1)
    vm = start_vm(vm, host=large)
    root = running_xml(vm)
    assert root.find("cputune/emulatorpin").get("cpuset") == "6"
    assert 6 not in {cpu for p in root.findall("cputune/vcpupin") for cpu in parse_cpuset(p.get("cpuset"))}
    assert 6 in active(vm).shared_cpus


# -- devices ------------------------------------------------------------------------------------------------------

# VmConfig's device settings: each one the dialog or the API offers must reach the domain.
DEVICE_FIELDS = (
    "headless",
    "usb_enabled",
    "soundcard_enabled",
    "memory_balloon",
    "virtio_rng",
    "watchdog",
    "io_threads",
)
DIALOG_FIELDS = {name for _, _, names in TABS for name in names}


@pytest.mark.parametrize(
    ("face", "name"),
    [("dialog", n) for n in DEVICE_FIELDS if n in DIALOG_FIELDS]
    + [("API", n) for n in DEVICE_FIELDS if n in API_FIELDS],
)
def test_every_device_setting_offered_changes_the_domain(cluster, face, name):
    host = make_host(cluster, numa_nodes=1, cores=4, threads=1)
    vm = start_vm(make_vm(cluster, optimized_for="server"), host=host)
    allocation = active(vm)
    before = build_domain_xml(domain_spec(vm, allocation))
    value = getattr(vm, name)
    field = vm._meta.get_field(name)
    if field.choices:
        setattr(vm, name, next(choice for choice, _ in field.choices if choice != value))
    else:
        setattr(vm, name, not value if isinstance(value, bool) else value + 1)

    assert build_domain_xml(domain_spec(vm, allocation)) != before, f"the {face}'s {name} does not reach the domain"
