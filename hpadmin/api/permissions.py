"""Who may do what through the API: the roles of ``hpadmin.access``, as the pages apply them."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from hpadmin.access.roles import Permit
from hpadmin.access.shortcuts import access_of


class HasPermit(BasePermission):
    """Signed-in users; each object answers only to those holding the permit its action needs (``permit_for``).
    What a user may not see is not in the view's queryset at all, so it answers 404."""

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        # What only the system's administrators create (clusters, labels, quotas) is refused before it is read.
        return (
            view.action != "create"
            or view.permit_for(request) != Permit.MANAGE_SYSTEM
            or (access_of(request).can(Permit.MANAGE_SYSTEM))
        )

    def has_object_permission(self, request, view, obj) -> bool:
        permit = view.permit_for(request)
        return permit is None or access_of(request).can(permit, obj)


def default_permit(request) -> Permit | None:
    """Reading needs only to see the object; changing it, to manage its cluster."""
    return None if request.method in SAFE_METHODS else Permit.MANAGE_CLUSTER
