"""oVirt's ids: UUID strings.

A VM's id is its domain UUID, as in oVirt. Other objects have integer keys here; their id carries the key and a
number for their kind (``00000002-0000-4000-8000-00000000002a`` is host 42), so that a lookup needs no extra
column and one kind's id never finds an object of another kind. Events keep plain integer ids, as oVirt's do.
"""

from __future__ import annotations

import uuid

KINDS = {
    "cluster": 1,
    "host": 2,
    "host_numa_node": 3,
    "template": 4,
    "vm_pool": 5,
    "job": 6,
    "affinity_group": 7,
    "affinity_label": 8,
    "user": 9,
}
#: oVirt's Blank template: a VM made "from" it starts from its profile's defaults alone.
BLANK_TEMPLATE = "00000000-0000-0000-0000-000000000000"
_PATTERN = "{kind:08x}-0000-4000-8000-{key:012x}"


def encode(kind: str, key: int) -> str:
    return _PATTERN.format(kind=KINDS[kind], key=key)


def decode(kind: str, value: str) -> int | None:
    """The key an id of ``kind`` carries, or None when it is no such id."""
    try:
        parsed = uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None
    key = parsed.int & ((1 << 48) - 1)
    return key if encode(kind, key) == str(parsed) else None


def vm_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None
