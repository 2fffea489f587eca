"""Server render time of hpadmin's list pages at 1,000 hosts and 10,000 VMs (target: 150 ms a page).

Builds the inventory with ``manage.py demo --no-start --hosts 1000 --vms 10000`` into a temporary SQLite
database (``HPADMIN_VAR_DIR``), then requests every list page through Django's test client as the logged-in
admin, then as a ClusterAdmin of the scale cluster (lists narrowed by their grant), and prints the median and
slowest time, the query count and the size of each page.

    .venv/bin/python benchmarks/bench_ui.py [--hosts 1000] [--vms 10000] [--repeat 15] [--var-dir DIR]

``--var-dir`` reuses (or keeps) a database instead of building a fresh one in a temporary directory.
"""

from __future__ import annotations

import sys

import scale

TARGET_MS = 150.0


def pages() -> list[tuple[str, str, dict]]:
    from django.urls import reverse

    from hpadmin.inventory.models import Cluster, Host
    from hpadmin.vms.models import VirtualMachine

    scale = Cluster.objects.get(name="scale")
    host = Host.objects.filter(cluster=scale).order_by("-sockets", "name").first()
    vm = VirtualMachine.objects.filter(cluster=scale).order_by("name").first()
    htmx = {"HX-Request": "true"}
    vms, hosts = reverse("vm-list"), reverse("host-list")
    return [
        ("VMs, first page", vms, {}),
        ("VMs, sorted by memory, page 150", f"{vms}?sort=-memory&page=150", {}),
        ("VMs, HP in the scale cluster", f"{vms}?optimized_for=high_performance&cluster={scale.pk}", {}),
        ("VMs, name search (htmx table)", f"{vms}?q=vm0042", htmx),
        ("VMs, sorted by vCPUs (htmx table)", f"{vms}?sort=-vcpus", htmx),
        ("Hosts, first page", hosts, {}),
        ("Hosts, sorted by VM count", f"{hosts}?sort=-vms", {}),
        ("Hosts, without NUMA, last page", f"{hosts}?numa=no&page=4", {}),
        ("Clusters", reverse("cluster-list"), {}),
        ("Templates", reverse("template-list"), {}),
        ("Pools", reverse("pool-list"), {}),
        ("Jobs", reverse("job-list"), {}),
        ("Events", reverse("event-list"), {}),
        ("Overview", reverse("overview"), {}),
        ("Host page (topology)", host.get_absolute_url(), {}),
        ("VM page", vm.get_absolute_url(), {}),
    ]


def main() -> int:
    args = scale.parse_args(__doc__.splitlines()[0])
    var_dir, seconds = scale.setup(args, "hpadmin-bench-ui-")

    from django.contrib.auth import get_user_model
    from django.test import Client

    from hpadmin.access.models import Grant
    from hpadmin.access.roles import Role
    from hpadmin.inventory.models import Cluster, Host
    from hpadmin.vms.models import VirtualMachine

    print(
        f"Inventory: {Host.objects.count():,} hosts, {VirtualMachine.objects.count():,} VMs "
        f"(built or checked in {seconds:.1f} s, SQLite in {var_dir})"
    )
    print(f"Server render time per page, {args.repeat} requests each, target {TARGET_MS:.0f} ms:\n")
    print(f"{'page':<40} {'median ms':>10} {'max ms':>8} {'queries':>8} {'KiB':>6}")
    users = get_user_model().objects
    cluster_admin, _ = users.get_or_create(username="bench-cluster-admin")
    Grant.objects.get_or_create(user=cluster_admin, role=Role.CLUSTER_ADMIN, cluster=Cluster.objects.get(name="scale"))
    slow = 0
    # The system's admin sees everything; a ClusterAdmin's lists are narrowed to their cluster in the database.
    for who, user in (("admin (SuperUser)", users.get(username="admin")), ("ClusterAdmin of scale", cluster_admin)):
        print(f"-- as {who}")
        client = Client(SERVER_NAME="localhost")  # a name ALLOWED_HOSTS holds
        client.force_login(user)
        for row in scale.measure(client, pages(), args.repeat):
            verdict = "" if row["median"] <= TARGET_MS else "  over target"
            slow += bool(verdict)
            print(
                f"{row['label']:<40} {row['median']:>10.1f} {row['max']:>8.1f} {row['queries']:>8} "
                f"{row['kib']:>6.0f}{verdict}"
            )
    print(f"\n{'All pages within' if not slow else f'{slow} page(s) over'} the {TARGET_MS:.0f} ms target.")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
