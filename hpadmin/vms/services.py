"""Writes to VM configurations that the pages and the API share."""

from __future__ import annotations

from django.db import transaction

from hpadmin.inventory.models import Host

from .models import VmConfig


def save_numa_nodes(config: VmConfig, numa_nodes: list[dict], hosts: list[Host]) -> VmConfig:
    """Store a new vNUMA layout and pinning, checked by ``clean()`` against the placement hosts, under the row
    lock so that two editors do not interleave (for a running VM it waits for the next start). Raises
    ``ValidationError`` and changes nothing when refused."""
    with transaction.atomic():
        locked = type(config).objects.select_for_update().get(pk=config.pk)
        locked.apply_next_run()  # checked together with the other changes waiting for the next start
        locked.numa_nodes = numa_nodes
        locked.stage_placement_hosts(hosts)
        locked.full_clean(validate_unique=False, validate_constraints=False)
        locked.save(update_fields=["numa_nodes"])
    return locked
