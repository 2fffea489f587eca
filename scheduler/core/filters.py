"""Host filters. Each is prepared once per decision from the :class:`Plan` and returns a judge, or None when it
does not apply to this VM. A judge takes every host at once and returns the rejected ones, position -> a reason a
person can act on: a cheap sufficient test runs inline for each host, the exact check (and the wording) only
where that test fails, which keeps a large cluster to a few operations per host. Reasons built from a few
numbers are cached per decision, as a large cluster repeats them many times.

Wording follows oVirt's ``SCHEDULING_HOST_FILTERED_REASON_WITH_DETAIL`` details where oVirt has one,
with the numbers added. Counting checks come first and are exact for the dynamic policies, so a host that
passes every filter can always be given a placement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

from .affinity import affinity_judge, groups_of
from .cpuset import cpus_of, format_cpuset
from .fit import NoFit, capacity, format_page_size, map_cells, socket_slots, unit_word
from .placement import Plan, reserve_emulator, resize_topology
from .state import KIB_PER_MIB, HostState

Check = Callable[[HostState], str | None]
Judge = Callable[[Sequence[HostState]], dict[int, str]]

_STATUS = {
    "maintenance": "the host is in maintenance",
    "preparing_for_maintenance": "the host is preparing for maintenance",
    "non_operational": "the host is non-operational",
    "down": "the host is down",
}


def _cpus(mask: int, one: str, many: str) -> str:
    """Names pCPUs in a reason: "pCPU 4 is offline", "pCPUs 4, 6 are offline"."""
    cpus = cpus_of(mask)
    listed = ", ".join(map(str, cpus))
    return f"pCPU {listed} {one}" if len(cpus) == 1 else f"pCPUs {listed} {many}"


def each(check: Check) -> Judge:
    """A judge that runs the exact check on every host (for filters without a cheaper test)."""
    return lambda hosts: {i: r for i, h in enumerate(hosts) if (r := check(h)) is not None}


def host_status(plan: Plan) -> Judge:
    def check(host: HostState) -> str:
        return _STATUS.get(host.status, f"the host is {host.status}")

    return lambda hosts: {i: check(h) for i, h in enumerate(hosts) if h.status != "up"}


def migration(plan: Plan) -> Judge | None:
    if plan.request.action != "migrate" or plan.vm.running_on is None:
        return None
    source = plan.vm.running_on
    same = "it already runs the VM (source and destination are the same)"
    reason = same if plan.request.destination == source else "it currently runs the VM"
    return lambda hosts: {i: reason for i, h in enumerate(hosts) if h.id == source}


def excluded(plan: Plan) -> Judge | None:
    tried = plan.request.excluded_hosts
    if not tried:
        return None
    reason = "an earlier attempt on this host failed"
    return lambda hosts: {i: reason for i, h in enumerate(hosts) if h.id in tried}


def migration_limit(plan: Plan) -> Judge | None:
    full = plan.request.saturated_hosts
    if not full:
        return None
    reason = "it already receives as many migrations at once as allowed"
    return lambda hosts: {i: reason for i, h in enumerate(hosts) if h.id in full}


def pin_to_host(plan: Plan) -> Judge | None:
    """Only "Do not allow migration" restricts hosts; otherwise placement hosts are a start-up preference."""
    vm = plan.vm
    if vm.migration_mode != "pinned" or not vm.placement_hosts:
        return None
    allowed = vm.placement_hosts
    reason = "the host is not in the list of hosts the VM is pinned to"
    return lambda hosts: {i: reason for i, h in enumerate(hosts) if h.id not in allowed}


def cpu_level(plan: Plan) -> Judge | None:
    vm = plan.vm
    if vm.cpu_passthrough:
        # A pass-through VM takes the flags of the host it starts on; a running one needs them all again.
        if plan.request.action != "migrate" or not vm.cpu_flags_at_start:
            return None
        needed, detail = vm.cpu_flags_at_start, "its CPU flags are missing some of the VM's required CPU flags"
    else:
        if not plan.cluster.cpu_flags:
            return None
        needed, detail = plan.cluster.cpu_flags, "its CPU lacks flags of the cluster CPU type"

    def check(host: HostState) -> str:
        return f'{detail}: "{", ".join(sorted(needed - host.cpu_flags))}"'

    return lambda hosts: {i: check(h) for i, h in enumerate(hosts) if not needed <= h.cpu_flags}


def cpu(plan: Plan) -> Judge | None:
    """oVirt's CPU filter: the cores (or threads) not taken by exclusive pinning must hold the largest VM whose
    vCPUs float on them, and an exclusive VM's own share besides.

    A core is taken only when every one of its threads is held exclusively: the free threads of a partly
    pinned core still take dedicated vCPUs, and shared vCPUs still run on its other threads. An exclusive VM is
    charged its vCPUs as threads, or as cores those threads fill (dedicated) or one core each (isolate_threads);
    which pCPUs it gets is for CpuPinning and NUMA to say.
    """
    if plan.resize:
        return None  # its size derives from the host
    threads = plan.cluster.threads_as_cores
    word = "threads" if threads else "cores"
    vcpus, exclusive, isolate = plan.vcpus, plan.vm.exclusive, plan.mode == "isolate"

    @cache
    def reason(free: int, total: int, own: int, shared: int) -> str:
        if total == 0:
            return "the host reports no CPU cores"
        if exclusive and shared:
            needed = f"{own + shared} needed ({own} for the VM's {vcpus} vCPUs, {shared} for the largest VM sharing "
            needed += "the others)"
        elif shared > own:
            needed = f"{shared} needed (the largest VM sharing them has {shared} vCPUs)"
        else:
            needed = f"{own} needed"
        return (
            f"it has an insufficient amount of CPU {word} to run the VM: {free} of its {total} {word} "
            f"are not exclusively pinned, {needed}"
        )

    # Hosts share a few threads-per-core figures and largest shared VMs: the sums are cached, not redone per host.
    @cache
    def own(threads_per_core: int) -> int:
        if not exclusive:
            return vcpus
        if threads:
            return vcpus * threads_per_core if isolate else vcpus
        return vcpus if isolate else -(-vcpus // threads_per_core)

    @cache
    def need(threads_per_core: int, largest_shared: int) -> int:
        mine = own(threads_per_core)
        return mine + largest_shared if exclusive else max(mine, largest_shared)

    if threads:
        return lambda hosts: {
            i: reason(h.unpinned_threads, h.online_count, own(h.threads_per_core), h.max_shared_vcpus)
            for i, h in enumerate(hosts)
            if need(h.threads_per_core, h.max_shared_vcpus) > h.unpinned_threads
        }
    return lambda hosts: {
        i: reason(h.unpinned_cores, h.core_count, own(h.threads_per_core), h.max_shared_vcpus)
        for i, h in enumerate(hosts)
        if need(h.threads_per_core, h.max_shared_vcpus) > h.unpinned_cores
    }


def _shape(topology: tuple[int, int, int]) -> str:
    sockets, cores, threads = topology
    return f"{sockets} sockets x {cores} cores x {threads} threads ({sockets * cores * threads} vCPUs)"


def cpu_topology(plan: Plan) -> Judge | None:
    vm = plan.vm
    if plan.resize:
        # A running VM keeps its size and vNUMA nodes: only hosts that resize it to the same shape take it.
        running = vm.running_topology if plan.request.action == "migrate" else None

        def check_resize(host: HostState) -> str | None:
            topo, problems = host.topology, []
            if topo.cores_per_socket <= 1:
                problems.append(f"it has {topo.cores_per_socket} core per socket; Resize and Pin NUMA needs more")
            if topo.sockets != len(topo.numa_nodes):
                problems.append(
                    f"it has {topo.sockets} sockets but {len(topo.numa_nodes)} NUMA nodes; "
                    "Resize and Pin NUMA needs one NUMA node per socket"
                )
            if running and not problems and (size := resize_topology(host)) != running:
                problems.append(
                    f"Resize and Pin NUMA would size the VM {_shape(size)} here, but it runs as {_shape(running)}, "
                    "which a live migration must keep"
                )
            return "; ".join(problems) or None

        return each(check_resize)
    if vm.cpu_pinning_policy != "dedicated" or vm.threads == 1:
        return None
    threads = vm.threads

    def check(host: HostState) -> str:
        tpc = host.threads_per_core
        return f"it has {tpc} thread{'s' if tpc > 1 else ''} per core; the VM's dedicated pinning needs {threads}"

    return lambda hosts: {i: check(h) for i, h in enumerate(hosts) if h.threads_per_core < threads}


def _unavailable(host: HostState, wanted: int) -> str | None:
    """Why pCPUs named by the admin cannot be used on the host: missing, offline or held by other VMs."""
    if not host.layout.cores:
        return "the host has not reported its CPUs"
    problems = []
    if missing := wanted & ~host.layout.all_cpus:
        problems.append(_cpus(missing, "does not exist on the host", "do not exist on the host"))
    if offline := wanted & host.layout.all_cpus & ~host.layout.online:
        problems.append(_cpus(offline, "is offline", "are offline"))
    if held := wanted & host.exclusive & host.layout.online:
        problems.append(_cpus(held, "is exclusively pinned by another VM", "are exclusively pinned by other VMs"))
    return "; ".join(problems) or None


def cpu_pinning(plan: Plan) -> Judge | None:
    vm = plan.vm
    if plan.manual_pins:
        wanted = plan.manual_mask
        return each(lambda host: _unavailable(host, wanted))
    if plan.resize:

        def check_resize(host: HostState) -> str | None:
            if not host.exclusive:
                return None
            return (
                "Resize and Pin NUMA cannot share a host with exclusively pinned pCPUs "
                f"(held: {format_cpuset(cpus_of(host.exclusive))})"
            )

        return each(check_resize)
    if plan.mode == "none":
        return None
    vcpus, mode, size, vsockets = plan.vcpus, plan.mode, plan.vsocket_size, vm.sockets
    isolate, unit = mode == "isolate", unit_word(mode)
    by_socket = not vm.numa_nodes and not plan.spread
    others = "pinned by other VMs" + (" or kept for its emulator threads" if plan.emulator_mask else "")

    @cache
    def short(free: int, exclusive: int, shared: int, offline: int) -> str:
        held = f"{exclusive} exclusively pinned"
        if shared:
            held += f", {shared} {others}"
        if offline:
            held += f", {offline} offline"
        return f"{free} of {vcpus} needed {unit} free ({held})"

    def check(host: HostState) -> str | None:
        free = host.free_cores if isolate else host.free_threads
        if free < vcpus:
            if not host.layout.cores:
                return "the host has not reported its CPUs"
            return short(free, host.exclusive_count, host.shared_count, host.offline_count)
        if by_socket:
            if vsockets == 1 and (host.socket_free_cores_desc if isolate else host.socket_free_threads_desc)[0] >= size:
                return None
            caps = host.socket_free_cores if isolate else host.socket_free_threads
            if socket_slots(caps, size) < vsockets:
                per = ", ".join(f"socket {s}: {n}" for s, n in caps.items())
                return f"each of the VM's {vsockets} virtual sockets needs {size} {unit} in one physical socket ({per})"
        return None

    if vsockets > 1 and by_socket:
        return each(check)
    # Enough free pCPUs (for one virtual socket: in its fullest physical socket) settles most hosts.
    if isolate:
        return lambda hosts: {
            i: r
            for i, h in enumerate(hosts)
            if (h.free_cores < vcpus or (by_socket and h.socket_free_cores_desc[0] < size)) and (r := check(h))
        }
    return lambda hosts: {
        i: r
        for i, h in enumerate(hosts)
        if (h.free_threads < vcpus or (by_socket and h.socket_free_threads_desc[0] < size)) and (r := check(h))
    }


def emulator_pinning(plan: Plan) -> Judge | None:
    """The admin's emulator and I/O thread pinning names pCPUs the host has online and no other VM holds."""
    wanted = plan.emulator_mask
    if not wanted:
        return None

    def check(host: HostState) -> str | None:
        problem = _unavailable(host, wanted)
        return f"the emulator and I/O thread pinning cannot be applied: {problem}" if problem else None

    return each(check)


def memory(plan: Plan) -> Judge | None:
    if plan.hugepages:
        return None
    need = plan.memory_kib

    def check(host: HostState) -> str:
        free = max(host.small_free_kib, 0) // KIB_PER_MIB
        return f"it has {free} MiB of free memory; the VM needs {need // KIB_PER_MIB} MiB"

    return lambda hosts: {i: check(h) for i, h in enumerate(hosts) if h.small_free_kib < need}


def hugepages(plan: Plan) -> Judge | None:
    if not plan.hugepages:
        return None
    size, label = plan.page_kib, format_page_size(plan.page_kib)
    pages, rest = divmod(plan.memory_kib, size)
    if rest:
        reason = f"the VM's {plan.vm.memory_mib} MiB is not a multiple of the {label} page size"
        return lambda hosts: dict.fromkeys(range(len(hosts)), reason)

    @cache
    def check(free: int | None) -> str:
        if free is None:
            return f"the host has no {label} pages"
        return f"{max(free, 0)} of {pages} needed {label} pages free"

    return lambda hosts: {
        i: check(h.hugepages_free.get(size)) for i, h in enumerate(hosts) if h.hugepages_free.get(size, -1) < pages
    }


def numa(plan: Plan) -> Judge | None:
    """Hard vNUMA pinning, and the per-node fit of dynamically pinned vNUMA nodes.

    The fit is looked at only when the host as a whole has room; otherwise the CpuPinning, Memory or
    HugePages filter already says what is short, and repeating it here would add noise. A counting check
    settles most hosts before any search.
    """
    if not plan.cell_vnodes and not plan.resize:
        return None
    mode, vcpus, static, quick = plan.mode, plan.vcpus, plan.static_cells, plan.uniform
    isolate, page, hugepages = mode == "isolate", plan.page_kib, plan.hugepages
    static_hard = static is not None and any(c.allowed is not None for c in static)
    static_kib = None if static is None else sum(c.memory_mib for c in static) * KIB_PER_MIB

    def check(host: HostState) -> str | None:
        cells = static if static is not None else plan.cells(host)
        if (static is None or static_hard) and (problem := _pinned_nodes_missing(plan, host, cells)):
            return problem
        if not cells:
            return None
        if mode != "none" and (host.free_cores if isolate else host.free_threads) < vcpus:
            return None
        need = static_kib if static_kib is not None else sum(c.memory_mib for c in cells) * KIB_PER_MIB
        if need > (host.hugepages_free.get(page, 0) * page if hugepages else host.small_free_kib):
            return None
        fit = map_cells(host, cells, mode, may_share=not plan.resize, summary=quick)
        return fit.reason if isinstance(fit, NoFit) else None

    if static is None or static_hard or mode == "none":
        return each(check)
    # Hosts short of pCPUs as a whole are CpuPinning's to explain. Unpinned vNUMA nodes on one page size (the
    # usual dynamic case) all fit if the host nodes hold, between them, as many copies of the largest one as
    # there are vNUMA nodes. Either settles a host without the full check.
    if isolate:
        return lambda hosts: {
            i: r
            for i, h in enumerate(hosts)
            if h.free_cores >= vcpus and (quick is None or capacity(h, quick, mode) < quick.count) and (r := check(h))
        }
    return lambda hosts: {
        i: r
        for i, h in enumerate(hosts)
        if h.free_threads >= vcpus and (quick is None or capacity(h, quick, mode) < quick.count) and (r := check(h))
    }


def _pinned_nodes_missing(plan: Plan, host: HostState, cells) -> str | None:
    if (plan.resize or any(c.allowed is not None for c in cells)) and not host.numa_supported:
        return "does not support NUMA"
    problems = []
    for cell in cells:
        if cell.allowed is not None and (missing := cell.allowed - host.node_by_index.keys()):
            problems.append(
                f"vNUMA node {cell.index} is pinned to host node {format_cpuset(missing)}, "
                f"which the host does not have (it has nodes {format_cpuset(host.node_by_index)})"
            )
    return "; ".join(problems) or None


#: How far a host's TSC may be from the guest's without TSC scaling: KVM's tolerance, which oVirt's filter uses.
TSC_TOLERANCE_PPM = 250


def tsc_frequency(plan: Plan) -> Judge | None:
    """oVirt's Migration-Tsc-Frequency, for VMs that use their TSC frequency: the guest is given the TSC frequency
    of the host it starts on, so that host must report one, and it migrates only where the TSC runs at the
    frequency it started with."""
    vm = plan.vm
    if not vm.use_tsc_frequency:
        return None
    own = vm.tsc_khz_at_start if plan.request.action == "migrate" else None
    unknown = "the host does not report its TSC frequency"
    if own is None:
        return lambda hosts: {i: unknown for i, h in enumerate(hosts) if h.topology.tsc_khz is None}
    tolerance = own * TSC_TOLERANCE_PPM // 1_000_000

    @cache
    def check(khz: int | None) -> str | None:
        if khz is None:
            return unknown
        if abs(khz - own) <= tolerance:
            return None
        return (
            f"the host's TSC frequency ({khz:,} kHz) differs from the VM's ({own:,} kHz) "
            f"by more than {TSC_TOLERANCE_PPM} ppm"
        )

    return lambda hosts: {i: r for i, h in enumerate(hosts) if (r := check(h.topology.tsc_khz)) is not None}


def _emulator_reserved(factory: Callable[[Plan], Judge | None]) -> Callable[[Plan], Judge | None]:
    """The filter judging hosts without the pCPUs the admin gave the VM's emulator threads, as the placement of
    its dynamically pinned vCPUs does."""

    def prepare(plan: Plan) -> Judge | None:
        judge = factory(plan)
        if judge is None or plan.mode == "none" or not plan.emulator_mask:
            return judge
        return lambda hosts: judge([reserve_emulator(plan, host) for host in hosts])

    return prepare


def affinity(plan: Plan) -> Judge | None:
    """The VM's enforcing affinity rules (see :mod:`.affinity`)."""
    groups = groups_of(plan.vm.id, plan.cluster.affinity_groups)
    request = plan.request
    if not groups:
        return None
    return affinity_judge(plan.vm.id, groups, request.ignore_vm_affinity, request.moving_together, request.member_hosts)


#: Filter name -> factory, in the order their verdicts are listed.
FILTERS: tuple[tuple[str, Callable[[Plan], Judge | None]], ...] = (
    ("HostStatus", host_status),
    ("Migration", migration),
    ("Excluded", excluded),
    ("MigrationLimit", migration_limit),
    ("PinToHost", pin_to_host),
    ("CpuLevel", cpu_level),
    ("CPU", cpu),
    ("CpuTopology", cpu_topology),
    ("CpuPinning", _emulator_reserved(cpu_pinning)),
    ("EmulatorPinning", emulator_pinning),
    ("Memory", memory),
    ("HugePages", hugepages),
    ("NUMA", _emulator_reserved(numa)),
    ("TscFrequency", tsc_frequency),
    ("Affinity", affinity),
)
