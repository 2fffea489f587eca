"""Notifications about a VM (running degraded, settings restored): one mail to its owner and the active admins
with an address, and a JSON POST to the configured webhook, sent once the transaction commits; a webhook that
fails is logged and the mail still goes."""

import json
import logging
import socket
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import transaction
from django.utils import timezone

from hpadmin.operations.notifications import notify
from hpadmin.vms.models import VirtualMachine
from tests.factories import make_cluster, make_host, make_vm

pytestmark = pytest.mark.django_db

SUSPENDED = [
    {"setting": "numa_pinning", "reason": "the host does not support NUMA"},
    {"setting": "hugepages", "reason": "the host has no 2 MiB pages"},
]


class Webhook:
    """A real HTTP server on 127.0.0.1 that keeps what is POSTed to it and answers ``status``."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, dict]] = []
        self.status = 204
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/hpadmin"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def webhook(settings):
    hook = Webhook()
    settings.HPADMIN_NOTIFY_WEBHOOK_URL = hook.url
    yield hook
    hook.close()


@pytest.fixture
def users(db):
    make = get_user_model().objects.create_user
    return {
        "owner": make("olga", email="olga@example.org"),
        "admin": make("alice", email="alice@example.org", is_staff=True),
        "admin_without_address": make("bob", is_staff=True),
        "former_admin": make("carol", email="carol@example.org", is_staff=True, is_active=False),
        "user": make("dave", email="dave@example.org"),
    }


@pytest.fixture
def vm(users):
    cluster = make_cluster("c1")
    host = make_host(cluster, "h2", numa_nodes=0)
    vm = make_vm(cluster, name="db", owner=users["owner"])
    VirtualMachine.objects.filter(pk=vm.pk).update(host=host)
    vm.refresh_from_db()
    return vm


def send(vm, kind="vm_degraded", settings_list=SUSPENDED):
    notify(kind, vm, f"VM {vm.name} runs degraded", f"VM {vm.name} moved to h2 without some settings.", settings_list)


def test_mail_goes_to_the_owner_and_the_active_admins_once_committed(
    vm, users, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        send(vm)
        assert mail.outbox == []
    for callback in callbacks:
        callback()
    [message] = mail.outbox
    assert sorted(message.to) == ["alice@example.org", "olga@example.org"]
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    assert message.subject == "VM db runs degraded"
    assert message.body == (
        "VM db moved to h2 without some settings.\n\n"
        "Suspended settings:\n"
        "- NUMA pinning: the host does not support NUMA\n"
        "- Hugepages: the host has no 2 MiB pages"
    )


def test_an_owner_who_is_an_admin_gets_one_mail(vm, users, django_capture_on_commit_callbacks):
    VirtualMachine.objects.filter(pk=vm.pk).update(owner=users["admin"])
    users["admin_without_address"].email = "ALICE@example.org"
    users["admin_without_address"].save()
    with django_capture_on_commit_callbacks(execute=True):
        send(vm, kind="vm_restored")
    [message] = mail.outbox
    assert message.to == ["alice@example.org"]
    assert "Restored settings:\n- NUMA pinning" in message.body


def test_no_mail_when_nobody_has_an_address(vm, users, webhook, django_capture_on_commit_callbacks):
    get_user_model().objects.filter(is_staff=True).update(email="")
    VirtualMachine.objects.filter(pk=vm.pk).update(owner=None)
    with django_capture_on_commit_callbacks(execute=True):
        send(vm)
    assert mail.outbox == []
    assert len(webhook.received) == 1


def test_the_webhook_receives_the_notification_as_json(vm, webhook, django_capture_on_commit_callbacks):
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        send(vm)
    [(path, content_type, body)] = webhook.received
    assert (path, content_type) == ("/hooks/hpadmin", "application/json")
    at = datetime.fromisoformat(body.pop("at"))
    assert before <= at <= timezone.now()
    assert body == {
        "kind": "vm_degraded",
        "vm": {"id": vm.pk, "name": "db", "uuid": str(vm.uuid)},
        "host": "h2",
        "subject": "VM db runs degraded",
        "message": "VM db moved to h2 without some settings.",
        "suspended_settings": [
            {"setting": "numa_pinning", "reason": "the host does not support NUMA", "label": "NUMA pinning"},
            {"setting": "hugepages", "reason": "the host has no 2 MiB pages", "label": "Hugepages"},
        ],
    }
    assert len(mail.outbox) == 1


def test_a_vm_on_no_host_is_sent_with_host_null(vm, webhook, django_capture_on_commit_callbacks):
    VirtualMachine.objects.filter(pk=vm.pk).update(host=None)
    vm.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        send(vm, kind="vm_restore_available")
    [(_, _, body)] = webhook.received
    assert body["host"] is None and body["kind"] == "vm_restore_available"


def test_a_webhook_that_refuses_connections_is_logged_and_the_mail_still_goes(
    vm, settings, caplog, django_capture_on_commit_callbacks
):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        settings.HPADMIN_NOTIFY_WEBHOOK_URL = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
        with caplog.at_level(logging.WARNING, logger="hpadmin.operations.notifications"):
            with django_capture_on_commit_callbacks(execute=True):
                send(vm)
    assert len(mail.outbox) == 1
    assert "notification webhook" in caplog.text and "db" in caplog.text and "refused" in caplog.text.lower()


def test_a_webhook_answering_an_error_is_logged_and_the_mail_still_goes(
    vm, webhook, caplog, django_capture_on_commit_callbacks
):
    webhook.status = 500
    with caplog.at_level(logging.WARNING, logger="hpadmin.operations.notifications"):
        with django_capture_on_commit_callbacks(execute=True):
            send(vm)
    assert len(webhook.received) == 1 and len(mail.outbox) == 1
    assert "500" in caplog.text


def test_nothing_is_sent_when_the_transaction_rolls_back(vm, webhook, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            send(vm)
            raise RuntimeError("the migration failed after all")
    assert callbacks == [] and mail.outbox == [] and webhook.received == []


def test_without_a_webhook_url_only_the_mail_goes(vm, settings, django_capture_on_commit_callbacks):
    settings.HPADMIN_NOTIFY_WEBHOOK_URL = ""
    with django_capture_on_commit_callbacks(execute=True):
        send(vm)
    assert len(mail.outbox) == 1


def test_an_unknown_kind_is_a_programming_error(vm):
    with pytest.raises(ValueError, match="vm_exploded"):
        send(vm, kind="vm_exploded")
