"""Server time of the REST API at 1,000 hosts and 10,000 VMs: migration candidates (target: 150 ms) and lists.

Builds the inventory with ``manage.py demo --no-start --hosts 1000 --vms 10000`` into a temporary SQLite
database (``HPADMIN_VAR_DIR``), starts one High Performance VM of the 1,000-host cluster, then sends each request
through Django's test client with an admin token and prints the median and slowest time, the query count and
the size of each answer. It prints figures; it is not a test.

    .venv/bin/python benchmarks/bench_api.py [--hosts 1000] [--vms 10000] [--repeat 15] [--var-dir DIR]

``--var-dir`` reuses (or keeps) a database instead of building a fresh one in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES_TARGET_MS = 150.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--vms", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=15, help="Timed requests per URL.")
    parser.add_argument("--var-dir", help="Use this directory for the database instead of a temporary one.")
    return parser.parse_args()


def setup_django(var_dir: str) -> None:
    os.environ["HPADMIN_VAR_DIR"] = var_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hpadmin.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def build(hosts: int, vms: int) -> float:
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    with open(os.devnull, "w") as quiet:
        call_command("demo", "--no-start", "--hosts", str(hosts), "--vms", str(vms), stdout=quiet)
    return time.perf_counter() - started


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


def measure(vm, repeat: int) -> list[dict]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    token, _ = Token.objects.get_or_create(user=get_user_model().objects.get(username="admin"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    results = []
    for label, url in urls(vm):
        response = client.get(url)  # warm up
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        query_count = len(queries)
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        results.append(
            {
                "label": label,
                "median": statistics.median(times),
                "max": max(times),
                "queries": query_count,
                "kib": len(response.content) / 1024,
            }
        )
    return results


def main() -> int:
    args = parse_args()
    var_dir = args.var_dir or tempfile.mkdtemp(prefix="hpadmin-bench-api-")
    Path(var_dir).mkdir(parents=True, exist_ok=True)
    setup_django(var_dir)
    seconds = build(args.hosts, args.vms)

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
    for row in measure(vm, args.repeat):
        over = row["label"].startswith("migration candidates") and row["median"] > CANDIDATES_TARGET_MS
        print(
            f"{row['label']:<42} {row['median']:>10.1f} {row['max']:>8.1f} {row['queries']:>8} "
            f"{row['kib']:>6.0f}{'  over target' if over else ''}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
