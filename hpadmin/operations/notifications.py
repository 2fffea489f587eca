"""Telling people what happened to a VM: one e-mail to its owner and the admins, and a POST to the webhook of
``HPADMIN_NOTIFY_WEBHOOK_URL`` when one is set.

Both go out from a task once the caller's transaction commits, so a change that rolls back tells no one and a
slow mail server or webhook never holds a migration up. A webhook that fails is logged and the mail still goes.
The task lives here rather than in ``tasks``: the engine calls ``notify()``, and ``tasks`` imports the engine.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.request
from collections.abc import Iterable
from urllib.parse import urlsplit

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from hpadmin.vms.models import SuspendableSetting, VirtualMachine

logger = logging.getLogger(__name__)

# What a notification is about -> how its mail introduces the settings it lists.
KINDS = {
    "vm_degraded": "Suspended settings",
    "vm_restored": "Restored settings",
    "vm_restore_available": "Suspended settings",
}
WEBHOOK_TIMEOUT = 5  # seconds


def notify(kind: str, vm: VirtualMachine, subject: str, message: str, settings_list: Iterable[dict]) -> None:
    """Tell the VM's owner and the admins (and the webhook) once the current transaction commits; nothing is
    sent if it rolls back. ``settings_list`` holds ``{"setting": name, "reason": text}`` items."""
    if kind not in KINDS:
        raise ValueError(f"Unknown notification kind {kind!r}; one of {', '.join(KINDS)}.")
    labels = dict(SuspendableSetting.choices)
    payload = {
        "kind": kind,
        "vm": {"id": vm.pk, "name": vm.name, "uuid": str(vm.uuid)},
        "host": vm.host.name if vm.host_id else None,
        "subject": subject,
        "message": message,
        "suspended_settings": [
            {**item, "label": labels.get(item["setting"], item["setting"])} for item in settings_list
        ],
        "at": timezone.now().isoformat(),
    }
    # robust: a queue that cannot be reached is logged; the change it reports has committed all the same.
    transaction.on_commit(lambda: send_notification.delay(payload), robust=True)


@shared_task
def send_notification(payload: dict) -> None:
    """Send one notification ``notify()`` prepared: the webhook (which never raises), then the mail."""
    post_webhook(payload)
    send_notification_mail(payload)


def recipients(vm_id: int) -> list[str]:
    """The VM owner's address and every active admin's with one, each address once whatever its case."""
    owner = VirtualMachine.objects.filter(pk=vm_id).values_list("owner__email", flat=True).first()
    admins = get_user_model().objects.filter(is_staff=True, is_active=True).order_by("pk")
    unique: dict[str, str] = {}
    for address in [owner, *admins.values_list("email", flat=True)]:
        if address and address.strip():
            unique.setdefault(address.strip().lower(), address.strip())
    return list(unique.values())


def send_notification_mail(payload: dict) -> None:
    to = recipients(payload["vm"]["id"])
    if not to:
        return
    body = payload["message"]
    if payload["suspended_settings"]:
        lines = [f"- {item['label']}: {item['reason']}" for item in payload["suspended_settings"]]
        body += f"\n\n{KINDS[payload['kind']]}:\n" + "\n".join(lines)
    send_mail(payload["subject"], body, settings.DEFAULT_FROM_EMAIL, to)


def post_webhook(payload: dict) -> None:
    """POST the notification as JSON to ``HPADMIN_NOTIFY_WEBHOOK_URL``, if set; a failure is logged, not raised."""
    url = settings.HPADMIN_NOTIFY_WEBHOOK_URL
    if not url:
        return
    if urlsplit(url).scheme not in ("http", "https"):
        logger.error("HPADMIN_NOTIFY_WEBHOOK_URL must be an http or https URL, not %r", url)
        return
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:
            response.read()
    except (OSError, ValueError, http.client.HTTPException) as exc:
        logger.warning("notification webhook %s failed for VM %s: %s", url, payload["vm"]["name"], exc)
