"""Errors as oVirt answers them: ``<fault><reason>Operation Failed</reason><detail>[...]</detail></fault>`` with
oVirt's status codes (400 bad input, 404 unknown or out of view, 409 refused by the state of things).

The status and the message are those of the v1 API's exception handler, so both faces refuse alike.
"""

from __future__ import annotations

from typing import Any

from django.utils.encoding import force_str

from hpadmin.api.exceptions import exception_handler

from .representation import Document

REASONS = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
}


def messages(data: Any, path: str = "") -> list[str]:
    """The v1 handler's answer (``detail`` and per-field ``errors``, or DRF's field errors) as lines of text."""
    if isinstance(data, dict):
        if "detail" in data and set(data) <= {"detail", "errors"}:
            detail = force_str(data["detail"])
            errors = messages(data.get("errors") or {}, path)
            return [detail, *(line for line in errors if line.rpartition(": ")[2] not in detail)]
        return [line for key, value in data.items() for line in messages(value, f"{path}{key}." if key else path)]
    if isinstance(data, list):
        return [line for item in data for line in messages(item, path)]
    text = force_str(data)
    name = path.rstrip(".")
    return [f"{name}: {text}" if name and name != "non_field_errors" else text]


def fault(status: int, detail: str) -> Document:
    return Document("fault", {"reason": REASONS.get(status, "Operation Failed"), "detail": f"[{detail}]"})


def fault_handler(exc, context):
    response = exception_handler(exc, context)
    if response is not None:
        response.data = fault(response.status_code, " ".join(messages(response.data)))
    return response
