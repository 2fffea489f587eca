"""The access rules as views use them: who may enter the administration portal, what an object lookup may find."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from .policy import CLUSTER_PATH, Access
from .roles import Permit


def access_of(request) -> Access:
    """The user's access, computed once per request."""
    access = getattr(request, "_hpadmin_access", None)
    if access is None or access.user_id != request.user.pk:
        access = request._hpadmin_access = Access.of(request.user)
    return access


def admin_required(view):
    """Signed-in holders of an admin role; the others (portal users) get 403 with the way to their portal."""

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not access_of(request).is_admin:
            raise PermissionDenied("This page is for administrators; your VMs are in the user portal.")
        return view(request, *args, **kwargs)

    return wrapper


def require(request, permit: Permit, obj: Model | None = None) -> None:
    """403 unless the user holds ``permit`` on ``obj`` (on the system when None)."""
    if not access_of(request).can(permit, obj):
        raise PermissionDenied(f"You may not do this ({permit.replace('_', ' ')}).")


def get_visible(request, queryset: QuerySet, permit: Permit | None = None, **lookup) -> Model:
    """The object ``lookup`` finds among those the user may see (else 404); with ``permit``, 403 unless the user
    holds it on the object."""
    obj = get_object_or_404(access_of(request).scope(queryset), **lookup)
    if permit is not None:
        require(request, permit, obj)
    return obj


def get_visible_all(request, queryset: QuerySet, pks: list[str]) -> list[Model]:
    """The objects of ids ``pks`` (as a query string gives them; what does not parse is left to the form), 404
    unless the user may see every one."""
    wanted = {int(pk) for pk in pks if str(pk).isdigit()}
    found = list(access_of(request).scope(queryset).filter(pk__in=wanted))
    if len(found) != len(wanted):
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.")
    return found


def limit_choices(form, request, **permits: Permit):
    """Narrow ``form``'s model choices to what the user may see, or for the fields named in ``permits``, to what
    they hold that permit on: a choice outside them is neither shown nor accepted. Returns the form."""
    access = access_of(request)
    for name, field in form.fields.items():
        queryset = getattr(field, "queryset", None)
        if queryset is not None and queryset.model in CLUSTER_PATH:
            field.queryset = access.scope(queryset, permits.get(name, Permit.VIEW))
    return form
