"""Who is asking: the client's address, as hpadmin records and throttles it."""

from __future__ import annotations

from django.conf import settings


def client_ip(request) -> str | None:
    """The client's IP address. Behind a proxy (``HPADMIN_BEHIND_PROXY``) it is the last address of
    X-Forwarded-For, the one the proxy added: those before it are whatever the client sent."""
    if settings.HPADMIN_BEHIND_PROXY:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if forwarded[-1]:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR")
