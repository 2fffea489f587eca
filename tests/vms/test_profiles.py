"""'Optimized for' profiles: HP defaults, the pinning rule for Server/Desktop, inheritance from templates and pools."""

import pytest

from hpadmin.vms.models import VirtualMachine
from hpadmin.vms.profiles import apply_profile, prepare_new, suggested_migration_mode
from tests.factories import make_cluster, make_host, make_pool, make_template, make_vm

pytestmark = pytest.mark.django_db


def test_high_performance_defaults():
    vm = make_vm(optimized_for="high_performance")
    assert vm.migration_mode == "user_migratable"
    assert vm.cpu_passthrough and vm.headless
    assert not (vm.usb_enabled or vm.soundcard_enabled or vm.memory_balloon)
    assert vm.io_threads == 1 and vm.virtio_rng
    assert vm.watchdog == "none"


def test_server_and_desktop_defaults_allow_automatic_migration():
    server = make_vm(optimized_for="server")
    desktop = make_vm(optimized_for="desktop")
    assert server.migration_mode == desktop.migration_mode == "migratable"
    assert desktop.soundcard_enabled and not server.soundcard_enabled
    assert not server.cpu_passthrough


@pytest.mark.parametrize(
    "pinning",
    [
        {"cpu_passthrough": True},
        {"cpu_pinning_policy": "manual", "cpu_pinning": "0#1"},
        {"cpu_pinning_policy": "dedicated"},
    ],
)
def test_server_with_a_pinning_setting_defaults_to_manual_only(pinning):
    assert make_vm(optimized_for="server", **pinning).migration_mode == "user_migratable"


def test_server_with_a_pinned_vnuma_node_defaults_to_manual_only():
    cluster = make_cluster()
    host = make_host(cluster, numa_nodes=2)
    nodes = [{"index": 0, "vcpus": [0], "memory_mib": 512, "pinned_to": [1]}]
    vm = make_vm(cluster, hosts=[host], optimized_for="desktop", numa_nodes=nodes)
    assert vm.migration_mode == "user_migratable"
    vm.numa_nodes = [{"index": 0, "vcpus": [0], "memory_mib": 512}]
    assert suggested_migration_mode(vm) == "migratable"


def test_explicit_choice_is_kept():
    vm = make_vm(optimized_for="high_performance", migration_mode="migratable", usb_enabled=True)
    assert vm.migration_mode == "migratable" and vm.usb_enabled


def test_switching_to_hp_reports_what_changed_and_why():
    vm = VirtualMachine(optimized_for="server")
    apply_profile(vm)
    vm.optimized_for = "high_performance"
    changes = {c.field: c for c in apply_profile(vm)}
    assert changes["migration_mode"].value == "user_migratable"
    assert "admin asks" in changes["migration_mode"].why
    assert changes["cpu_passthrough"].value is True
    assert "io_threads" not in changes  # Server already had one I/O thread


def test_vm_from_hp_template_inherits_type_and_migration_mode():
    template = make_template(optimized_for="high_performance", cpu_pinning_policy="dedicated", hugepage_kib=2048)
    vm = make_vm(template.cluster, source=template, template=template)
    assert vm.optimized_for == "high_performance"
    assert vm.migration_mode == "user_migratable"
    assert vm.cpu_pinning_policy == "dedicated" and vm.hugepage_kib == 2048 and not vm.memory_balloon


def test_template_values_win_over_the_profile_and_given_values_over_the_template():
    template = make_template(optimized_for="high_performance", migration_mode="migratable")
    vm = VirtualMachine(name="x")
    prepare_new(vm, {"memory_mib": 8192}, source=template)
    assert vm.migration_mode == "migratable" and vm.memory_mib == 8192


def test_pool_of_hp_template_hands_down_to_its_vms():
    template = make_template(optimized_for="high_performance")
    pool = make_pool(template, size=2)
    assert pool.optimized_for == "high_performance" and pool.migration_mode == "user_migratable"
    vm = make_vm(pool.cluster, source=pool, pool=pool)
    assert vm.optimized_for == "high_performance" and vm.migration_mode == "user_migratable"
