"""Celery tasks: thin wrappers that take primary keys and call the migration engine; and the hand-over of
admitted jobs to workers."""

from __future__ import annotations

from functools import partial

from celery import shared_task
from celery.signals import worker_ready
from django.db import transaction

from . import dispatch, engine


def dispatch_pending() -> list[int]:
    """Start the waiting jobs the concurrency limits allow; each goes to a worker once its admission commits."""
    with transaction.atomic():
        admitted = dispatch.admit_waiting()
        for pk in admitted:
            transaction.on_commit(partial(run_migration.delay, pk))
    return admitted


@shared_task(acks_late=True)
def run_migration(job_id: int) -> str:
    """Carry out one migration job from scheduling to its outcome, then start what its end made room for."""
    try:
        return engine.run_job(job_id)
    finally:
        dispatch_pending()


@shared_task
def dispatch_waiting() -> list[int]:
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
