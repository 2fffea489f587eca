"""Which driver serves a host URI: the table ``settings.HPADMIN_DRIVERS`` maps URI schemes to driver classes."""

from __future__ import annotations

import functools

from django.conf import settings
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
