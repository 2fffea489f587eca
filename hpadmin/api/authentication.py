"""API tokens that expire. The endpoint that hands them out and revokes them is ``tokens.TokenView``: a module of
its own, as this one is loaded from the settings and may not import DRF's views."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

if TYPE_CHECKING:
    from rest_framework.authtoken.models import Token


def is_expired(token: Token) -> bool:
    """Whether ``token`` is older than ``HPADMIN_TOKEN_TTL_HOURS`` (0: tokens never expire)."""
    ttl = settings.HPADMIN_TOKEN_TTL_HOURS
    return bool(ttl) and token.created < timezone.now() - timedelta(hours=ttl)


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, refusing a token that has expired. The token is deleted, so that the token
    endpoint makes a new one."""

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if is_expired(token):
            token.delete()
            raise exceptions.AuthenticationFailed("Token has expired.")
        return user, token
