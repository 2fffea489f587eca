"""Failed logins are throttled on the login page and the token endpoint (django-axes: one user name from one
address), and each one is an event with the user."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from hpadmin.operations.models import Event

pytestmark = pytest.mark.django_db

PASSWORD = "pw-alice-1234"


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", password=PASSWORD, is_staff=True)


def log_in(client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def fail(client, times: int, username: str = "alice", address: str = "127.0.0.1") -> list[int]:
    return [log_in(client, username, "wrong", address).status_code for _ in range(times)]


def test_login_page_locks_a_user_name_out_from_one_address_after_five_failures(client, alice, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    assert fail(client, 4) == [200] * 4  # the form again, with its error
    assert log_in(client, "alice", PASSWORD).status_code == 302  # four failures are not a lockout
    client.logout()
    assert fail(client, 5) == [200] * 4 + [429]  # a success started the count again; the fifth failure locks
    r = log_in(client, "alice", PASSWORD)  # the right password does not help now
    assert r.status_code == 429
    page = r.content.decode()
    assert "Too many failed logins" in page and "15 minutes" in page
    assert "_auth_user_id" not in client.session


def test_a_lockout_holds_one_user_name_from_one_address(client, alice):
    get_user_model().objects.create_user("bob", password="pw-bob-1234")
    fail(client, 5)
    assert log_in(client, "alice", PASSWORD).status_code == 429
    assert log_in(client, "bob", "pw-bob-1234").status_code == 302  # another user from the same address
    client.logout()
    assert log_in(client, "alice", PASSWORD, address="10.0.0.7").status_code == 302  # alice from elsewhere


def test_a_lockout_ends_after_the_cool_off(client, alice, settings):
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    fail(client, 5)
    assert log_in(client, "alice", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))
    assert log_in(client, "alice", PASSWORD).status_code == 302


def test_the_limit_follows_the_settings(client, alice, settings):
    settings.AXES_FAILURE_LIMIT = 2
    assert fail(client, 2) == [200, 429]
    assert log_in(client, "alice", PASSWORD).status_code == 429


def token(client, username: str, password: str):
    return client.post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")


def test_token_endpoint_answers_429_json_once_locked_out(alice):
    client = APIClient()
    assert [token(client, "alice", "wrong").status_code for _ in range(5)] == [400] * 4 + [429]
    r = token(client, "alice", PASSWORD)
    assert r.status_code == 429
    assert r.json()["detail"].startswith("Too many failed logins") and r["Retry-After"] == "900"
    assert token(APIClient(REMOTE_ADDR="10.0.0.7"), "alice", PASSWORD).status_code == 200


def test_failures_on_the_page_and_the_api_count_together(client, alice):
    fail(client, 3)
    api = APIClient()
    assert [token(api, "alice", "wrong").status_code for _ in range(2)] == [400, 429]
    assert log_in(client, "alice", PASSWORD).status_code == 429


def test_every_failed_login_is_an_event_with_the_user(client, alice):
    fail(client, 1)
    token(APIClient(REMOTE_ADDR="10.0.0.9"), "alice", "wrong")
    token(APIClient(), "nobody", "wrong")
    events = list(Event.objects.filter(code="login_failed").order_by("pk"))
    assert [(e.user, e.severity) for e in events] == [(alice, "warning"), (alice, "warning"), (None, "warning")]
    assert [e.message for e in events] == [
        "Failed login as alice from 127.0.0.1.",
        "Failed login as alice from 10.0.0.9.",
        "Failed login as nobody from 127.0.0.1.",
    ]


def test_a_refused_locked_out_login_is_an_event_too(client, alice):
    fail(client, 5)
    log_in(client, "alice", PASSWORD)
    assert Event.objects.filter(code="login_failed", user=alice).count() == 6


def test_behind_a_proxy_the_address_is_the_one_the_proxy_adds(client, alice, settings):
    settings.HPADMIN_BEHIND_PROXY = True
    forwarded = {"HTTP_X_FORWARDED_FOR": "1.2.3.4, 10.0.0.5"}  # the client claimed 1.2.3.4; the proxy saw 10.0.0.5
    client.post("/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR="10.0.0.1", **forwarded)
    assert Event.objects.get(code="login_failed").message == "Failed login as alice from 10.0.0.5."
    assert AccessAttempt.objects.get().ip_address == "10.0.0.5"
