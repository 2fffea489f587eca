"""Refusals of the operations layer, with the status an HTTP face answers them with."""

from __future__ import annotations

QUEUE_UNREACHABLE = "The task queue is unreachable; nothing was changed. Try again when it is back."


class OperationError(Exception):
    """A refused action. ``errors`` maps a field (or a VM name) to messages; ``status`` is 400 for bad input,
    409 when the VM's or host's state does not allow it and 503 when the task queue cannot be reached."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}
        self.status = status
