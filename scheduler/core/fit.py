"""Fitting a VM's vNUMA nodes into host NUMA nodes and picking pCPUs; shared by the scheduler and the what-if tool.

CPU modes: ``prefer`` takes free threads (dedicated), ``isolate`` takes whole free cores and uses one thread
of each (isolate_threads), ``require`` takes threads of cores with at least two free threads (Nova's
``require``), ``none`` takes no pCPU (vCPUs float).

Counting is exact for ``prefer`` and ``isolate`` even when several vNUMA nodes share a host node, so a
mapping found by :func:`map_cells` can always be pinned by :func:`pin_cells`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from .cpuset import cpus_of, mask_of
from .state import KIB_PER_MIB, Core, HostState, NodeState

CpuMode = Literal["none", "prefer", "isolate", "require"]
SMALL_PAGE_KIB = 4
# Backtracking steps before giving up on a pathological bin-packing instance.
SEARCH_LIMIT = 50_000


@dataclass(frozen=True, slots=True)
class CellNeed:
    """What one vNUMA node (or a whole VM kept on one node) needs from a single host node.

    ``page_sizes`` lists acceptable page sizes in order of preference (4 = small pages); ``allowed`` are
    host node indexes it may use (None: any); ``preferred`` are tried first.
    """

    index: int
    vcpus: tuple[int, ...]
    memory_mib: int
    page_sizes: tuple[int, ...] = (SMALL_PAGE_KIB,)
    allowed: frozenset[int] | None = None
    preferred: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CellFit:
    node: int
    page_kib: int


@dataclass(frozen=True, slots=True)
class NoFit:
    """Why something does not fit, and which filter a person should look at."""

    reason: str
    filter: str = "NUMA"


def format_page_size(size_kib: int) -> str:
    if size_kib % (1024 * 1024) == 0:
        return f"{size_kib // (1024 * 1024)} GiB"
    if size_kib % 1024 == 0:
        return f"{size_kib // 1024} MiB"
    return f"{size_kib} KiB"


def cpu_units(cores: Sequence[Core], free: int, mode: CpuMode) -> int:
    """How many vCPUs of the given mode these cores can still take."""
    if mode == "isolate":
        return sum(1 for c in cores if c.mask & free == c.mask)
    if mode == "require":
        return sum(f for c in cores if (f := (c.mask & free).bit_count()) >= 2)
    return sum((c.mask & free).bit_count() for c in cores)


def node_units(host: HostState, node: NodeState, mode: CpuMode) -> int:
    if mode == "prefer":
        return node.free_threads
    if mode == "isolate":
        return node.free_cores
    if mode == "require":
        return cpu_units(host.layout.node_cores.get(node.index, ()), node.free, mode)
    return 0


_UNIT_WORDS = {"isolate": "whole free cores", "require": "pCPUs on cores with 2 free threads"}


def unit_word(mode: CpuMode) -> str:
    return _UNIT_WORDS.get(mode, "pCPUs")


def page_for(cell: CellNeed, small_kib: int, pages: Mapping[int, int]) -> int | None:
    """The first acceptable page size whose pool on this node can hold the cell, or None."""
    need = cell.memory_mib * KIB_PER_MIB
    for size in cell.page_sizes:
        if size == SMALL_PAGE_KIB:
            if need <= small_kib:
                return size
        elif need % size == 0 and need // size <= pages.get(size, 0):
            return size
    return None


def memory_shortfall(
    memory_mib: int, sizes: Sequence[int], small_kib: int, pages: Mapping[int, int], where: str
) -> str:
    """Why memory of ``memory_mib`` does not fit the pools (``where`` is e.g. " on node 1" or "")."""
    need = memory_mib * KIB_PER_MIB
    parts = []
    for size in sizes:
        label = format_page_size(size)
        if size == SMALL_PAGE_KIB:
            parts.append(f"{max(small_kib, 0) // KIB_PER_MIB} of {memory_mib} MiB needed free{where}")
        elif need % size:
            parts.append(f"{memory_mib} MiB is not a multiple of the {label} page size")
        elif size not in pages:
            parts.append(f"no {label} pages{where}")
        else:
            parts.append(f"{max(pages[size], 0)} of {need // size} needed {label} pages free{where}")
    return " or ".join(parts)


class _GiveUp(Exception):
    pass


def map_cells(
    host: HostState,
    cells: Sequence[CellNeed],
    mode: CpuMode,
    *,
    may_share: bool,
    pins: Mapping[int, int] | None = None,
    summary: Uniform | None = None,
) -> dict[int, CellFit] | NoFit:
    """Assign each cell to one host node (backtracking); cells go to distinct nodes when possible.

    With ``may_share`` several cells may share a node once no distinct assignment exists. ``pins`` (vCPU ->
    pCPU mask) adds oVirt's ``considerCpuPinning``: a node qualifies only if it holds a pinned pCPU of every
    vCPU of the cell. ``summary`` is :func:`uniform` of the cells, from a caller that fits them on many hosts.
    """
    u = summary or (uniform(cells, mode) if pins is None and mode != "require" else None)
    if u is not None:
        roomy = fits_distinct(host, u, mode)
        if len(roomy) >= u.count:
            roomy.sort(key=lambda n: (-node_units(host, n, mode), -n.small_free_kib, n.index))
            return {cell.index: CellFit(node.index, u.page_kib) for cell, node in zip(cells, roomy, strict=False)}
    # Alike cells are settled by counting: no search needed to know they do not fit, only to say why.
    settled = u is not None and u.alike and not (may_share and capacity(host, u, mode) >= u.count)
    nodes = host.nodes
    units = [node_units(host, nd, mode) for nd in nodes]
    small = [nd.small_free_kib for nd in nodes]
    pages = [dict(nd.hugepages_free) for nd in nodes]
    # Alike cells fit the same nodes, so once counting settled them the first one speaks for all.
    looked_at = cells[:1] if settled else cells
    needs = [0 if mode == "none" else len(c.vcpus) for c in looked_at]

    candidates: list[list[int]] = []
    for cell, need in zip(looked_at, needs, strict=True):
        rank = {node: pos for pos, node in enumerate(cell.preferred)}
        order = sorted(
            range(len(nodes)),
            key=lambda i: (rank.get(nodes[i].index, len(rank)), -units[i], -small[i], nodes[i].index),
        )
        fitting = [
            i
            for i in order
            if (cell.allowed is None or nodes[i].index in cell.allowed)
            and _pins_inside(cell, nodes[i], pins)
            and need <= units[i]
            and page_for(cell, small[i], pages[i]) is not None
        ]
        if not fitting:
            return NoFit(_explain_cell(host, cell, need, mode, units, small, pages, pins))
        candidates.append(fitting)
    if settled:
        return NoFit(_explain_together(host, cells, mode, units, small, pages, may_share))

    order = sorted(range(len(cells)), key=lambda k: (len(candidates[k]), -needs[k], -cells[k].memory_mib))
    search = _Search(
        [cells[k] for k in order], [candidates[k] for k in order], [needs[k] for k in order], units, small, pages
    )
    try:
        for distinct in (True, False) if may_share and mode != "require" else (True,):
            found = search.run(distinct)
            if found is not None:
                return {
                    cell.index: CellFit(nodes[i].index, size)
                    for cell, (i, size) in zip(search.cells, found, strict=True)
                }
    except _GiveUp:
        return NoFit("the vNUMA nodes are too many to search for a fit exhaustively; none found")
    return NoFit(_explain_together(host, cells, mode, units, small, pages, may_share))


@dataclass(frozen=True, slots=True)
class Uniform:
    """Cells that are unrestricted and share one page size, summed up by their largest member."""

    count: int
    need: int
    kib: int
    page_kib: int
    alike: bool


def uniform(cells: Sequence[CellNeed], mode: CpuMode) -> Uniform | None:
    """The summary :func:`fits_distinct` and :func:`capacity` need; None if a cell is pinned or multi-size."""
    if not cells or len(cells[0].page_sizes) != 1:
        return None
    page = cells[0].page_sizes[0]
    sizes: set[tuple[int, int]] = set()
    for c in cells:
        if c.allowed is not None or c.preferred or len(c.page_sizes) != 1 or c.page_sizes[0] != page:
            return None
        if c.memory_mib <= 0 or (page != SMALL_PAGE_KIB and c.memory_mib * KIB_PER_MIB % page):
            return None
        sizes.add((0 if mode == "none" else len(c.vcpus), c.memory_mib))
    need = max(n for n, _ in sizes)
    return Uniform(len(cells), need, max(m for _, m in sizes) * KIB_PER_MIB, page, alike=len(sizes) == 1)


def fits_distinct(host: HostState, u: Uniform, mode: CpuMode) -> list[NodeState]:
    """Host nodes that could each take the largest cell: if there are ``u.count`` of them, the cells fit.

    A sufficient condition checked in a few comparisons per node, before any search.
    """
    out = []
    for node in host.nodes:
        units = node.free_threads if mode == "prefer" else node.free_cores if mode == "isolate" else u.need
        if units < u.need:
            continue
        if u.page_kib == SMALL_PAGE_KIB:
            if node.small_free_kib < u.kib:
                continue
        elif node.hugepages_free.get(u.page_kib, 0) * u.page_kib < u.kib:
            continue
        out.append(node)
    return out


def capacity(host: HostState, u: Uniform, mode: CpuMode) -> int:
    """How many of the largest cell the host's nodes hold when cells may share nodes.

    At least ``u.count`` means every cell fits (exactly when the cells are all alike); counted in a few
    integer operations per node, before any search.
    """
    total, kib, page, need = 0, u.kib, u.page_kib, u.need
    for node in host.nodes:
        room = (node.small_free_kib if page == SMALL_PAGE_KIB else node.hugepages_free.get(page, 0) * page) // kib
        if need:
            cpus = (node.free_threads if mode == "prefer" else node.free_cores) // need
            room = cpus if cpus < room else room
        total += room
    return total


class _Search:
    """Depth-first search over candidate nodes with the remaining capacity threaded through."""

    def __init__(self, cells, candidates, needs, units, small, pages) -> None:
        self.cells = cells
        self.candidates = candidates
        self.needs = needs
        self.units = units
        self.small = small
        self.pages = pages
        self.memo = len(cells) > 3
        self.failed: set[tuple] = set()
        self.steps = 0

    def run(self, distinct: bool) -> list[tuple[int, int]] | None:
        self.failed.clear()
        self.distinct = distinct
        chosen: list[tuple[int, int]] = []
        return chosen if self._dfs(0, 0, chosen) else None

    def _dfs(self, k: int, used: int, chosen: list[tuple[int, int]]) -> bool:
        if k == len(self.cells):
            return True
        key = None
        if self.memo:
            key = (k, used, tuple(self.units), tuple(self.small), tuple(tuple(sorted(p.items())) for p in self.pages))
            if key in self.failed:
                return False
        self.steps += 1
        if self.steps > SEARCH_LIMIT:
            raise _GiveUp
        cell, need = self.cells[k], self.needs[k]
        kib = cell.memory_mib * KIB_PER_MIB
        for i in self.candidates[k]:
            if (self.distinct and used >> i & 1) or need > self.units[i]:
                continue
            size = page_for(cell, self.small[i], self.pages[i])
            if size is None:
                continue
            self._take(i, need, size, kib, 1)
            chosen.append((i, size))
            if self._dfs(k + 1, used | 1 << i, chosen):
                return True
            chosen.pop()
            self._take(i, need, size, kib, -1)
        if key is not None:
            self.failed.add(key)
        return False

    def _take(self, i: int, need: int, size: int, kib: int, sign: int) -> None:
        self.units[i] -= sign * need
        if size == SMALL_PAGE_KIB:
            self.small[i] -= sign * kib
        else:
            self.pages[i][size] -= sign * (kib // size)


def _pins_inside(cell: CellNeed, node: NodeState, pins: Mapping[int, int] | None) -> bool:
    return pins is None or all(pins[v] & node.cpus for v in cell.vcpus if v in pins)


def _explain_cell(host, cell, need, mode, units, small, pages, pins) -> str:
    problems = []
    for i, node in enumerate(host.nodes):
        if cell.allowed is not None and node.index not in cell.allowed:
            continue
        where = f" on node {node.index}"
        if not _pins_inside(cell, node, pins):
            problems.append(f"its vCPUs are pinned to pCPUs outside node {node.index}")
        if need > units[i]:
            problems.append(f"{units[i]} of {need} needed {unit_word(mode)} free{where}")
        if page_for(cell, small[i], pages[i]) is None:
            problems.append(memory_shortfall(cell.memory_mib, cell.page_sizes, small[i], pages[i], where))
    what = f"{len(cell.vcpus)} vCPUs, {cell.memory_mib} MiB" if mode != "none" else f"{cell.memory_mib} MiB"
    return f"vNUMA node {cell.index} ({what}) fits no host node: " + "; ".join(problems)


def _explain_together(host, cells, mode, units, small, pages, may_share) -> str:
    summary = []
    for i, node in enumerate(host.nodes):
        parts = [] if mode == "none" else [f"{units[i]} {unit_word(mode)}"]
        parts.append(f"{max(small[i], 0) // KIB_PER_MIB} MiB")
        parts += [f"{free} x {format_page_size(size)} pages" for size, free in sorted(pages[i].items())]
        summary.append(f"node {node.index}: {', '.join(parts)}")
    how = "" if may_share else " on distinct host nodes"
    names = ", ".join(str(c.index) for c in sorted(cells, key=lambda c: c.index))
    return f"vNUMA nodes {names} each fit a host node but not all together{how} (free {'; '.join(summary)})"


def take_cpus(
    cores: Sequence[Core], free: int, count: int, mode: CpuMode, vm_threads: int
) -> tuple[list[int], int] | None:
    """Pick ``count`` pCPUs from ``cores`` in vCPU order; returns (pCPUs, mask of everything taken).

    ``prefer`` fills the fullest cores first (fewer broken cores left behind) unless the VM has several
    threads per core, in which case whole free cores come first so virtual cores land on sibling threads.
    ``isolate`` takes whole free cores and pins each vCPU to the core's first thread.
    """
    if count == 0:
        return [], 0
    if mode == "isolate":
        whole = [c for c in cores if c.mask & free == c.mask][:count]
        if len(whole) < count:
            return None
        return [c.first for c in whole], _or(c.mask for c in whole)
    avail = [(c.first, m, m.bit_count()) for c in cores if (m := c.mask & free)]
    if mode == "require":
        avail = [a for a in avail if a[2] >= 2]
    if mode == "require" or vm_threads >= 2:
        avail.sort(key=lambda a: (-a[2], a[0]))
    else:
        avail.sort(key=lambda a: (a[2], a[0]))
    out: list[int] = []
    for _, m, _ in avail:
        for cpu in cpus_of(m):
            out.append(cpu)
            if len(out) == count:
                return out, mask_of(out)
    return None


def _or(masks) -> int:
    out = 0
    for m in masks:
        out |= m
    return out


def pack_sockets(
    cores: Sequence[Core], free: int, vsockets: int, size: int, mode: CpuMode, vm_threads: int
) -> tuple[list[int], int] | None:
    """Place ``vsockets`` virtual sockets of ``size`` vCPUs, each inside one physical socket (best fit).

    Virtual sockets are all the same size, so best fit succeeds exactly when
    ``sum(capacity_of_socket // size) >= vsockets`` — the count :func:`socket_slots` gives.
    """
    by_socket: dict[int, list[Core]] = {}
    for core in cores:
        by_socket.setdefault(core.socket, []).append(core)
    caps = {s: cpu_units(cs, free, mode) for s, cs in by_socket.items()}
    out: list[int] = []
    taken = 0
    for _ in range(vsockets):
        fitting = [s for s, cap in caps.items() if cap >= size]
        if not fitting:
            return None
        socket = min(fitting, key=lambda s: (caps[s], s))
        got = take_cpus(by_socket[socket], free, size, mode, vm_threads)
        if got is None:
            return None
        pcpus, mask = got
        out += pcpus
        free &= ~mask
        taken |= mask
        caps[socket] = cpu_units(by_socket[socket], free, mode)
    return out, taken


def socket_slots(capacities: Mapping[int, int], size: int) -> int:
    """How many virtual sockets of ``size`` vCPUs fit, each within one physical socket."""
    return sum(cap // size for cap in capacities.values())


def pin_cells(
    host: HostState, cells: Sequence[CellNeed], mapping: Mapping[int, CellFit], mode: CpuMode, vm_threads: int
) -> tuple[dict[int, int], int] | NoFit:
    """Pick pCPUs for every cell inside its mapped host node; returns (vCPU -> pCPU, taken mask)."""
    free = host.free
    pins: dict[int, int] = {}
    taken = 0
    for cell in sorted(cells, key=lambda c: c.index):
        node = mapping[cell.index].node
        got = take_cpus(host.layout.node_cores.get(node, ()), free, len(cell.vcpus), mode, vm_threads)
        if got is None:
            return NoFit(f"host node {node} has no room left for the vCPUs of vNUMA node {cell.index}")
        pcpus, mask = got
        free &= ~mask
        taken |= mask
        pins.update(zip(cell.vcpus, pcpus, strict=True))
    return pins, taken


def spread_memory(
    host: HostState,
    order: Sequence[int],
    memory_mib: int,
    page_kib: int,
    small: dict[int, int],
    huge: dict[int, dict[int, int]],
) -> bool:
    """Charge ``memory_mib`` to host nodes in ``order``, as much as each still has, on top of ``small``
    (MiB per node) and ``huge`` ({node: {size: pages}}) which are updated in place; False if room lacks.
    """
    if page_kib == SMALL_PAGE_KIB:
        left = memory_mib
        for index in order:
            room = host.node_by_index[index].small_free_kib // KIB_PER_MIB - small.get(index, 0)
            if (take := min(left, room)) > 0:
                small[index] = small.get(index, 0) + take
                left -= take
        return left == 0
    left = memory_mib * KIB_PER_MIB // page_kib
    for index in order:
        pools = huge.setdefault(index, {})
        room = host.node_by_index[index].hugepages_free.get(page_kib, 0) - pools.get(page_kib, 0)
        if (take := min(left, room)) > 0:
            pools[page_kib] = pools.get(page_kib, 0) + take
            left -= take
        if not pools:
            del huge[index]
    return left == 0
