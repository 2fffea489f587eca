"""Suspending settings: which settings of a VM a host could do without, and the VM as it runs with them suspended.

A setting is suspended while the VM runs on a host that cannot honour it; the configuration itself never
changes, so moving to a host that fits the whole of it restores the setting. The guest-visible shape (vCPU
count and topology, vNUMA node count, memory size, CPU model and flags) does not change in a live migration
and is never suspended. The settings, least missed first:

* ``io_emulator_pinning``: IO and emulator threads float on the host's shared pCPUs.
* ``numa_pinning``: the vNUMA nodes are bound to no host node: memory may come from any node, and vCPUs of a
  dynamic policy take any free pCPUs of the host (isolate_threads: any free whole cores).
* ``hugepages``: memory is backed by small pages.
* ``cpu_pinning``: the vCPUs are pinned to nothing and hold no pCPU: they share the host's non-exclusive
  pCPUs under the CPU filter's rule for shared VMs.

IO and emulator thread pinning that the placement chose goes with what it was chosen for: with CPU pinning,
and with NUMA pinning when the vCPUs float; so suspending those suspends it too (the admin's own emulator
pinning stays with NUMA pinning).

Resize and Pin NUMA sizes the guest from its host and pins it there, so its CPU and NUMA pinning are part of
its shape and never suspended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from itertools import combinations

from .model import Rejection, VMRequest

SETTINGS = ("io_emulator_pinning", "numa_pinning", "hugepages", "cpu_pinning")

#: Filters whose verdict no suspension changes: a host one of them rejects is not a degraded candidate.
FIXED_FILTERS = frozenset(
    {
        "HostStatus",
        "Migration",
        "Excluded",
        "MigrationLimit",
        "PinToHost",
        "CpuLevel",
        "Memory",
        "TscFrequency",
        "Affinity",
    }
)

#: The setting whose constraints each filter checks, to say why a setting is suspended on a host.
_FILTER_SETTING = {
    "EmulatorPinning": "io_emulator_pinning",
    "NUMA": "numa_pinning",
    "HugePages": "hugepages",
    "CPU": "cpu_pinning",
    "CpuTopology": "cpu_pinning",
    "CpuPinning": "cpu_pinning",
}


def applicable(vm: VMRequest) -> tuple[str, ...]:
    """The settings this VM has that a host may fail to honour, in :data:`SETTINGS` order."""
    policy = vm.cpu_pinning_policy
    resize = policy == "resize_and_pin_numa"
    hard_numa = any(v.enforced and (v.pinned_to or v.pinned_to_by_host) for v in vm.numa_nodes)
    has = {
        "io_emulator_pinning": bool(vm.emulator_cpus)
        or (vm.optimized_for == "high_performance" and (policy != "none" or hard_numa)),
        "numa_pinning": not resize and (hard_numa or (vm.exclusive and bool(vm.numa_nodes))),
        "hugepages": vm.hugepage_kib is not None,
        "cpu_pinning": policy in ("manual", "dedicated", "isolate_threads"),
    }
    return tuple(name for name in SETTINGS if has[name])


def suspension_sets(vm: VMRequest) -> list[frozenset[str]]:
    """Every set of settings that may be suspended together, fewest first (then the least missed ones first).

    A set lists what it suspends with it (see the module's docstring), so sets that leave that out are not
    listed. Trying the sets in this order on a host finds a minimal one: no smaller set works there.
    """
    names = applicable(vm)
    seen: set[frozenset[str]] = set()
    out: list[tuple[int, tuple[int, ...], frozenset[str]]] = []
    for size in range(1, len(names) + 1):
        for chosen in combinations(names, size):
            group = _closed(vm, frozenset(chosen), names)
            if group not in seen:
                seen.add(group)
                out.append((len(group), sorted(SETTINGS.index(s) for s in group)[::-1], group))
    out.sort(key=lambda item: (item[0], item[1]))
    return [group for _, _, group in out]


def relax(vm: VMRequest, suspended: Iterable[str]) -> VMRequest:
    """The VM as it runs with ``suspended`` settings left out; its shape stays as it is."""
    suspended = frozenset(suspended)
    if unknown := suspended - set(SETTINGS):
        raise ValueError(f"unknown settings {sorted(unknown)}; known: {list(SETTINGS)}")
    suspended = _closed(vm, suspended, applicable(vm))
    changes: dict = {"suspended": vm.suspended | suspended}
    if "cpu_pinning" in suspended:
        changes.update(cpu_pinning_policy="none", cpu_pinning={}, emulator_cpus=frozenset())
    if "io_emulator_pinning" in suspended:
        changes["emulator_cpus"] = frozenset()
    if "numa_pinning" in suspended:
        changes["numa_nodes"] = tuple(replace(v, pinned_to=frozenset(), pinned_to_by_host={}) for v in vm.numa_nodes)
    if "hugepages" in suspended:
        changes["hugepage_kib"] = None
    return replace(vm, **changes)


def _closed(vm: VMRequest, group: frozenset[str], names: Sequence[str]) -> frozenset[str]:
    """``group`` with the IO and emulator thread pinning that goes with it."""
    if "io_emulator_pinning" not in names or "io_emulator_pinning" in group:
        return group
    floating = vm.cpu_pinning_policy == "none" and not vm.emulator_cpus
    if "cpu_pinning" in group or ("numa_pinning" in group and floating):
        return group | {"io_emulator_pinning"}
    return group


def reasons(suspended: Iterable[str], rejections: Sequence[Rejection]) -> Mapping[str, str]:
    """Why each suspended setting is suspended on a host: the reasons of the filters that check it, which the
    whole configuration fails there. A setting suspended for another filter's sake is given that reason."""
    suspended = [s for s in SETTINGS if s in set(suspended)]
    own: dict[str, list[str]] = {s: [] for s in suspended}
    others: list[str] = []
    for rejection in rejections:
        setting = _FILTER_SETTING.get(rejection.filter)
        (own[setting] if setting in own else others).append(rejection.reason)
    if "io_emulator_pinning" in own and not own["io_emulator_pinning"]:
        with_ = "CPU pinning" if "cpu_pinning" in own else "NUMA pinning"
        own["io_emulator_pinning"] = [f"it goes with the {with_}"]
    return {s: "; ".join(own[s] or others or ["the host cannot honour it"]) for s in suspended}
