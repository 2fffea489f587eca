"""Pages show only the actions the user may take: ``{% if "operate" in access|permits:vm %}``,
``{% if access|anywhere:"manage_cluster" %}``."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def permits(access, obj) -> frozenset:
    return access.permits(obj)


@register.filter
def anywhere(access, permit: str) -> bool:
    return access.anywhere(permit)
