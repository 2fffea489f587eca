"""The simulated hypervisor: the embedded default, and the way to exercise multi-NUMA hosts anywhere.

A host's shape is its URI, e.g. ``sim://h1?sockets=2&cores=8&threads=2&nodes=2&memory=262144&hp1g=16``:
its capabilities follow from it as libvirt's would from the hardware. Running domains, switched-on faults
and extra CPU loads live in the database (``hpadmin.hypervisor.models``) so every process sees the same hosts.
A host's CPU load follows from the guests it runs (see :meth:`SimulatedDriver.cpu_load`).

A host can fail (:func:`fail_host`: it hangs, its guests left as they were), be fenced (:func:`power_off_host`,
what the driver's ``power_off`` does after the host's fence command succeeded: its guests are gone) and recover
(:func:`recover_host`: it answers again after a reboot, with nothing running).

Migration follows the pre-copy model of QEMU: the first pass copies all memory at the link's bandwidth,
each later pass copies what the guest dirtied meanwhile, and the switch-over happens once the rest fits
in the allowed downtime. A guest that dirties memory as fast as the link copies never converges; then
auto-converge throttles it, post-copy switches over and pulls the rest on demand, or the migration times
out. ``HPADMIN_SIMULATION_SPEED`` divides every wait, so tests run in milliseconds and the demo in seconds.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.db import transaction

from hpadmin.utilities.processes import is_alive, process_id

from .base import (
    AppliedPinning,
    Console,
    CpuInfo,
    DomainSpec,
    DomainState,
    GuestNumaCell,
    HostCapabilities,
    HypervisorError,
    MigrationOptions,
    MigrationProgress,
    MigrationResult,
    NumaNodeInfo,
    PowerState,
)
from .fencing import run_fence_command
from .models import FaultKind, SimulatedDomain, SimulatedFault, SimulatedHostLoad

DEFAULT_BANDWIDTH_MIBPS = 1100.0  # a 10 GbE link
DEFAULT_MAX_DOWNTIME_MS = 300.0
STALL_ITERATIONS = 2  # passes in a row that dirty over half of what they copied: the migration stalls
MAX_ITERATIONS = 30
PROGRESS_STEP_S = 0.25
DEFAULT_FLAGS = "sse4_2,avx,avx2,aes,pdpe1gb,vmx"
#: The share of its vCPUs' time a simulated guest keeps busy, whatever it runs: a guest adds vCPUs x this to the
#: host's busy CPUs.
GUEST_CPU_UTILIZATION = 0.5
SHAPE_PARAMETERS = frozenset(
    {"sockets", "cores", "threads", "nodes", "memory", "hp2m", "hp1g", "flags", "model", "offline", "tsc"}
)
#: The largest simulated host: sockets, cores per socket and threads per core each, CPUs in all, NUMA nodes (Linux
#: numbers at most 1024) and amounts (memory in MiB, hugepages, TSC kHz: what a database integer column holds).
MAX_PER_LEVEL = 4096
MAX_CPUS = 32768
MAX_NUMA_NODES = 1024
MAX_AMOUNT = 2**31 - 1


def host_shape_uri(name: str, **shape) -> str:
    """Build a ``sim://`` URI from a host name and its shape parameters (see ``capabilities_from_uri``)."""
    query = "&".join(f"{k}={v}" for k, v in shape.items())
    return f"sim://{name}" + (f"?{query}" if query else "")


def capabilities_from_uri(uri: str) -> HostCapabilities:
    """Topology of a simulated host. Parameters: sockets, cores (per socket), threads (per core), nodes
    (NUMA nodes, 0 = no NUMA; spread evenly over sockets), memory (MiB), hp2m / hp1g (pages per node, or
    per host without NUMA), flags (comma list), model, offline (cpuset of offline CPUs), tsc (kHz)."""
    parts = urlsplit(uri)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}

    def number(key: str, default: int, low: int, high: int) -> int:
        try:
            value = int(query.get(key, default))
        except ValueError:
            raise HypervisorError(f"Simulated host URI {uri}: {key} must be a whole number.", "failed") from None
        if not low <= value <= high:
            raise HypervisorError(f"Simulated host URI {uri}: {key} must be from {low} to {high}.", "failed")
        return value

    sockets, cores = number("sockets", 1, 1, MAX_PER_LEVEL), number("cores", 4, 1, MAX_PER_LEVEL)
    threads = number("threads", 1, 1, MAX_PER_LEVEL)
    nodes, memory = number("nodes", 1, 0, MAX_NUMA_NODES), number("memory", 32768, 1, MAX_AMOUNT)
    if sockets * cores * threads > MAX_CPUS:
        raise HypervisorError(
            f"Simulated host URI {uri}: {sockets * cores * threads} CPUs are too many; a simulated host has at most "
            f"{MAX_CPUS}."
        )
    if nodes and (nodes % sockets and sockets % nodes):
        raise HypervisorError(f"Simulated host URI {uri}: {nodes} NUMA nodes do not divide {sockets} sockets.")
    if nodes > sockets * cores:
        raise HypervisorError(f"Simulated host URI {uri}: {nodes} NUMA nodes need at least as many cores.")
    try:
        offline = {int(c) for c in query.get("offline", "").split(",") if c.strip()}
    except ValueError:
        raise HypervisorError(f"Simulated host URI {uri}: offline must list CPU numbers, e.g. 3,7.") from None
    per_socket = sockets * cores
    cpus = []
    for thread in range(threads):
        for sock in range(sockets):
            for core in range(cores):
                core_id = sock * cores + core
                cpu_id = thread * per_socket + core_id
                node = None
                if nodes:
                    # A node covers a whole socket or an even share of one (sub-NUMA clustering).
                    node = sock * nodes // sockets + (core * max(nodes // sockets, 1)) // cores
                cpus.append(CpuInfo(cpu_id, sock, core_id, node, cpu_id not in offline))
    cpus.sort(key=lambda c: c.id)
    pools = {size: number(key, 0, 0, MAX_AMOUNT) for size, key in ((2048, "hp2m"), (1048576, "hp1g"))}
    pools = {size: count for size, count in pools.items() if count}
    numa_nodes = tuple(
        NumaNodeInfo(
            index=i,
            memory_mib=memory // nodes,
            cpus=tuple(c.id for c in cpus if c.node == i),
            distances={j: 10 if i == j else 21 for j in range(nodes)},
            hugepages=dict(pools),
        )
        for i in range(nodes)
    )
    return HostCapabilities(
        cpu_model=query.get("model", "Intel Xeon Gold 6338 (simulated)"),
        cpu_flags=frozenset(f for f in query.get("flags", DEFAULT_FLAGS).split(",") if f),
        sockets=sockets,
        cores_per_socket=cores,
        threads_per_core=threads,
        cpus=tuple(cpus),
        numa_nodes=numa_nodes,
        memory_mib=memory,
        hugepages={} if nodes else pools,
        tsc_khz=number("tsc", 2000000, 1, MAX_AMOUNT),
        hostname=parts.hostname or parts.netloc,
    )


def spec_to_json(spec: DomainSpec) -> dict:
    return dataclasses.asdict(spec)


def _cell_from_json(data: dict) -> GuestNumaCell:
    # Domains recorded by earlier versions name a single ``host_node`` (None: not bound).
    single = data.get("host_node")
    nodes = data.get("host_nodes", () if single is None else (single,))
    fields = {k: v for k, v in data.items() if k != "host_node"}
    return GuestNumaCell(**{**fields, "vcpus": tuple(data["vcpus"]), "host_nodes": tuple(nodes)})


def spec_from_json(data: dict) -> DomainSpec:
    cells = tuple(_cell_from_json(c) for c in data.get("numa_cells", ()))
    pins = {int(k): tuple(v) for k, v in data.get("vcpu_pins", {}).items()}
    return DomainSpec(
        **{
            **data,
            "numa_cells": cells,
            "vcpu_pins": pins,
            "emulator_cpus": tuple(data.get("emulator_cpus", ())),
            "iothread_cpus": tuple(data.get("iothread_cpus", ())),
        }
    )


class _Faults:
    """The faults set on some hosts, read in one query."""

    def __init__(self, *uris: str) -> None:
        self._faults = {(f.host_uri, f.kind): f for f in SimulatedFault.objects.filter(host_uri__in=uris)}

    def check_reachable(self, uri: str) -> None:
        if (uri, FaultKind.UNREACHABLE) in self._faults or (uri, FaultKind.POWERED_OFF) in self._faults:
            raise HypervisorError(f"Host {uri} does not answer (connection timed out).", "unreachable")

    def take(self, uri: str, kind: FaultKind) -> bool:
        """Whether the fault is on for the host; a fault with a count is used up one at a time."""
        fault = self._faults.get((uri, kind))
        if fault is None:
            return False
        if fault.times == 1:
            fault.delete()
        elif fault.times > 1:
            SimulatedFault.objects.filter(pk=fault.pk).update(times=fault.times - 1)
        return True


# -- a host's failure, fencing and recovery (from tests, the demo and ``manage.py simulate_host``) ---------------


def fail_host(uri: str) -> None:
    """The host hangs: it stops answering, and its guests are left as they were (as far as anyone can tell, a
    hung host still runs them)."""
    with transaction.atomic():
        SimulatedFault.objects.filter(host_uri=uri, kind=FaultKind.UNREACHABLE).delete()
        SimulatedFault.objects.create(host_uri=uri, kind=FaultKind.UNREACHABLE)


def power_off_host(uri: str) -> None:
    """The host's power is cut (by its power management, or by hand): it does not answer, and its guests are
    gone."""
    with transaction.atomic():
        SimulatedDomain.objects.filter(host_uri=uri).delete()
        if not SimulatedFault.objects.filter(host_uri=uri, kind=FaultKind.POWERED_OFF).exists():
            SimulatedFault.objects.create(host_uri=uri, kind=FaultKind.POWERED_OFF)


def reconnect_host(uri: str) -> None:
    """A hung host (or its network) recovers: it answers again, its guests as they were."""
    SimulatedFault.objects.filter(host_uri=uri, kind=FaultKind.UNREACHABLE).delete()


def set_extra_load(uri: str, percent: float) -> None:
    """CPU load the host carries besides its guests from now on (0-100 % of its CPU time)."""
    if not 0 <= percent <= 100:
        raise ValueError(f"An extra load is a percentage from 0 to 100, not {percent:g}.")
    SimulatedHostLoad.objects.update_or_create(host_uri=uri, defaults={"extra_percent": percent})


def recover_host(uri: str) -> None:
    """The host is back after a reboot: it is on and answers again, with nothing running."""
    with transaction.atomic():
        SimulatedDomain.objects.filter(host_uri=uri).delete()
        SimulatedFault.objects.filter(host_uri=uri, kind__in=(FaultKind.UNREACHABLE, FaultKind.POWERED_OFF)).delete()


class SimulatedDriver:
    """Implements ``hpadmin.hypervisor.base.Driver`` for ``sim://`` hosts."""

    def _check_reachable(self, uri: str) -> None:
        _Faults(uri).check_reachable(uri)

    def _domain(self, uri: str, name: str) -> SimulatedDomain:
        try:
            return SimulatedDomain.objects.get(host_uri=uri, name=name)
        except SimulatedDomain.DoesNotExist:
            raise HypervisorError(f"VM {name} is not running on {uri}.", "not_found") from None

    def check_uri(self, uri: str) -> None:
        parts = urlsplit(uri)
        if not parts.hostname:
            raise ValueError(f"{uri}: give the host a name, e.g. sim://h1?nodes=2.")
        unknown = sorted(set(parse_qs(parts.query, keep_blank_values=True)) - SHAPE_PARAMETERS)
        if unknown:
            raise ValueError(
                f"{uri}: unknown parameter {', '.join(unknown)}; a simulated host takes "
                f"{', '.join(sorted(SHAPE_PARAMETERS))}."
            )
        try:
            capabilities_from_uri(uri)
        except HypervisorError as exc:
            raise ValueError(exc.message) from None

    def capabilities(self, uri: str) -> HostCapabilities:
        self._check_reachable(uri)
        return capabilities_from_uri(uri)

    def ping(self, uri: str) -> None:
        self._check_reachable(uri)

    def power_off(self, uri: str, fence_command: str) -> None:
        """Fencing a simulated host runs its fence command as a real host's is run (``true`` will do), and cuts
        the simulated host's power once that succeeded."""
        if not fence_command.strip():
            raise HypervisorError(f"Host {uri} has no power management: it has no fence command.", "refused")
        run_fence_command(fence_command)
        power_off_host(uri)

    def power_status(self, uri: str) -> PowerState:
        off = SimulatedFault.objects.filter(host_uri=uri, kind=FaultKind.POWERED_OFF).exists()
        return PowerState.OFF if off else PowerState.ON

    def cpu_load(self, uri: str) -> float:
        """What the host runs: its running (and migrating) guests' vCPUs, each busy :data:`GUEST_CPU_UTILIZATION`
        of the time, over its online CPUs; plus the extra load set for the host (``SimulatedHostLoad``). At most
        100 %."""
        self._check_reachable(uri)
        online = len(capabilities_from_uri(uri).online_cpus) or 1
        specs = SimulatedDomain.objects.filter(
            host_uri=uri, state__in=(DomainState.RUNNING, DomainState.MIGRATING)
        ).values_list("spec", flat=True)
        vcpus = sum(spec["sockets"] * spec["cores"] * spec["threads"] for spec in specs)
        extra = SimulatedHostLoad.objects.filter(host_uri=uri).values_list("extra_percent", flat=True).first() or 0.0
        return max(0.0, min(100.0, 100.0 * vcpus * GUEST_CPU_UTILIZATION / online + extra))

    def list_domains(self, uri: str) -> list[str]:
        self._check_reachable(uri)
        return list(SimulatedDomain.objects.filter(host_uri=uri).order_by("name").values_list("name", flat=True))

    def domain_state(self, uri: str, name: str) -> DomainState:
        domain = SimulatedDomain.objects.filter(host_uri=uri, name=name).first()
        if domain is None:
            return DomainState.MISSING
        if domain.state == DomainState.MIGRATING and is_alive(domain.migrated_by) is False:
            # The process copying the guest died, and the migration with it: the guest runs on here.
            SimulatedDomain.objects.filter(pk=domain.pk).update(state="running", migrating_to="", migrated_by="")
            return DomainState.RUNNING
        return DomainState(domain.state)

    def start(self, uri: str, spec: DomainSpec) -> None:
        self._check_reachable(uri)
        if SimulatedDomain.objects.filter(host_uri=uri, name=spec.name).exists():
            raise HypervisorError(f"VM {spec.name} already runs on {uri}.", "refused")
        SimulatedDomain.objects.create(host_uri=uri, name=spec.name, spec=spec_to_json(spec))

    def stop(self, uri: str, name: str) -> None:
        self._check_reachable(uri)
        deleted, _ = SimulatedDomain.objects.filter(host_uri=uri, name=name).delete()
        if not deleted:
            raise HypervisorError(f"VM {name} is not running on {uri}.", "not_found")

    def applied_pinning(self, uri: str, name: str) -> AppliedPinning:
        spec = spec_from_json(self._domain(uri, name).spec)
        return AppliedPinning(
            vcpus=dict(spec.vcpu_pins),
            emulator=spec.emulator_cpus,
            iothreads={i + 1: spec.iothread_cpus for i in range(spec.iothreads)},
        )

    def reboot(self, uri: str, name: str) -> None:
        """A simulated guest restarts at once: the domain keeps running where it is, as it was."""
        self._check_reachable(uri)
        if self._domain(uri, name).state == DomainState.MIGRATING:
            raise HypervisorError(f"VM {name} is migrating from {uri}; reboot it once the migration ended.", "refused")

    def console(self, uri: str, name: str) -> Console | None:
        """VNC on the host's loopback, as libvirt's autoport gives it: 5900 plus the number of the host's domains
        with a display that started before this one."""
        self._check_reachable(uri)
        domain = self._domain(uri, name)
        if spec_from_json(domain.spec).headless:
            return None
        earlier = SimulatedDomain.objects.filter(host_uri=uri, pk__lt=domain.pk, spec__headless=False).count()
        return Console(protocol="vnc", address="127.0.0.1", port=5900 + earlier)

    def abort_migration(self, src_uri: str, name: str) -> None:
        updated = SimulatedDomain.objects.filter(host_uri=src_uri, name=name).exclude(migrating_to="")
        if not updated.update(abort_requested=True):
            raise HypervisorError(f"VM {name} has no migration running on {src_uri}.", "not_found")

    def migrate(
        self,
        src_uri: str,
        dst_uri: str,
        spec: DomainSpec,
        options: MigrationOptions,
        progress: Callable[[MigrationProgress], None],
    ) -> MigrationResult:
        faults = _Faults(src_uri, dst_uri)
        faults.check_reachable(src_uri)
        domains = {
            d.host_uri: d for d in SimulatedDomain.objects.filter(host_uri__in=(src_uri, dst_uri), name=spec.name)
        }
        source = domains.get(src_uri)
        if source is None:
            raise HypervisorError(f"VM {spec.name} is not running on {src_uri}.", "not_found")
        faults.check_reachable(dst_uri)
        if faults.take(dst_uri, FaultKind.REFUSE_INCOMING):
            raise HypervisorError(
                f"Destination {dst_uri} refused the migration: it could not start the VM with the requested pinning.",
                "refused",
            )
        if dst_uri in domains:
            raise HypervisorError(f"A VM named {spec.name} already exists on {dst_uri}.", "refused")
        fail_midway = faults.take(src_uri, FaultKind.FAIL_MIDWAY) or faults.take(dst_uri, FaultKind.FAIL_MIDWAY)
        stall = faults.take(src_uri, FaultKind.STALL)
        dirty = source.dirty_rate_mibps
        if faults.take(src_uri, FaultKind.NEVER_CONVERGE):
            dirty = (options.bandwidth_mibps or DEFAULT_BANDWIDTH_MIBPS) * 1.2
        # Who copies it: should that process die, the migration dies with it and the guest runs on here.
        SimulatedDomain.objects.filter(pk=source.pk).update(
            migrating_to=dst_uri, abort_requested=False, state="migrating", migrated_by=process_id()
        )
        try:
            if stall:  # the copy hangs after its set-up, reporting nothing, until someone aborts it
                progress(MigrationProgress("setup", 0.0, spec.memory_mib, spec.memory_mib, dirty, 0))
                self._wait(source.pk, math.inf)
            result = self._copy(source.pk, spec, options, dirty, fail_midway, progress)
            with transaction.atomic():
                # The destination takes the guest over only if it did not fail during the copy.
                _Faults(dst_uri).check_reachable(dst_uri)
                if not SimulatedDomain.objects.filter(pk=source.pk).delete()[0]:
                    raise HypervisorError("The migration failed: the source host stopped, and the VM with it.")
                SimulatedDomain.objects.create(
                    host_uri=dst_uri, name=spec.name, spec=spec_to_json(spec), dirty_rate_mibps=source.dirty_rate_mibps
                )
        except BaseException:
            SimulatedDomain.objects.filter(pk=source.pk).update(
                migrating_to="", migrated_by="", abort_requested=False, state="running"
            )
            raise
        return result

    def _copy(
        self,
        domain_pk: int,
        spec: DomainSpec,
        options: MigrationOptions,
        dirty: float,
        fail_midway: bool,
        progress: Callable[[MigrationProgress], None],
    ) -> MigrationResult:
        """Run the pre-copy passes (and post-copy or throttling when they stall) against the clock."""
        speed = max(float(getattr(settings, "HPADMIN_SIMULATION_SPEED", 1.0)), 1e-6)
        bandwidth = float(options.bandwidth_mibps or DEFAULT_BANDWIDTH_MIBPS)
        max_downtime_s = (options.max_downtime_ms or DEFAULT_MAX_DOWNTIME_MS) / 1000
        total = float(spec.memory_mib)
        remaining, transferred, elapsed = total, 0.0, 0.0
        throttle, stalled, phase = 0.0, 0, "precopy"
        progress(MigrationProgress("setup", 0.0, total, total, dirty, 0))
        for iteration in range(1, MAX_ITERATIONS + 1):
            pass_s = remaining / bandwidth
            # Report along the pass, as QEMU's job stats would, about four times a (real) second.
            steps = max(1, math.ceil(pass_s / speed / PROGRESS_STEP_S))
            for step in range(1, steps + 1):
                self._wait(domain_pk, pass_s / steps / speed)
                done = remaining * step / steps
                if fail_midway and transferred + done >= total / 2:
                    raise HypervisorError("The migration failed during the memory copy: the connection was reset.")
                if step < steps:
                    percent = min(99.0, 100.0 * (transferred + done) / (transferred + remaining))
                    rate = dirty * (1 - throttle)
                    progress(MigrationProgress(phase, percent, total, remaining - done, rate, iteration))
            elapsed += pass_s
            transferred += remaining
            dirtied = min(total, dirty * (1 - throttle) * pass_s)
            stalled = stalled + 1 if dirtied > remaining / 2 else 0
            remaining = max(dirtied, 0.0)
            percent = min(99.0, 100.0 * transferred / (transferred + remaining))
            progress(MigrationProgress(phase, percent, total, remaining, dirty * (1 - throttle), iteration))
            if remaining / bandwidth <= max_downtime_s:
                downtime_ms = 1000 * remaining / bandwidth + 5.0
                break
            if options.timeout_s is not None and elapsed >= options.timeout_s:
                raise HypervisorError(
                    f"The migration did not converge within {options.timeout_s:g} s "
                    f"(the guest writes {dirty:.0f} MiB/s, the link copies {bandwidth:.0f} MiB/s).",
                    "timeout",
                )
            if stalled >= STALL_ITERATIONS:
                if options.post_copy:
                    # Switch over now; the destination pulls the rest on demand.
                    progress(MigrationProgress("postcopy", percent, total, remaining, 0.0, iteration + 1))
                    self._wait(domain_pk, remaining / bandwidth / speed)
                    transferred += remaining
                    downtime_ms = 20.0
                    break
                if options.auto_converge and throttle < 0.99:
                    # QEMU's auto-converge: start throttling the guest's vCPUs at 20 %, then 10 % more each time.
                    throttle = min(0.99, throttle + (0.2 if throttle == 0 else 0.1))
                    stalled = 0
        else:
            raise HypervisorError(
                f"The migration did not converge after {MAX_ITERATIONS} passes: the guest writes memory as fast "
                "as the link copies it. Use a policy with auto-converge or post-copy.",
                "timeout",
            )
        progress(MigrationProgress("completing", 100.0, total, 0.0, 0.0, iteration, downtime_ms))
        return MigrationResult(duration_s=elapsed, downtime_ms=downtime_ms, transferred_mib=transferred)

    def _wait(self, domain_pk: int, seconds: float) -> None:
        """Sleep in short steps, stopping when an admin aborts the migration from any process, or when the
        guest is gone (its host was powered off)."""
        deadline = time.monotonic() + seconds
        while True:
            aborted = SimulatedDomain.objects.filter(pk=domain_pk).values_list("abort_requested", flat=True).first()
            if aborted is None:
                raise HypervisorError("The migration failed: the source host stopped, and the VM with it.")
            if aborted:
                raise HypervisorError("The migration was cancelled by the user.", "aborted")
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.2))
