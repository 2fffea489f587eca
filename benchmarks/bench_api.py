"""Server time of the REST API at 1,000 hosts and 10,000 VMs: migration candidates (target: 150 ms) and lists,
in /api/v1 and in the oVirt-compatible API (whose lists are not paged: oVirt's clients read them whole).

Builds the inventory with ``manage.py demo --no-start --hosts 1000 --vms 10000`` into a temporary SQLite
database (``HPADMIN_VAR_DIR``), starts one High Performance VM of the 1,000-host cluster, then sends each request
through Django's test client with an admin token and prints the median and slowest time, the query count and
the size of each answer. It prints figures; it is not a test.

    .venv/bin/python benchmarks/bench_api.py [--hosts 1000] [--vms 10000] [--repeat 15] [--var-dir DIR]

``--var-dir`` reuses (or keeps) a database instead of building a fresh one in a temporary directory.
"""

from __future__ import annotations

import sys

import scale

CANDIDATES_TARGET_MS = 150.0


def running_hp_vm():
    """A dedicated-pinning HP VM of the scale cluster, started (once) so that it has a source host."""
    from hpadmin.operations.services import start_vm
    from hpadmin.vms.models import VirtualMachine, VmStatus

    scale_vms = VirtualMachine.objects.filter(cluster__name="scale", cpu_pinning_policy="dedicated")
    vm = scale_vms.filter(status=VmStatus.UP).first()
    return vm or start_vm(scale_vms.order_by("name").first())


def urls(vm) -> list[tuple[str, str]]:
    from hpadmin.inventory.models import Host

    other = Host.objects.filter(cluster_id=vm.cluster_id).exclude(pk=vm.host_id).order_by("name").first()
    candidates = f"/api/v1/vms/{vm.pk}/migration-candidates/"
    return [
        ("migration candidates, 1,000 hosts", candidates),
        ("migration candidates, one host", f"{candidates}?host={other.pk}"),
        ("VMs, first page (50)", "/api/v1/vms/"),
        ("VMs, page at offset 5,000", "/api/v1/vms/?limit=50&offset=5000"),
        ("VMs, scale cluster by memory, 100", f"/api/v1/vms/?cluster={vm.cluster_id}&ordering=-memory_mib&limit=100"),
        ("VMs, HP and up", "/api/v1/vms/?optimized_for=high_performance&status=up"),
        ("Hosts, first page (50, with topology)", "/api/v1/hosts/"),
        ("Hosts, page at offset 900", "/api/v1/hosts/?offset=900"),
        ("VM", f"/api/v1/vms/{vm.pk}/"),
        ("Jobs", "/api/v1/jobs/"),
        ("Events", "/api/v1/events/"),
    ]


def ovirt_urls(vm) -> list[tuple[str, str]]:
    api = "/ovirt-engine/api"
    return [
        ("oVirt: migration_target_of, 1,000 hosts", f"{api}/hosts?migration_target_of={vm.uuid}"),
        ("oVirt: VMs, max=50", f"{api}/vms?max=50"),
        ("oVirt: VMs, search name=scale-vm0001*", f"{api}/vms?search=name%3Dscale-vm0001*"),
        ("oVirt: all VMs (XML)", f"{api}/vms"),
        ("oVirt: all hosts (XML)", f"{api}/hosts"),
        ("oVirt: VM, follow=host,numanodes", f"{api}/vms/{vm.uuid}?follow=host,numanodes"),
        ("oVirt: events, max=100", f"{api}/events?max=100"),
    ]


def main() -> int:
    args = scale.parse_args(__doc__.splitlines()[0])
    var_dir, seconds = scale.setup(args, "hpadmin-bench-api-")

    from django.contrib.auth import get_user_model
    from django.test import Client
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from hpadmin.inventory.models import Host
    from hpadmin.vms.models import VirtualMachine

    vm = running_hp_vm()
    print(
        f"Inventory: {Host.objects.count():,} hosts, {VirtualMachine.objects.count():,} VMs "
        f"(built or checked in {seconds:.1f} s, SQLite in {var_dir})"
    )
    print(f"VM {vm.name} ({vm.vcpus} vCPUs, {vm.cpu_pinning_policy}) runs on {vm.host.name}.")
    target = f"{CANDIDATES_TARGET_MS:.0f} ms"
    print(f"Server time per request, {args.repeat} requests each; migration candidates target {target}\n")
    print(f"{'request':<42} {'median ms':>10} {'max ms':>8} {'queries':>8} {'KiB':>6}")
    token, _ = Token.objects.get_or_create(user=get_user_model().objects.get(username="admin"))
    client = APIClient(SERVER_NAME="localhost")  # a name ALLOWED_HOSTS holds
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    rows = scale.measure(client, [(label, url, {}) for label, url in urls(vm)], args.repeat)
    ovirt = Client(SERVER_NAME="localhost", headers={"Authorization": f"Bearer {token.key}"})
    rows += scale.measure(ovirt, [(label, url, {}) for label, url in ovirt_urls(vm)], args.repeat)
    for row in rows:
        over = "migration" in row["label"] and row["median"] > CANDIDATES_TARGET_MS
        print(
            f"{row['label']:<42} {row['median']:>10.1f} {row['max']:>8.1f} {row['queries']:>8} "
            f"{row['kib']:>6.0f}{'  over target' if over else ''}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
