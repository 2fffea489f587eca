"""Every rule of ``VmConfig.clean()``: a bad input and the message the admin reads next to the field."""

import pytest
from django.core.exceptions import ValidationError

from hpadmin.vms.models import VirtualMachine
from tests.factories import make_cluster, make_host, make_vm

pytestmark = pytest.mark.django_db


def numa(*nodes, **extra):
    """vNUMA nodes as stored: each (vcpus, memory_mib[, pinned_to])."""
    out = []
    for i, node in enumerate(nodes):
        vcpus, memory, *pins = node
        out.append({"index": i, "vcpus": list(vcpus), "memory_mib": memory, "pinned_to": pins[0] if pins else []})
    for node in out:
        node.update(extra)
    return out


def errors_of(vm: VirtualMachine, hosts=None) -> dict[str, list[str]]:
    if hosts is not None:
        vm.stage_placement_hosts(hosts)
    with pytest.raises(ValidationError) as exc:
        vm.full_clean(validate_unique=False)
    return exc.value.message_dict


def new_vm(cluster=None, **values) -> VirtualMachine:
    base = dict(name="vm", cluster=cluster or make_cluster(), sockets=1, cores=4, threads=1, memory_mib=4096)
    return VirtualMachine(**{**base, **values})


def test_a_valid_multi_host_numa_configuration_passes():
    cluster = make_cluster()
    h2 = make_host(cluster, numa_nodes=2)
    h4 = make_host(cluster, numa_nodes=4, sockets=4)
    nodes = numa(([0, 1], 1024, [0]), ([2, 3], 1024, [1]))
    nodes[1]["pinned_to_by_host"] = {str(h4.pk): [3]}
    vm = new_vm(cluster, numa_nodes=nodes, hugepage_kib=2048, migration_mode="pinned")
    vm.stage_placement_hosts([h2, h4])
    vm.full_clean(validate_unique=False)


@pytest.mark.parametrize(
    ("pinning", "message"),
    [
        ("0#1_1", "at character 5"),
        ("0#1-", "after '-'"),
        ("0#3-1", "range"),
        ("0#1_0#2", "twice"),
    ],
)
def test_malformed_pinning_string_says_where_and_why(pinning, message):
    errors = errors_of(new_vm(cpu_pinning_policy="manual", cpu_pinning=pinning), hosts=[])
    assert "cpu_pinning" in errors
    assert errors["cpu_pinning"][0].startswith("Invalid CPU pinning at character")
    assert message in errors["cpu_pinning"][0]


def test_pinning_must_name_existing_vcpus():
    errors = errors_of(new_vm(cpu_pinning_policy="manual", cpu_pinning="0#1_5#2"), hosts=[])
    assert errors["cpu_pinning"] == ["vCPU 5 does not exist: the VM has 4 vCPUs (0-3)."]


def test_pinning_string_needs_the_manual_policy_and_the_manual_policy_needs_a_string():
    assert "only used with the Manual" in errors_of(new_vm(cpu_pinning="0#1"), hosts=[])["cpu_pinning"][0]
    assert "needs a CPU pinning topology" in errors_of(new_vm(cpu_pinning_policy="manual"), hosts=[])["cpu_pinning"][0]


def test_vnuma_indexes_must_be_continuous():
    nodes = numa(([0, 1], 1024), ([2, 3], 1024))
    nodes[1]["index"] = 2
    assert errors_of(new_vm(numa_nodes=nodes), hosts=[])["numa_nodes"] == [
        "vNUMA node indexes must run 0-1 without gaps or repeats."
    ]


def test_a_vcpu_belongs_to_one_vnuma_node_at_most():
    errors = errors_of(new_vm(numa_nodes=numa(([0, 1], 1024), ([1, 2], 1024))), hosts=[])
    assert errors["numa_nodes"] == ["vCPU 1 is in vNUMA nodes 0 and 1."]


def test_vnuma_node_naming_a_missing_vcpu():
    errors = errors_of(
        new_vm(
            numa_nodes=numa(
                ([0, 7], 1024),
            )
        ),
        hosts=[],
    )
    assert errors["numa_nodes"] == ["vNUMA node 0 names vCPU 7; the VM has 4 vCPUs."]


def test_no_more_vnuma_nodes_than_vcpus():
    vm = new_vm(cores=2, numa_nodes=numa(([0], 512), ([1], 512), ([], 512)))
    assert "3 vNUMA nodes need at least as many vCPUs; the VM has 2." in errors_of(vm, hosts=[])["numa_nodes"]


def test_vnuma_memory_not_above_the_vms():
    errors = errors_of(new_vm(numa_nodes=numa(([0, 1], 3072), ([2, 3], 2048))), hosts=[])
    assert errors["numa_nodes"] == ["The vNUMA nodes hold 5120 MiB, more than the VM's 4096 MiB."]


def test_bad_vnuma_shape_is_reported_not_crashed_on():
    errors = errors_of(new_vm(numa_nodes=[{"index": 0, "vcpus": "0-1", "memory_mib": 1024}]), hosts=[])
    assert errors["numa_nodes"] == ["vNUMA node 0 vcpus must be a list of whole numbers of 0 or more."]
    errors = errors_of(new_vm(numa_nodes=[{"index": 0, "vcpus": [0], "memory_mib": 1024, "tune_mode": "x"}]), hosts=[])
    assert errors["numa_nodes"] == ["vNUMA node 0: tune mode must be one of strict, interleave, preferred."]


def test_hugepage_size_must_divide_vm_and_vnuma_memory():
    errors = errors_of(new_vm(memory_mib=1536, hugepage_kib=1048576), hosts=[])
    assert errors["hugepage_kib"] == ["1536 MiB of memory is not a whole number of 1024 MiB pages."]
    vm = new_vm(memory_mib=2048, hugepage_kib=1048576, numa_nodes=numa(([0, 1], 1536), ([2, 3], 512)))
    assert errors_of(vm, hosts=[])["hugepage_kib"] == [
        "The memory of vNUMA node(s) 0, 1 is not a whole number of 1024 MiB pages."
    ]


def test_numa_pinning_names_nodes_the_host_has():
    cluster = make_cluster()
    host = make_host(cluster, name="two-nodes", numa_nodes=2)
    errors = errors_of(new_vm(cluster, numa_nodes=numa(([0, 1], 1024, [3]))), hosts=[host])
    assert errors["numa_nodes"] == [
        "vNUMA node 0 is pinned to host node 3, which two-nodes does not have (it has 2: 0-1)."
    ]


def test_numa_pinning_checked_on_every_pinned_host_with_overrides():
    cluster = make_cluster()
    big = make_host(cluster, name="big", numa_nodes=4, sockets=4)
    small = make_host(cluster, name="small", numa_nodes=2)
    nodes = numa(([0, 1], 1024, [3]))
    assert "small does not have" in errors_of(new_vm(cluster, numa_nodes=nodes), hosts=[big, small])["numa_nodes"][0]
    nodes[0]["pinned_to_by_host"] = {str(small.pk): [1]}
    vm = new_vm(cluster, numa_nodes=nodes)
    vm.stage_placement_hosts([big, small])
    vm.full_clean(validate_unique=False)


def test_strict_vnuma_node_memory_must_fit_the_host_node():
    cluster = make_cluster()
    host = make_host(cluster, name="tiny", numa_nodes=2, memory_mib=1024)
    vm = new_vm(cluster, memory_mib=4096, numa_nodes=numa(([0, 1], 1000, [0]), ([2, 3], 600, [1])))
    assert errors_of(vm, hosts=[host])["numa_nodes"] == [
        "vNUMA node 0 needs 1000 MiB in strict mode; host node 0 of tiny has only 512 MiB.",
        "vNUMA node 1 needs 600 MiB in strict mode; host node 1 of tiny has only 512 MiB.",
    ]


def test_numa_pinning_on_a_host_without_numa():
    cluster = make_cluster()
    flat = make_host(cluster, name="flat", numa_nodes=0)
    errors = errors_of(new_vm(cluster, numa_nodes=numa(([0], 512, [0]))), hosts=[flat])
    assert errors["numa_nodes"] == ["Host flat does not support NUMA; it cannot take NUMA pinning."]


def test_numa_pinning_needs_a_pinned_host():
    errors = errors_of(new_vm(numa_nodes=numa(([0], 512, [0]))), hosts=[])
    assert errors["numa_nodes"] == ["NUMA pinning needs the VM to be pinned to at least one host (Start running on)."]


def test_preferred_mode_pins_to_one_node():
    cluster = make_cluster()
    host = make_host(cluster, numa_nodes=2)
    vm = new_vm(cluster, numa_nodes=numa(([0, 1], 1024, [0, 1]), tune_mode="preferred"))
    assert "preferred mode can be pinned to one host node only" in errors_of(vm, hosts=[host])["numa_nodes"][0]


def test_dedicated_policy_excludes_manual_numa_pinning():
    cluster = make_cluster()
    host = make_host(cluster, numa_nodes=2)
    vm = new_vm(cluster, cpu_pinning_policy="dedicated", numa_nodes=numa(([0, 1], 1024, [0])))
    assert "Dedicated CPU pinning chooses the NUMA nodes itself" in errors_of(vm, hosts=[host])["numa_nodes"][0]


def test_do_not_migrate_needs_a_placement_host():
    errors = errors_of(new_vm(migration_mode="pinned"), hosts=[])
    assert errors["placement_hosts"] == ["'Do not allow migration' needs at least one host to start running on."]


def test_placement_hosts_in_the_vms_cluster():
    other = make_host(make_cluster(), name="elsewhere")
    errors = errors_of(new_vm(), hosts=[other])
    assert errors["placement_hosts"] == ["Not in the VM's cluster: elsewhere."]


def test_current_host_in_the_vms_cluster():
    other = make_host(make_cluster())
    vm = make_vm(sockets=1, cores=1)
    vm.host = other
    assert errors_of(vm)["host"] == ["Host is not in the selected cluster."]


def test_emulator_pinning_is_a_cpuset():
    assert errors_of(new_vm(emulator_pinning="0-"), hosts=[])["emulator_pinning"][0].startswith(
        "Invalid CPU set at character"
    )


def test_stored_placement_hosts_are_checked_when_none_are_staged():
    cluster = make_cluster()
    host = make_host(cluster, numa_nodes=2)
    vm = make_vm(cluster, hosts=[host], numa_nodes=numa(([0], 512, [1])), cores=2, memory_mib=1024)
    vm.placement_hosts.clear()
    assert "at least one host" in errors_of(VirtualMachine.objects.get(pk=vm.pk))["numa_nodes"][0]


def test_vcpu_count_is_bounded():
    errors = errors_of(new_vm(sockets=16, cores=64, threads=1), hosts=[])
    assert errors["sockets"] == ["1024 vCPUs are too many: a VM has at most 710 (QEMU's q35 limit)."]
    assert "threads" in errors_of(new_vm(threads=9), hosts=[])


def test_manual_pinning_names_pcpus_that_every_placement_host_has():
    cluster = make_cluster()
    small = make_host(cluster, "h1", numa_nodes=2, cores=6, threads=2)  # 2 x 6 x 2: pCPUs 0-23
    large = make_host(cluster, "h2", numa_nodes=2, cores=8, threads=2)  # pCPUs 0-31
    vm = new_vm(cluster, cpu_pinning_policy="manual", cpu_pinning="0#30")
    assert errors_of(vm, hosts=[small, large])["cpu_pinning"] == [
        "pCPU 30 does not exist on host h1 (it has pCPUs 0-23)."
    ]
    vm.cpu_pinning = "0#0_1#22-25_2#31"
    assert errors_of(vm, hosts=[large, small])["cpu_pinning"] == [
        "pCPUs 24-25,31 do not exist on host h1 (it has pCPUs 0-23)."
    ]
    vm.stage_placement_hosts([large])
    vm.full_clean(validate_unique=False)


def test_manual_pinning_is_checked_against_the_stored_placement_hosts_too():
    cluster = make_cluster()
    host = make_host(cluster, "h1", numa_nodes=1, cores=4, threads=1)
    vm = make_vm(cluster, hosts=[host], cores=2, cpu_pinning_policy="manual", cpu_pinning="0#0_1#3")
    fresh = VirtualMachine.objects.get(pk=vm.pk)
    fresh.cpu_pinning = "0#0_1#4"
    assert errors_of(fresh)["cpu_pinning"] == ["pCPU 4 does not exist on host h1 (it has pCPUs 0-3)."]


def test_manual_pinning_waits_for_a_host_that_has_not_reported_its_cpus():
    cluster = make_cluster()
    host = make_host(cluster, "h1", numa_nodes=1, cores=4, threads=1)
    host.cpus.all().delete()  # added, capabilities not imported yet: the scheduler refuses it until they are
    vm = new_vm(cluster, cpu_pinning_policy="manual", cpu_pinning="0#30")
    vm.stage_placement_hosts([host])
    vm.full_clean(validate_unique=False)
