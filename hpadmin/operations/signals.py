"""Signals of the operations layer, for what follows an operation without the operation knowing it."""

from __future__ import annotations

from django.dispatch import Signal

#: A migration job's run ended, whatever the outcome; ``job`` is the MigrationJob as the run loaded it.
job_ended = Signal()
