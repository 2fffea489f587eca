"""Celery tasks: thin wrappers that take primary keys and call the migration engine."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready

from . import engine
from .services import dispatch_pending


@shared_task(acks_late=True)
def run_migration(job_id: int) -> str:
    """Carry out one migration job from scheduling to its outcome."""
    return engine.run_job(job_id)


@shared_task
def dispatch() -> list[int]:
    """Start waiting jobs the limits allow (also run periodically, should a start have been missed)."""
    return dispatch_pending()


@shared_task
def reconcile() -> list[int]:
    """Settle jobs whose worker died, from what the hypervisors report."""
    return engine.reconcile_orphans()


@worker_ready.connect
def _reconcile_on_start(**_kwargs) -> None:
    engine.reconcile_orphans()
    dispatch_pending()
