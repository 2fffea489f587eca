"""Display helpers shared by every hpadmin page: badges, sizes, CPU sets and sortable table headers."""

from __future__ import annotations

from django import template
from django.template.defaultfilters import pluralize
from django.utils.html import format_html, format_html_join
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
        "non_responsive": "danger",
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
    return f"{len(numa_nodes)} vNUMA" + (", pinned" if _vnuma_pinned(numa_nodes) else "")


def _vnuma_pinned(numa_nodes) -> bool:
    return any(n.get("pinned_to") or any((n.get("pinned_to_by_host") or {}).values()) for n in numa_nodes)


# How each CPU pinning policy places a VM's vCPUs, for people who do not know oVirt's policy names.
VCPU_WORDS = {
    "none": "{n} shared vCPU{s}",
    "manual": "{n} vCPU{s} pinned to chosen host CPUs",
    "dedicated": "{n} dedicated vCPU{s}",
    "isolate_threads": "{n} dedicated vCPU{s}, one per host core",
    "resize_and_pin_numa": "{n} vCPU{s} sized to the host, pinned",
}
# Under these policies the scheduler pins the vNUMA nodes itself when it places the VM.
POLICIES_PINNING_NUMA = frozenset({"dedicated", "isolate_threads", "resize_and_pin_numa"})


@register.filter
def pinning_words(config) -> str:
    """A VM's pinning in a line: '4 dedicated vCPUs, 2 vNUMA nodes pinned to host nodes, 1 GiB hugepages'."""
    words = [VCPU_WORDS[config.cpu_pinning_policy].format(n=config.vcpus, s=pluralize(config.vcpus))]
    if nodes := config.numa_nodes:
        pinned = _vnuma_pinned(nodes) or config.cpu_pinning_policy in POLICIES_PINNING_NUMA
        words.append(f"{len(nodes)} vNUMA node{pluralize(len(nodes))}" + (" pinned to host nodes" if pinned else ""))
    if config.hugepage_kib:
        words.append(f"{kib_page(config.hugepage_kib)} hugepages")
    return ", ".join(words)


@register.filter
def percent(value) -> int:
    return max(0, min(100, round(float(value or 0))))


@register.filter
def minutes(value) -> str:
    """A timedelta in whole minutes: 15 minutes -> '15 minutes', 1 minute -> '1 minute'."""
    count = max(1, round(value.total_seconds() / 60))
    return f"{count} minute{'s' if count != 1 else ''}"


PLAIN = "light border"


@register.simple_tag
def hp_badges(config) -> str:
    """A VM's (template's, pool's) HP settings at a glance: type, CPU pinning, vNUMA, hugepages, host CPU, HA.
    Built in Python: list pages show it on every row."""
    badges = []
    if config.optimized_for == "high_performance":
        badges.append(("primary", "Optimized for: High Performance", "HP"))
    elif config.optimized_for == "desktop":
        badges.append((PLAIN, "Optimized for: Desktop", "Desktop"))
    if config.cpu_pinning_policy != "none":
        policy = config.get_cpu_pinning_policy_display()
        text = f"{policy} pinning" if config.cpu_pinning_policy == "manual" else policy
        pinning = f": {config.cpu_pinning}" if config.cpu_pinning else ""
        badges.append((PLAIN, f"CPU pinning policy{pinning}", text))
    numa = vnuma_summary(config.numa_nodes)
    if numa:
        badges.append((PLAIN, "Virtual NUMA nodes", numa))
    if config.hugepage_kib:
        badges.append((PLAIN, "Memory backed by hugepages", f"{kib_page(config.hugepage_kib)} pages"))
    if config.cpu_passthrough:
        badges.append((PLAIN, "Pass-through host CPU", "host CPU"))
    if config.high_availability:
        badges.append((PLAIN, f"Highly available, priority {config.ha_priority}", "HA"))
    return format_html(
        '<span class="hp-badges">{}</span>',
        format_html_join(" ", '<span class="badge text-bg-{}" title="{}">{}</span>', badges),
    )


@register.simple_tag
def migration_mode_badge(config) -> str:
    """The migration mode in two words, with oVirt's full wording as the title."""
    return format_html(
        '<span class="badge text-bg-{}" title="Migration mode: {}">{}</span>',
        badge_color(config.migration_mode, "migration_mode"),
        config.get_migration_mode_display(),
        mode_short(config.migration_mode),
    )


@register.simple_tag(takes_context=True)
def nav_active(context, *prefixes: str) -> str:
    """'active' when the current URL's name starts with one of ``prefixes`` (e.g. 'vm-')."""
    match = getattr(context.get("request"), "resolver_match", None)
    name = getattr(match, "url_name", "") or ""
    return "active" if any(name.startswith(p) for p in prefixes) else ""


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
