"""Refusals from services and hypervisor drivers as API answers: a status code and a message, never a 500."""

from __future__ import annotations

from collections import Counter

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from hpadmin.hypervisor.base import HypervisorError
from hpadmin.operations.errors import OperationError

# A hypervisor that refuses, or does not know the object, is a conflict with its state; any other failure
# (unreachable, timed out, broken) is an upstream error.
HYPERVISOR_CONFLICTS = frozenset({"refused", "not_found"})


def hypervisor_status(exc: HypervisorError) -> int:
    return status.HTTP_409_CONFLICT if exc.kind in HYPERVISOR_CONFLICTS else status.HTTP_502_BAD_GATEWAY


def protected_message(exc: ProtectedError) -> str:
    counts = Counter(str(obj._meta.verbose_name_plural) for obj in exc.protected_objects)
    used_by = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    return f"Cannot delete it: it is still used by {used_by}."


def exception_handler(exc, context):
    """DRF's handler, plus OperationError (its own status), HypervisorError (502/409), a model's ValidationError
    (400), ProtectedError (409)."""
    if isinstance(exc, OperationError):
        body, code = {"detail": exc.message, "errors": exc.errors}, exc.status
    elif isinstance(exc, HypervisorError):
        body, code = {"detail": exc.message, "errors": {}}, hypervisor_status(exc)
    elif isinstance(exc, DjangoValidationError):  # a rule checked again under a lock, after the input's checks
        body, code = (
            {"detail": " ".join(exc.messages), "errors": getattr(exc, "message_dict", {})},
            status.HTTP_400_BAD_REQUEST,
        )
    elif isinstance(exc, ProtectedError):
        body, code = {"detail": protected_message(exc), "errors": {}}, status.HTTP_409_CONFLICT
    else:
        return drf_exception_handler(exc, context)
    set_rollback()
    return Response(body, status=code)
