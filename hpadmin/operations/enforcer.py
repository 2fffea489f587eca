"""The affinity enforcer, oVirt's AffinityRulesEnforcer: every minute (beat), in each cluster with affinity groups,
the group of highest priority (enforcing before soft) whose rules its running VMs break gets one VM moved: the
first of them that automation may move (``VirtualMachine.automatic_migration_refusal``) and for which the
scheduler's choice keeps the group's rules. One move per cluster per run, none while the cluster's last one is
under way, so moves do not pile up; the job has reason "Affinity" and no user.
"""

from __future__ import annotations

import logging

from celery import shared_task

from hpadmin.inventory.models import Cluster, Host
from hpadmin.vms.models import VirtualMachine, VmStatus
from scheduler import services as scheduling
from scheduler import snapshot
from scheduler.core.affinity import broken_members, repairs

from .errors import OperationError
from .models import ACTIVE_JOB_STATES, MigrationJob, MigrationReason
from .services import migrate_vms

logger = logging.getLogger(__name__)


@shared_task
def enforce_affinity() -> list[int]:
    """One repairing move per cluster; returns the ids of the VMs moved."""
    moved = []
    for cluster in Cluster.objects.exclude(affinity_changed_at=None):
        if MigrationJob.objects.filter(vm__cluster=cluster, reason=MigrationReason.AFFINITY).active().exists():
            continue
        if (vm := _repair(cluster)) is not None:
            moved.append(vm.pk)
    return moved


def _repair(cluster: Cluster) -> VirtualMachine | None:
    groups = sorted(
        snapshot.affinity_groups(cluster),
        key=lambda g: (not (g.vm_enforcing or g.host_enforcing), -g.priority, g.name),
    )
    running = {
        vm.pk: vm
        for vm in VirtualMachine.objects.filter(cluster=cluster, status=VmStatus.UP, host__isnull=False)
        .exclude(migration_jobs__state__in=ACTIVE_JOB_STATES)
        .select_related("cluster", "host")
    }
    where = {pk: vm.host_id for pk, vm in running.items()}
    for group in groups:
        for vm_id in broken_members(group, where):
            vm = running.get(vm_id)
            if vm is None or vm.automatic_migration_refusal():
                continue
            decision, _ = scheduling.decide(vm, action="migrate")
            if decision.chosen is None or not repairs(group, vm_id, decision.chosen, where):
                continue
            try:
                migrate_vms(
                    [vm],
                    planned={vm.pk: Host.objects.get(pk=decision.chosen)},
                    reason=MigrationReason.AFFINITY,
                    reason_text=f"affinity group {group.name}",
                )
            except OperationError as exc:  # taken by a user's action meanwhile: the next run looks again
                logger.info("affinity enforcer, %s: %s", vm.name, exc.message)
                continue
            return vm
    return None
