"""Celery tasks: thin wrappers that take primary keys and call the engine or the watchdog; and the hand-over
of admitted jobs to workers."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError

from . import dispatch, engine, events, watchdog
from .errors import QUEUE_UNREACHABLE, OperationError
from .models import JobState, MigrationJob, Severity
from .notifications import send_notification  # noqa: F401  (it lives beside notify(); workers load it from here)

logger = logging.getLogger(__name__)


def dispatch_pending() -> list[int]:
    """Start the waiting jobs the concurrency limits allow; each goes to a worker once its admission commits.

    Raises OperationError (503) when the task queue cannot be reached: the job that could not be handed over
    has failed, and nothing else changed."""
    with transaction.atomic():
        admitted = dispatch.admit_waiting()
        for pk in admitted:
            transaction.on_commit(lambda pk=pk: _hand_over(pk))
    return admitted


def _hand_over(job_id: int) -> None:
    try:
        run_migration.delay(job_id)
    except BrokerError as exc:
        logger.error("cannot enqueue migration job %s: %s", job_id, exc)
        job = MigrationJob.objects.select_related("vm").get(pk=job_id)
        if job.move(JobState.SCHEDULING, JobState.FAILED, error=QUEUE_UNREACHABLE):
            message = f"Migration of VM {job.vm.name} could not start: {QUEUE_UNREACHABLE}"
            events.record("vm_migration_failed", message, severity=Severity.ERROR, vm=job.vm, job=job)
        raise OperationError(QUEUE_UNREACHABLE, status=503) from None


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
def watch() -> list[int]:
    """Settle what no worker will finish (see ``watchdog``)."""
    return watchdog.run()


@worker_ready.connect
def _settle_on_start(**_kwargs) -> None:
    watchdog.run()
    dispatch_pending()
