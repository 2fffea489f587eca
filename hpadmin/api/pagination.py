"""How API lists are cut into pages."""

from __future__ import annotations

from rest_framework import pagination


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """``limit`` and ``offset`` as DRF has them, with a largest page: a larger ``limit`` gives this many rows, so
    that no request makes the server render the whole inventory at once."""

    max_limit = 500
