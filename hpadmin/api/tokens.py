"""``/api/v1/auth/token/``: a token for a user name and password, and its revocation."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, parsers, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

from .authentication import ExpiringTokenAuthentication, is_expired
from .parsers import JSONParser
from .serializers import ErrorSerializer


def issue_token(user) -> Token:
    """The user's token: the one they hold, or a new one once it expired. All their clients share it, so that
    revoking it signs them all out."""
    with transaction.atomic():
        token, _ = Token.objects.get_or_create(user=user)
        if is_expired(token):
            token.delete()
            token = Token.objects.create(user=user)
    return token


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send it as `Authorization: Token <key>`.")


@extend_schema_view(
    post=extend_schema(
        description="The user's token for a user name and password: the one the user holds, or a new one once it "
        "expired (after `HPADMIN_TOKEN_TTL_HOURS`). After `HPADMIN_LOGIN_FAILURES` failures of one user name from "
        "one address, that pair is locked out for `HPADMIN_LOCKOUT_MINUTES` (429).",
        request=AuthTokenSerializer,
        responses={
            200: TokenResponseSerializer,
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="Wrong user name or password, or bad input."),
            429: OpenApiResponse(ErrorSerializer, description="Too many failed logins: locked out for a while."),
        },
    ),
    delete=extend_schema(
        description="Revoke the caller's token: requests with it are refused (401) until the user signs in again.",
        request=None,
        responses={204: None},
    ),
)
class TokenView(ObtainAuthToken):
    """POST signs in for a token, DELETE revokes it. Failed sign-ins count with the login page's (django-axes)."""

    parser_classes = (JSONParser, parsers.FormParser, parsers.MultiPartParser)
    # Token first: a DELETE without credentials gets 401 rather than 403, as on every other endpoint.
    authentication_classes = [ExpiringTokenAuthentication, SessionAuthentication]

    def get_permissions(self):
        return [IsAuthenticated()] if self.request.method == "DELETE" else [AllowAny()]

    def perform_authentication(self, request) -> None:
        # Signing in takes a user name and password only: a stale token or session sent along must not refuse it.
        if request.method != "POST":
            super().perform_authentication(request)

    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            if getattr(request, "axes_locked_out", False):  # set by django-axes' authentication backend
                minutes = round(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
                detail = (
                    f"Too many failed logins: this user name is locked out from your address for {minutes} minutes."
                )
                return Response(
                    {"detail": detail, "errors": {}},
                    status=status.HTTP_429_TOO_MANY_REQUESTS,
                    headers={"Retry-After": str(minutes * 60)},
                )
            raise exceptions.ValidationError(serializer.errors)
        return Response({"token": issue_token(serializer.validated_data["user"]).key})

    def delete(self, request, *args, **kwargs):
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
