"""Display helpers shared by every hpadmin page: badges, sizes, CPU sets and sortable table headers."""

from __future__ import annotations

from django import template
from django.utils.http import urlencode

from scheduler.core.cpuset import format_cpuset

register = template.Library()

# Bootstrap colour of each state, per kind of object.
BADGE_COLORS = {
    "vm": {"up": "success", "down": "secondary", "starting": "info", "stopping": "info", "migrating": "warning"},
    "host": {
        "up": "success",
        "maintenance": "warning",
        "preparing_for_maintenance": "info",
        "non_operational": "danger",
        "down": "dark",
    },
    "job": {
        "pending": "secondary",
        "scheduling": "info",
        "migrating": "primary",
        "succeeded": "success",
        "failed": "danger",
        "cancelled": "warning",
    },
    "severity": {"info": "info", "warning": "warning", "error": "danger"},
    "migration_mode": {"migratable": "success", "user_migratable": "warning", "pinned": "danger"},
}

# Short labels for table cells; the full oVirt wording stays in the title attribute.
MIGRATION_MODE_SHORT = {
    "migratable": "Manual & automatic",
    "user_migratable": "Manual only",
    "pinned": "Not migratable",
}


@register.filter
def badge_color(value: str, kind: str) -> str:
    return BADGE_COLORS.get(kind, {}).get(value, "secondary")


@register.filter
def mode_short(value: str) -> str:
    return MIGRATION_MODE_SHORT.get(value, value)


@register.filter
def mib(value) -> str:
    """1536 -> '1.5 GiB', 512 -> '512 MiB', 2097152 -> '2 TiB'."""
    if value is None or value == "":
        return "—"
    value = float(value)
    for unit, size in (("TiB", 1024 * 1024), ("GiB", 1024)):
        if abs(value) >= size:
            return f"{value / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{value:.0f} MiB"


@register.filter
def kib_page(value) -> str:
    """A hugepage size in KiB as people say it: 2048 -> '2 MiB', 1048576 -> '1 GiB'."""
    value = int(value)
    return f"{value // 1048576} GiB" if value >= 1048576 else f"{value // 1024} MiB"


@register.filter
def cpuset(value) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    return format_cpuset(int(v) for v in value or ()) or "—"


@register.filter
def vnuma_summary(numa_nodes) -> str:
    """'2 vNUMA, pinned' for a VM's stored vNUMA nodes; '' when it has none."""
    if not numa_nodes:
        return ""
    pinned = any(n.get("pinned_to") or any((n.get("pinned_to_by_host") or {}).values()) for n in numa_nodes)
    return f"{len(numa_nodes)} vNUMA" + (", pinned" if pinned else "")


@register.filter
def percent(value) -> int:
    return max(0, min(100, round(float(value or 0))))


@register.inclusion_tag("hpadmin/includes/sort_header.html", takes_context=True)
def sort_header(context, key: str, label: str, target: str):
    """A column header that sorts the list by ``key`` (toggling the direction) and keeps the filters."""
    request = context["request"]
    current = request.GET.get("sort", context.get("sort", ""))
    descending = current == f"-{key}"
    params = request.GET.copy()
    params["sort"] = key if descending or current != key else f"-{key}"
    params.pop("page", None)
    return {
        "label": label,
        "url": "?" + urlencode(list(params.lists()), doseq=True),
        "active": current.lstrip("-") == key,
        "descending": descending,
        "target": target,
    }
