"""The demo command builds a varied, idempotent inventory, and scales for benchmarks."""

from io import StringIO

import pytest
from django.core.management import call_command

from hpadmin.inventory.models import Cluster, Host
from hpadmin.vms.models import Pool, Template, VirtualMachine
from scheduler.models import Allocation

pytestmark = pytest.mark.django_db


def inventory_counts():
    return (
        Cluster.objects.count(),
        Host.objects.count(),
        VirtualMachine.objects.count(),
        Template.objects.count(),
        Pool.objects.count(),
        Allocation.objects.count(),
    )


def test_demo_variety_and_idempotence(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("demo")
    first = inventory_counts()
    call_command("demo")
    assert inventory_counts() == first

    clusters, hosts, vms, templates, pools, _ = first
    assert clusters >= 2 and hosts >= 8 and vms >= 20 and templates >= 1 and pools >= 1
    node_counts = {h.numa_nodes.count() for h in Host.objects.prefetch_related("numa_nodes")}
    assert {0, 1, 2, 4} <= node_counts  # one host without NUMA
    assert {h.threads_per_core for h in Host.objects.all()} >= {1, 2}
    sizes = set(Host.objects.values_list("hugepage_pools__size_kib", flat=True))
    assert {2048, 1048576} <= sizes
    assert len({tuple(h.cpu_flags) for h in Host.objects.all()}) >= 3
    assert Host.objects.filter(status="maintenance").exists()
    assert set(VirtualMachine.objects.values_list("optimized_for", flat=True)) == {
        "desktop",
        "server",
        "high_performance",
    }
    hp_policies = set(
        VirtualMachine.objects.filter(optimized_for="high_performance").values_list("cpu_pinning_policy", flat=True)
    )
    assert hp_policies == {"none", "manual", "dedicated", "isolate_threads", "resize_and_pin_numa"}
    assert (tmp_path / "admin-password.txt").exists()


def test_demo_scales(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("demo", "--no-start", "--hosts", "30", "--vms", "200")
    scale = Cluster.objects.get(name="scale")
    assert scale.hosts.count() == 30
    assert VirtualMachine.objects.filter(cluster=scale).count() == 200
    assert all(h.cpus.count() == h.sockets * h.cores_per_socket * h.threads_per_core for h in scale.hosts.all())
    call_command("demo", "--no-start", "--hosts", "30", "--vms", "200")
    assert VirtualMachine.objects.filter(cluster=scale).count() == 200


def test_demo_counts_what_it_created_and_started(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    out = StringIO()
    call_command("demo", stdout=out)
    vms, up = VirtualMachine.objects.count(), VirtualMachine.objects.filter(status="up").count()
    assert f"Demo inventory ready ({vms} VMs created, {up} started)." in out.getvalue()
    again = StringIO()
    call_command("demo", stdout=again)
    assert "Demo inventory ready (0 VMs created, 0 started)." in again.getvalue()
