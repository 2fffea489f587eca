"""Signing in as oVirt's clients do: the SSO token endpoint and its logout, bearer tokens, and HTTP basic.

Tokens are the v1 API's: one per user, expiring after ``HPADMIN_TOKEN_TTL_HOURS``, and revoked for all the
user's clients at once. oVirt's user names carry a profile (``admin@internal``); hpadmin's have none, so the
profile is dropped unless a user of the whole name exists. Failed sign-ins count with the login page's.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from rest_framework import authentication, parsers, renderers, status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from hpadmin.api.authentication import ExpiringTokenAuthentication
from hpadmin.api.tokens import issue_token

SCOPE = "ovirt-app-api"


def local_username(name: str) -> str:
    """``admin@internal`` -> ``admin``, unless a user is called ``admin@internal``."""
    if "@" not in name or get_user_model().objects.filter(username=name).exists():
        return name
    return name.rpartition("@")[0]


class BearerAuthentication(ExpiringTokenAuthentication):
    keyword = "Bearer"


class BasicAuthentication(authentication.BasicAuthentication):
    www_authenticate_realm = "hpadmin"

    def authenticate_credentials(self, userid, password, request=None):
        return super().authenticate_credentials(local_username(userid), password, request)


def sso_error(code: str, message: str, status_code: int) -> Response:
    return Response({"error_code": code, "error": message}, status=status_code)


class SsoView(APIView):
    """The SSO endpoints answer JSON, errors included, as the SDK reads them."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [parsers.FormParser, parsers.MultiPartParser]
    renderer_classes = [renderers.JSONRenderer]
    schema = None

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        response.data = {"error_code": "invalid_request", "error": str(detail)}
        return response


class SsoTokenView(SsoView):
    """``POST /ovirt-engine/sso/oauth/token``: ``grant_type=password``, ``username``, ``password`` and
    ``scope=ovirt-app-api`` give ``access_token``, sent then as ``Authorization: Bearer``."""

    def post(self, request):
        data = request.data
        if data.get("grant_type") != "password":
            return sso_error("unsupported_grant_type", "hpadmin signs in with grant_type=password.", 400)
        if SCOPE not in str(data.get("scope", "")).split():
            return sso_error("invalid_scope", f"Ask for the scope {SCOPE}.", 400)
        username = local_username(str(data.get("username", "")))
        user = authenticate(request, username=username, password=str(data.get("password", "")))
        if user is None:
            if getattr(request, "axes_locked_out", False):  # set by django-axes' authentication backend
                minutes = round(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
                message = f"Too many failed logins: this user name is locked out from your address for {minutes} min."
                return sso_error("access_denied", message, status.HTTP_429_TOO_MANY_REQUESTS)
            return sso_error("access_denied", "Cannot authenticate user: wrong user name or password.", 401)
        token = issue_token(user)
        body = {"access_token": token.key, "token_type": "bearer", "scope": SCOPE}
        if settings.HPADMIN_TOKEN_TTL_HOURS:
            expires = token.created.timestamp() + settings.HPADMIN_TOKEN_TTL_HOURS * 3600
            body["exp"] = str(int(expires * 1000))
        return Response(body)


class SsoLogoutView(SsoView):
    """``POST /ovirt-engine/services/sso-logout`` with ``token``: the token is revoked (the SDK's ``close()``)."""

    def post(self, request):
        Token.objects.filter(key=str(request.data.get("token", ""))).delete()
        return Response({})
