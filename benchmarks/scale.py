"""What the request benchmarks share: a large demo inventory in its own SQLite database, and timing requests
through Django's test client (median and slowest server time, query count, answer size)."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--vms", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=15, help="Timed requests per URL.")
    parser.add_argument("--var-dir", help="Keep (or reuse) the database in this directory instead of a temporary one.")
    return parser.parse_args()


def setup(args: argparse.Namespace, prefix: str) -> tuple[str, float]:
    """Point Django at the benchmark's database, build the inventory; returns the directory and the seconds taken."""
    var_dir = args.var_dir or tempfile.mkdtemp(prefix=prefix)
    Path(var_dir).mkdir(parents=True, exist_ok=True)
    os.environ["HPADMIN_VAR_DIR"] = var_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hpadmin.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    with open(os.devnull, "w") as quiet:
        call_command("demo", "--no-start", "--hosts", str(args.hosts), "--vms", str(args.vms), stdout=quiet)
    return var_dir, time.perf_counter() - started


def measure(client, requests: list[tuple[str, str, dict]], repeat: int) -> list[dict]:
    """Time each (label, url, headers) GET after one warm-up request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    results = []
    for label, url, headers in requests:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
        with CaptureQueriesContext(connection) as queries:
            client.get(url, headers=headers)
        query_count = len(queries)  # read now: the next request clears the connection's query log
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(url, headers=headers)
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
