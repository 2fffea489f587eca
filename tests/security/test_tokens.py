"""API tokens expire after HPADMIN_TOKEN_TTL_HOURS and can be revoked; the token endpoint then gives a new one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

PASSWORD = "pw-carol-1234"


@pytest.fixture
def carol(db):
    return get_user_model().objects.create_user("carol", password=PASSWORD, is_staff=True)


def with_token(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def made_hours_ago(token: Token, hours: float) -> None:
    Token.objects.filter(pk=token.pk).update(created=timezone.now() - timedelta(hours=hours))


def obtain(username: str = "carol", password: str = PASSWORD) -> str:
    r = APIClient().post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")
    assert r.status_code == 200, r.content
    return r.json()["token"]


def test_tokens_last_720_hours_by_default(carol, settings):
    assert settings.HPADMIN_TOKEN_TTL_HOURS == 720
    token = Token.objects.create(user=carol)
    made_hours_ago(token, 719)
    assert with_token(token.key).get("/api/v1/clusters/").status_code == 200


def test_an_expired_token_is_refused_and_deleted(carol):
    token = Token.objects.create(user=carol)
    made_hours_ago(token, 721)
    r = with_token(token.key).get("/api/v1/clusters/")
    assert r.status_code == 401 and r.json() == {"detail": "Token has expired."}
    assert not Token.objects.filter(key=token.key).exists()


def test_signing_in_again_replaces_an_expired_token(carol):
    old = Token.objects.create(user=carol)
    made_hours_ago(old, 721)
    new = obtain()
    assert new != old.key
    assert with_token(new).get("/api/v1/clusters/").status_code == 200


def test_signing_in_keeps_a_valid_token(carol):
    assert obtain() == obtain()


def test_a_stale_token_sent_along_does_not_stop_signing_in(carol):
    old = Token.objects.create(user=carol)
    made_hours_ago(old, 721)
    r = with_token(old.key).post("/api/v1/auth/token/", {"username": "carol", "password": PASSWORD}, format="json")
    assert r.status_code == 200


def test_the_lifetime_follows_the_settings_and_zero_means_forever(carol, settings):
    token = Token.objects.create(user=carol)
    made_hours_ago(token, 3)
    settings.HPADMIN_TOKEN_TTL_HOURS = 2
    assert with_token(token.key).get("/api/v1/clusters/").status_code == 401
    token = Token.objects.create(user=carol)
    made_hours_ago(token, 24 * 365 * 10)
    settings.HPADMIN_TOKEN_TTL_HOURS = 0
    assert with_token(token.key).get("/api/v1/clusters/").status_code == 200


def test_delete_revokes_the_callers_token(carol):
    key = obtain()
    client = with_token(key)
    assert client.delete("/api/v1/auth/token/").status_code == 204
    r = client.get("/api/v1/clusters/")
    assert r.status_code == 401 and r.json() == {"detail": "Invalid token."}
    assert obtain() != key


def test_delete_without_credentials_is_401(carol):
    key = obtain()
    assert APIClient().delete("/api/v1/auth/token/").status_code == 401
    assert Token.objects.filter(key=key).exists()


def test_the_schema_documents_both_operations(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operations = schema["paths"]["/api/v1/auth/token/"]
    assert set(operations["post"]["responses"]) == {"200", "400", "429"}
    assert set(operations["delete"]["responses"]) == {"204"}
