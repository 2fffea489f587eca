"""Which driver serves a host URI: the table ``settings.HPADMIN_DRIVERS`` maps URI schemes to driver classes."""

from __future__ import annotations

import functools

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string

from .base import Driver


@functools.cache
def _driver(path: str) -> Driver:
    # One instance per process: the libvirt driver keeps its connections there.
    return import_string(path)()


def get_driver(uri: str) -> Driver:
    """The driver for a host URI: ``sim://...`` is simulated, libvirt URIs go to libvirt."""
    scheme = uri.partition(":")[0].lower()
    path = settings.HPADMIN_DRIVERS.get(scheme)
    if path is None:
        schemes = ", ".join(f"{name}://" for name in settings.HPADMIN_DRIVERS)
        raise ValueError(f"Unsupported hypervisor URI {uri!r}: use one of {schemes}")
    return _driver(path)


def validate_host_uri(uri: str) -> None:
    """A host URI hpadmin may connect to: a known scheme whose driver accepts its transport and parameters
    (a URI is handed to libvirt, and some of its parameters run programs). Raises ValidationError."""
    try:
        get_driver(uri).check_uri(uri)
    except ValueError as exc:
        raise ValidationError(str(exc), code="invalid") from None
