"""Failed logins, on the login page and the API's token endpoint alike, go to the audit trail."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver

from hpadmin.utilities.clients import client_ip

from . import events
from .models import Severity

USERNAME_SHOWN = 150  # the longest user name Django's user model holds


@receiver(user_login_failed, dispatch_uid="hpadmin.operations.logins")
def record_login_failure(sender, credentials: dict, request=None, **kwargs) -> None:
    """A warning naming the user name tried and the address it came from, with the user when the name is one."""
    model = get_user_model()
    username = str(credentials.get(model.USERNAME_FIELD) or "").replace("\x00", "")[:USERNAME_SHOWN]
    user = model._default_manager.filter(**{model.USERNAME_FIELD: username}).first() if username else None
    address = (client_ip(request) if request is not None else None) or "an unknown address"
    events.record(
        "login_failed",
        f"Failed login as {username or '(no user name)'} from {address}.",
        severity=Severity.WARNING,
        user=user,
    )
