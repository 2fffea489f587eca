"""Load balancing, oVirt's cluster scheduling policies: every minute (beat) the CPU load of the up hosts of each
cluster with a policy is read through their drivers and kept on the host with since when it has been above high
or below low utilization; then at most one VM of the cluster migrates, as ``scheduler.core.balancing`` decides:
off a host over-utilized for the over-utilization duration (evenly distributed and power saving), or off a host
under-utilized that long (power saving, which empties it). A cluster whose policy is none moves nothing and keeps
no loads.

Only VMs that automation may move take part (``VirtualMachine.automatic_migration_refusal``: "Allow manual and
automatic migration", and an HP or pinned VM only where its cluster allows automatic migration of High Performance
VMs). A VM with a migration in flight stays where it is, and a cluster whose balancing migration is still under
way is left alone, so moves do not pile up. The move is a migration job of reason "Load balancing" without a
user (the system initiated it), made by ``services.migrate_vms`` like any other: the concurrency limits and the
engine apply, and should the planned destination fail the scheduler chooses again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from hpadmin.hypervisor.base import HypervisorError
from hpadmin.hypervisor.registry import get_driver
from hpadmin.inventory.models import Cluster, Host, HostStatus, SchedulingPolicy
from hpadmin.vms.models import VirtualMachine, VmStatus
from scheduler import services as scheduling

from .errors import OperationError
from .models import MigrationJob, MigrationReason
from .services import migrate_vms

logger = logging.getLogger(__name__)

_LOAD_FIELDS = ["cpu_load_percent", "high_load_since", "low_load_since"]


@shared_task
def balance_load() -> list[int]:
    """Beat's task: one balancing round; the ids of the migration jobs it asked for."""
    return [job.pk for job in run()]


def run() -> list[MigrationJob]:
    """One round over every cluster: each cluster with a policy reads its loads and moves at most one VM; the
    hosts of the others forget theirs, which no policy reads and the scheduler would otherwise weigh stale."""
    Host.objects.filter(cluster__scheduling_policy=SchedulingPolicy.NONE).exclude(cpu_load_percent=None).update(
        **dict.fromkeys(_LOAD_FIELDS)
    )
    jobs = []
    for cluster in Cluster.objects.exclude(scheduling_policy=SchedulingPolicy.NONE).order_by("name"):
        if (job := balance_cluster(cluster)) is not None:
            jobs.append(job)
    return jobs


def balance_cluster(cluster: Cluster) -> MigrationJob | None:
    """Read the cluster's loads, then ask for the one migration its policy makes now, if any."""
    lasting = read_loads(cluster, timezone.now())
    if _balancing(cluster).exists():
        return None
    in_flight = MigrationJob.objects.active().values("vm")
    running = (
        VirtualMachine.objects.filter(cluster=cluster, status=VmStatus.UP, host__status=HostStatus.UP)
        .exclude(pk__in=in_flight)
        .select_related("cluster")
        .order_by("pk")
    )
    vms = [vm for vm in running if not vm.automatic_migration_refusal()]
    if not vms:
        return None
    move, hosts = scheduling.plan_balance(cluster, vms, lasting)
    if move is None:
        return None
    vm = next(vm for vm in vms if vm.pk == move.vm_id)
    try:
        with transaction.atomic():
            # Two rounds at once (a slow load reading) must not both move a VM: the cluster's row orders them.
            Cluster.objects.select_for_update(no_key=True).filter(pk=cluster.pk).first()
            if _balancing(cluster).exists():
                return None
            (job,) = migrate_vms(
                [vm],
                planned={vm.pk: hosts[move.host_id]},
                reason=MigrationReason.BALANCING,
                reason_text=move.reason[:1].upper() + move.reason[1:],
            )
    except OperationError as exc:  # the VM changed meanwhile (stopped, migrated by a user, ...)
        logger.info("load balancing of cluster %s left VM %s: %s", cluster.name, vm.name, exc.message)
        return None
    return job


def read_loads(cluster: Cluster, now: datetime) -> set[int]:
    """Read the CPU load of every up host of ``cluster`` through its driver and store it with since when the host
    has been above high or below low utilization (a host that is not up, or does not answer, has none). Returns
    the ids of the hosts beyond a threshold for the cluster's over-utilization duration."""
    hosts = list(Host.objects.filter(cluster=cluster).order_by("pk"))
    long_ago = now - timedelta(minutes=cluster.over_utilization_minutes)
    lasting = set()
    for host in hosts:
        load = None
        if host.status == HostStatus.UP:
            try:
                load = get_driver(host.uri).cpu_load(host.uri)
            except HypervisorError as exc:
                logger.warning("cannot read the CPU load of host %s: %s", host.name, exc.message)
        over = load is not None and load > cluster.high_utilization
        under = load is not None and load < cluster.low_utilization
        host.cpu_load_percent = load
        host.high_load_since = (host.high_load_since or now) if over else None
        host.low_load_since = (host.low_load_since or now) if under else None
        since = host.high_load_since or host.low_load_since
        if since is not None and since <= long_ago:
            lasting.add(host.pk)
    Host.objects.bulk_update(hosts, _LOAD_FIELDS)
    return lasting


def _balancing(cluster: Cluster):
    return MigrationJob.objects.active().filter(reason=MigrationReason.BALANCING, vm__cluster=cluster)
