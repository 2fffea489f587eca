from django.utils.functional import SimpleLazyObject

from .shortcuts import access_of


def access(request) -> dict:
    """``access``: what the signed-in user may see and do, for pages to offer only the actions they may take."""
    return {"access": SimpleLazyObject(lambda: access_of(request))}
