"""The concurrency limits of migrations: which waiting jobs may start now.

At most HPADMIN_MAX_MIGRATIONS_PER_HOST migrations leave or enter a host and HPADMIN_MAX_MIGRATIONS_PER_CLUSTER
run in a cluster; jobs start in the order they were asked for. Handing the admitted jobs to workers is
``tasks.dispatch_pending``'s part; a destination the scheduler chooses is held to the limit when it is
claimed (``scheduler.services.claim``'s ``max_incoming``).
"""

from __future__ import annotations

from collections import Counter

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import JobState, MigrationJob


def admit_waiting() -> list[int]:
    """Move the waiting jobs the limits allow from pending to scheduling; their ids, oldest first."""
    per_host = settings.HPADMIN_MAX_MIGRATIONS_PER_HOST
    per_cluster = settings.HPADMIN_MAX_MIGRATIONS_PER_CLUSTER
    admitted: list[int] = []
    with transaction.atomic(savepoint=False):
        waiting = list(
            MigrationJob.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(state=JobState.PENDING)
            .select_related("vm")
            .order_by("created_at", "pk")
        )
        if not waiting:
            return admitted
        outgoing: Counter = Counter()
        incoming: Counter = Counter()
        clusters: Counter = Counter()
        for source, destination, requested, cluster in MigrationJob.objects.running().values_list(
            "source", "destination", "requested_destination", "vm__cluster"
        ):
            outgoing[source] += 1
            clusters[cluster] += 1
            if destination or requested:
                incoming[destination or requested] += 1
        for job in waiting:
            cluster = job.vm.cluster_id
            dest = job.requested_destination_id
            if outgoing[job.source_id] >= per_host or clusters[cluster] >= per_cluster:
                continue
            if dest is not None and incoming[dest] >= per_host:
                continue
            # The heartbeat starts now: a job no worker takes up is settled by the watchdog.
            if job.move(JobState.PENDING, JobState.SCHEDULING, heartbeat_at=timezone.now()):
                outgoing[job.source_id] += 1
                clusters[cluster] += 1
                if dest is not None:
                    incoming[dest] += 1
                admitted.append(job.pk)
    return admitted
