"""The libvirt driver: real hosts through libvirt-python.

One connection per URI and process, shared by its threads (libvirt connections are thread-safe);
a forked worker opens its own, and a connection that died is reopened on next use. Opening a connection
and every query are bounded by ``HPADMIN_LIBVIRT_TIMEOUT``: libvirt's client itself waits for a host that
accepted the TCP connection but does not answer for as long as the kernel keeps the socket.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import libvirt
from django.conf import settings

from hpadmin.hypervisor.base import (
    AppliedPinning,
    Console,
    DomainSpec,
    DomainState,
    HostCapabilities,
    HypervisorError,
    MigrationOptions,
    MigrationProgress,
    MigrationResult,
    PowerState,
)
from hpadmin.hypervisor.capabilities import guest_virt_type, parse_capabilities
from hpadmin.hypervisor.domain_xml import build_domain_xml, parse_console, rewrite_for_destination, startable
from hpadmin.hypervisor.fencing import run_fence_command

logger = logging.getLogger(__name__)

# libvirt prints every error to stderr unless told otherwise; they are raised as exceptions anyway.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

MIB = 1024 * 1024
TRANSPORTS = ("qemu+tcp", "qemu+tls", "qemu+ssh", "qemu+unix", "qemu")
# URI parameters that only say how to authenticate or verify the host. The others (command, socket, netcat,
# proxy, ...) make libvirt run a program or talk through another channel, so an API token could run code here.
SAFE_PARAMETERS = frozenset(
    {"no_verify", "no_tty", "pkipath", "keyfile", "known_hosts", "known_hosts_verify", "sshauth"}
)
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
# A host's CPU load is measured over this long (two readings of its CPU time counters).
LOAD_INTERVAL_S = 1.0
LOAD_SAMPLE_MAX_AGE_S = 600.0  # an older reading of a host's CPU counters is read again
_MIGRATION_JOBS = {libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN, libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT}


def host_label(uri: str) -> str:
    """A short name for a host in messages: ``host:port`` of the URI, or the URI itself."""
    return urlsplit(uri).netloc or uri


def _bounded(call: Callable[[], object], seconds: float, timeout: HypervisorError):
    """``call()`` in a thread of its own, given up after ``seconds``: a thread blocked on a dead host is left to
    the kernel, the request goes on."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="libvirt-call", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise timeout
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _cpus(cpumap: tuple[bool, ...] | list[bool]) -> tuple[int, ...]:
    return tuple(i for i, on in enumerate(cpumap) if on)


def _is_connection_error(error: libvirt.libvirtError) -> bool:
    return error.get_error_domain() in (libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE) or error.get_error_code() in (
        libvirt.VIR_ERR_NO_CONNECT,
        libvirt.VIR_ERR_INVALID_CONN,
        libvirt.VIR_ERR_RPC,
    )


def _translate(error: libvirt.libvirtError, uri: str, name: str | None = None) -> HypervisorError:
    """A libvirt error as an admin should read it."""
    code = error.get_error_code()
    detail = error.get_error_message() or str(error)
    host = host_label(uri)
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return HypervisorError(f"VM {name} does not exist on host {host}.", "not_found")
    if _is_connection_error(error):
        return HypervisorError(f"Host {host} is unreachable: {detail}", "unreachable")
    if code == libvirt.VIR_ERR_OPERATION_ABORTED:
        return HypervisorError(f"The operation on {name or host} was cancelled.", "aborted")
    if code == libvirt.VIR_ERR_OPERATION_TIMEOUT:
        return HypervisorError(f"Host {host} timed out: {detail}", "timeout")
    return HypervisorError(f"Host {host}: {detail}", "failed")


def _progress(stats: dict, state: tuple[int, int] | None, best_percent: float) -> MigrationProgress:
    """A progress report from a source domain's ``jobStats()`` and ``state()``."""
    total = stats.get("data_total", 0)
    remaining = stats.get("data_remaining", 0)
    if state == (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY):
        phase = "postcopy"
    elif not total:
        phase = "setup"
    elif state == (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_MIGRATION) or remaining == 0:
        phase = "completing"
    else:
        phase = "precopy"
    percent = 100.0 * (total - remaining) / total if total else 0.0
    dirty_pages = stats.get("memory_dirty_rate", 0)
    return MigrationProgress(
        phase=phase,
        # Each pre-copy pass starts over on the pages dirtied meanwhile; an admin expects no step back.
        percent=max(best_percent, round(percent, 1)),
        data_total_mib=total / MIB,
        data_remaining_mib=remaining / MIB,
        dirty_rate_mibps=dirty_pages * stats.get("memory_page_size", 4096) / MIB,
        iteration=stats.get("memory_iteration", 0),
        downtime_ms=stats.get("downtime"),
    )


class LibvirtDriver:
    """:class:`~hpadmin.hypervisor.base.Driver` for libvirt hosts (``qemu+tcp://``, ``qemu+ssh://``, ...)."""

    def __init__(self, poll_interval_s: float = 0.2, load_interval_s: float = LOAD_INTERVAL_S) -> None:
        self.poll_interval_s = poll_interval_s
        self.load_interval_s = load_interval_s
        self._cpu_samples: dict[str, tuple[float, dict[str, int]]] = {}  # uri -> (when, CPU time counters)
        self._lock = threading.Lock()
        self._connections: dict[str, libvirt.virConnect] = {}
        self._pid = os.getpid()

    @property
    def timeout_s(self) -> float:
        return float(settings.HPADMIN_LIBVIRT_TIMEOUT)

    def check_uri(self, uri: str) -> None:
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        if scheme not in TRANSPORTS:
            raise ValueError(f"{uri}: hpadmin reaches libvirt over {', '.join(f'{t}://' for t in TRANSPORTS)} only.")
        if scheme == "qemu" and parts.netloc:
            raise ValueError(f"{uri}: name the transport of a remote host, e.g. qemu+tcp://{parts.netloc}/system.")
        if parts.path != "/system":
            raise ValueError(f"{uri}: hpadmin manages the system instance of libvirt (…/system).")
        unsafe = sorted(set(parse_qs(parts.query, keep_blank_values=True)) - SAFE_PARAMETERS)
        if unsafe:
            raise ValueError(
                f"{uri}: the parameter{'s' if len(unsafe) > 1 else ''} {', '.join(unsafe)} "
                f"{'are' if len(unsafe) > 1 else 'is'} not allowed; hpadmin accepts only "
                f"{', '.join(sorted(SAFE_PARAMETERS))}."
            )

    def _silent(self, uri: str, role: str = "Host") -> HypervisorError:
        return HypervisorError(f"{role} {host_label(uri)} did not answer within {self.timeout_s:g} s.", "unreachable")

    # -- connections -----------------------------------------------------------------------------

    def _connect(self, uri: str, role: str = "Host") -> libvirt.virConnect:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child must not talk over its parent's sockets.
                self._connections = {}
                self._pid = os.getpid()
            conn = self._connections.get(uri)
        if conn is not None and _alive(conn):
            return conn
        # Opened outside the lock: a host that takes long to answer must not hold up the others.
        try:
            conn = _bounded(lambda: libvirt.open(uri), self.timeout_s, self._silent(uri, role))
        except libvirt.libvirtError as error:
            detail = error.get_error_message() or str(error)
            raise HypervisorError(f"{role} {host_label(uri)} is unreachable: {detail}", "unreachable") from error
        with self._lock:
            self._connections[uri] = conn
        return conn

    def _forget(self, uri: str, conn: libvirt.virConnect) -> None:
        with self._lock:
            if self._connections.get(uri) is conn:
                del self._connections[uri]
        try:
            conn.close()
        except libvirt.libvirtError:
            pass  # it is dead already

    def _query(self, uri: str, name: str | None, fn: Callable[[libvirt.virConnect], object]):
        """Run a read-only call; retried once on a fresh connection when the cached one turns out dead."""
        conn = self._connect(uri)
        try:
            return _bounded(lambda: fn(conn), self.timeout_s, self._silent(uri))
        except libvirt.libvirtError as error:
            if not _is_connection_error(error):
                raise _translate(error, uri, name) from error
            self._forget(uri, conn)
        conn = self._connect(uri)
        try:
            return _bounded(lambda: fn(conn), self.timeout_s, self._silent(uri))
        except libvirt.libvirtError as error:
            raise _translate(error, uri, name) from error

    def _domain(self, uri: str, name: str) -> libvirt.virDomain:
        return self._query(uri, name, lambda conn: conn.lookupByName(name))

    # -- host ------------------------------------------------------------------------------------

    def capabilities(self, uri: str) -> HostCapabilities:
        def read(conn: libvirt.virConnect) -> HostCapabilities:
            xml = conn.getCapabilities()
            return parse_capabilities(
                xml, hostname=conn.getHostname(), memory_mib=conn.getInfo()[1], cpu_flags=_expanded_features(conn, xml)
            )

        return self._query(uri, None, read)

    def ping(self, uri: str) -> None:
        self._query(uri, None, lambda conn: conn.getLibVersion())

    def power_off(self, uri: str, fence_command: str) -> None:
        """libvirt cannot switch its own host off: the host's fence command (its BMC) does."""
        if not fence_command.strip():
            raise HypervisorError(
                f"Host {host_label(uri)} has no power management: it has no fence command.", "refused"
            )
        run_fence_command(fence_command)

    def power_status(self, uri: str) -> PowerState:
        """On while libvirt answers; otherwise off or hung, which only the host's power management could tell."""
        try:
            self.ping(uri)
        except HypervisorError:
            return PowerState.UNKNOWN
        return PowerState.ON

    def cpu_load(self, uri: str) -> float:
        """The share of the host's CPU time (``getCPUStats`` over all CPUs) that was neither idle nor waiting for
        I/O since this process last read it, within ``LOAD_SAMPLE_MAX_AGE_S``: over the balancing interval, and
        without waiting. A first reading (or a stale one) reads the counters twice, ``load_interval_s`` apart."""

        def read(conn: libvirt.virConnect) -> dict[str, int]:
            return conn.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS)

        last = self._cpu_samples.get(uri)
        if last is None or time.monotonic() - last[0] > LOAD_SAMPLE_MAX_AGE_S:
            last = (time.monotonic(), self._query(uri, None, read))
            time.sleep(self.load_interval_s)
        now = self._query(uri, None, read)
        self._cpu_samples[uri] = (time.monotonic(), now)
        return busy_percent(last[1], now)

    def list_domains(self, uri: str) -> list[str]:
        return self._query(uri, None, lambda conn: sorted(d.name() for d in conn.listAllDomains(0)))

    # -- domains ---------------------------------------------------------------------------------

    def domain_state(self, uri: str, name: str) -> DomainState:
        def read(conn: libvirt.virConnect) -> DomainState:
            try:
                dom = conn.lookupByName(name)
            except libvirt.libvirtError as error:
                if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return DomainState.MISSING
                raise
            state, reason = dom.state()
            if state in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED, libvirt.VIR_DOMAIN_SHUTDOWN):
                return DomainState.SHUTOFF
            if _migration_job(dom):
                return DomainState.MIGRATING
            if state == libvirt.VIR_DOMAIN_PAUSED and reason in (
                libvirt.VIR_DOMAIN_PAUSED_MIGRATION,
                libvirt.VIR_DOMAIN_PAUSED_POSTCOPY,
            ):
                return DomainState.MIGRATING
            if state in (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PMSUSPENDED):
                return DomainState.PAUSED
            return DomainState.RUNNING

        return self._query(uri, name, read)

    def start(self, uri: str, spec: DomainSpec) -> None:
        conn = self._connect(uri)
        boot = startable(spec)
        try:
            virt_type, arch = guest_virt_type(conn.getCapabilities())
            dom = conn.defineXML(build_domain_xml(boot, virt_type=virt_type, arch=arch))
        except libvirt.libvirtError as error:
            raise _translate(error, uri, spec.name) from error
        try:
            dom.create()
            if boot != spec:
                for running_or_next_start in (libvirt.VIR_DOMAIN_AFFECT_LIVE, libvirt.VIR_DOMAIN_AFFECT_CONFIG):
                    _pin_emulator(dom, spec.emulator_cpus, running_or_next_start)
        except libvirt.libvirtError as error:
            # A VM that could not start (or not as pinned) is not left behind running or half-defined.
            if dom.isActive():
                dom.destroy()
            _undefine(dom)
            detail = error.get_error_message() or str(error)
            raise HypervisorError(f"Host {host_label(uri)} could not start VM {spec.name}: {detail}") from error

    def stop(self, uri: str, name: str) -> None:
        dom = self._domain(uri, name)
        try:
            if dom.isActive():
                dom.destroy()
            _undefine(dom)
        except libvirt.libvirtError as error:
            raise _translate(error, uri, name) from error

    def applied_pinning(self, uri: str, name: str) -> AppliedPinning:
        def read(conn: libvirt.virConnect) -> AppliedPinning:
            dom = conn.lookupByName(name)
            iothreads: dict[int, tuple[int, ...]] = {}
            try:
                iothreads = {iothread: _cpus(cpumap) for iothread, cpumap in dom.ioThreadInfo(0)}
            except libvirt.libvirtError as error:
                if error.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    raise
            return AppliedPinning(
                vcpus={vcpu: _cpus(cpumap) for vcpu, cpumap in enumerate(dom.vcpuPinInfo(0))},
                emulator=_cpus(dom.emulatorPinInfo(0)),
                iothreads=iothreads,
            )

        return self._query(uri, name, read)

    def reboot(self, uri: str, name: str) -> None:
        dom = self._domain(uri, name)
        try:
            dom.reboot(0)
        except libvirt.libvirtError as error:
            raise _translate(error, uri, name) from error

    def console(self, uri: str, name: str) -> Console | None:
        """The display of the running domain's live XML: the port is the one QEMU was given at start."""
        return parse_console(self._query(uri, name, lambda conn: conn.lookupByName(name).XMLDesc(0)))

    # -- migration -------------------------------------------------------------------------------

    def migrate(
        self,
        src_uri: str,
        dst_uri: str,
        spec: DomainSpec,
        options: MigrationOptions,
        progress: Callable[[MigrationProgress], None],
    ) -> MigrationResult:
        """Managed direct live migration carrying the destination's pinning in its domain XML.

        ``migrate3`` blocks, so it runs in a thread while this one polls the source's job stats,
        reports progress, enforces ``timeout_s`` and switches to post-copy after the first full pass.
        """
        name, dst = spec.name, host_label(dst_uri)
        dom = self._domain(src_uri, name)
        dst_conn = self._connect(dst_uri, role="Destination host")
        try:
            # The VM arrives as it can start there, and is pinned as scheduled once it runs (see ``startable``).
            arrival = startable(spec)
            params = self._migration_params(dom, dst_uri, spec, arrival, options)
            if options.max_downtime_ms is not None:
                dom.migrateSetMaxDowntime(options.max_downtime_ms, 0)
        except libvirt.libvirtError as error:
            raise _translate(error, src_uri, name) from error

        flags = (
            libvirt.VIR_MIGRATE_LIVE
            | libvirt.VIR_MIGRATE_PERSIST_DEST
            | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
            | libvirt.VIR_MIGRATE_ABORT_ON_ERROR
        )
        if options.auto_converge:
            flags |= libvirt.VIR_MIGRATE_AUTO_CONVERGE
        if options.compression:
            flags |= libvirt.VIR_MIGRATE_COMPRESSED
        if options.post_copy:
            flags |= libvirt.VIR_MIGRATE_POSTCOPY

        outcome: dict[str, object] = {}

        def run() -> None:
            try:
                outcome["domain"] = dom.migrate3(dst_conn, params, flags)
            except Exception as error:  # handed over to the calling thread
                outcome["error"] = error

        started = time.monotonic()
        worker = threading.Thread(target=run, name=f"migrate-{name}", daemon=True)
        worker.start()
        last_stats: dict = {}
        best_percent = 0.0
        transferring = timed_out = post_copy_started = False
        try:
            while True:
                worker.join(self.poll_interval_s)
                if not worker.is_alive():
                    break
                stats, state = _job_snapshot(dom)
                if stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) == libvirt.VIR_DOMAIN_JOB_NONE:
                    continue
                last_stats = stats
                transferring = transferring or stats.get("data_processed", 0) > 0
                report = _progress(stats, state, best_percent)
                best_percent = report.percent
                progress(report)
                if options.timeout_s is not None and time.monotonic() - started > options.timeout_s and not timed_out:
                    timed_out = True
                    _abort(dom)
                if options.post_copy and not post_copy_started and report.iteration >= 2:
                    post_copy_started = True
                    try:
                        dom.migrateStartPostCopy(0)
                    except libvirt.libvirtError:
                        pass  # it stays in pre-copy, which still converges or times out
        except BaseException:
            # The caller's callback failed or the worker is being shut down: do not leave a migration behind.
            _abort(dom)
            worker.join()
            raise

        duration = time.monotonic() - started
        error = outcome.get("error")
        if isinstance(error, libvirt.libvirtError):
            raise self._migration_error(error, src_uri, dst, name, timed_out, options, transferring) from error
        if isinstance(error, Exception):
            raise error

        if arrival != spec:
            self._pin_migrated_emulator(dst_uri, dst_conn, spec)
        stats = _completed_stats(outcome.get("domain")) or last_stats
        result = MigrationResult(
            duration_s=duration,
            downtime_ms=stats.get("downtime"),
            transferred_mib=stats.get("data_processed", 0) / MIB,
        )
        progress(
            MigrationProgress(
                phase="completing",
                percent=100.0,
                data_total_mib=stats.get("data_total", 0) / MIB,
                data_remaining_mib=0.0,
                dirty_rate_mibps=0.0,
                iteration=stats.get("memory_iteration", 0),
                downtime_ms=result.downtime_ms,
            )
        )
        return result

    @staticmethod
    def _pin_migrated_emulator(dst_uri: str, dst_conn: libvirt.virConnect, spec: DomainSpec) -> None:
        """Pin the emulator of a VM that arrived with it loose (see ``startable``). The VM runs on the destination
        whatever happens here: a failure is logged, and leaves the emulator on the VM's own pCPUs until its next
        start or migration."""
        try:
            _pin_emulator(dst_conn.lookupByName(spec.name), spec.emulator_cpus, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as error:
            logger.warning("VM %s on %s: emulator not pinned after the migration: %s", spec.name, dst_uri, error)

    @staticmethod
    def _migration_params(
        dom: libvirt.virDomain, dst_uri: str, spec: DomainSpec, arrival: DomainSpec, options: MigrationOptions
    ) -> dict:
        params: dict[str, object] = {
            libvirt.VIR_MIGRATE_PARAM_DEST_XML: rewrite_for_destination(
                dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE), arrival
            ),
        }
        if dom.isPersistent():
            # Without it the destination would persist the source's pinning for its next start.
            inactive = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE | libvirt.VIR_DOMAIN_XML_INACTIVE)
            params[libvirt.VIR_MIGRATE_PARAM_PERSIST_XML] = rewrite_for_destination(inactive, spec)
        host = urlsplit(dst_uri).hostname
        if host:
            # Migrate the memory to the address the admin registered, not to whatever the
            # destination's hostname resolves to.
            params[libvirt.VIR_MIGRATE_PARAM_URI] = f"tcp://[{host}]" if ":" in host else f"tcp://{host}"
            if host in _LOOPBACK:
                # Two daemons on one machine: the destination QEMU must listen where we connect.
                params[libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS] = host
        if options.bandwidth_mibps:
            params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = options.bandwidth_mibps
        return params

    @staticmethod
    def _migration_error(
        error: libvirt.libvirtError,
        src_uri: str,
        dst: str,
        name: str,
        timed_out: bool,
        options: MigrationOptions,
        transferring: bool,
    ) -> HypervisorError:
        detail = error.get_error_message() or str(error)
        code = error.get_error_code()
        if timed_out:
            return HypervisorError(
                f"Migration of {name} to {dst} did not finish within {options.timeout_s:g} s and was cancelled.",
                "timeout",
            )
        if code == libvirt.VIR_ERR_OPERATION_ABORTED:
            return HypervisorError(f"Migration of {name} to {dst} was cancelled.", "aborted")
        if _is_connection_error(error):
            return HypervisorError(f"Migration of {name} to {dst} lost its connection: {detail}", "unreachable")
        if code in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID):
            return _translate(error, src_uri, name)
        if not transferring:
            # Nothing was sent yet: the destination turned it down while preparing (its QEMU did not
            # start with the XML it was given, a CPU or node it does not have, same host, ...).
            return HypervisorError(f"Destination host {dst} refused VM {name}: {detail}", "refused")
        return HypervisorError(f"Migration of {name} to {dst} failed: {detail}", "failed")

    def abort_migration(self, src_uri: str, name: str) -> None:
        dom = self._domain(src_uri, name)
        if not _migration_job(dom):
            raise HypervisorError(f"No migration of VM {name} is running on host {host_label(src_uri)}.", "not_found")
        try:
            dom.abortJob()
        except libvirt.libvirtError as error:
            raise _translate(error, src_uri, name) from error


# -- helpers -----------------------------------------------------------------------------------------


def busy_percent(before: dict[str, int], after: dict[str, int]) -> float:
    """The percent of CPU time between two ``getCPUStats`` readings (nanoseconds of kernel, user, idle and iowait
    time, summed over the CPUs) that was busy: total - idle - iowait. 0 when no time passed."""
    spent = {key: after.get(key, 0) - before.get(key, 0) for key in ("kernel", "user", "idle", "iowait")}
    total = sum(spent.values())
    if total <= 0:
        return 0.0
    return max(0.0, min(100.0, 100.0 * (total - spent["idle"] - spent["iowait"]) / total))


def _alive(conn: libvirt.virConnect) -> bool:
    try:
        return conn.isAlive() == 1
    except libvirt.libvirtError:
        return False


def _expanded_features(conn: libvirt.virConnect, caps_xml: str) -> list[str] | None:
    """The host CPU's complete feature set: its model's features plus the extra ones.

    Capabilities only list the features beyond the named model; None when the host cannot expand
    them (libvirt's test driver), and the listed ones are used.
    """
    host_cpu = ET.fromstring(caps_xml).find("host/cpu")
    if host_cpu is None or host_cpu.find("model") is None:
        return None
    try:
        expanded = conn.baselineCPU(
            [ET.tostring(host_cpu, encoding="unicode")], libvirt.VIR_CONNECT_BASELINE_CPU_EXPAND_FEATURES
        )
    except libvirt.libvirtError:
        return None
    return [
        f.get("name")
        for f in ET.fromstring(expanded).findall("feature")
        if f.get("name") and f.get("policy", "require") == "require"
    ]


def _job_snapshot(dom: libvirt.virDomain) -> tuple[dict, tuple[int, int] | None]:
    """The source's current job stats and state; empty while the domain is between phases."""
    try:
        stats = dom.jobStats(0)
        state = tuple(dom.state())
    except libvirt.libvirtError:
        return {}, None
    return stats, state


def _migration_job(dom: libvirt.virDomain) -> bool:
    try:
        stats = dom.jobStats(0)
    except libvirt.libvirtError:
        return False
    return (
        stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) != libvirt.VIR_DOMAIN_JOB_NONE
        and stats.get("operation") in _MIGRATION_JOBS
    )


def _completed_stats(dom: object) -> dict:
    """Statistics of the finished migration, which the destination keeps from the source's report."""
    if not isinstance(dom, libvirt.virDomain):
        return {}
    try:
        return dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    except libvirt.libvirtError:
        return {}


def _abort(dom: libvirt.virDomain) -> None:
    try:
        dom.abortJob()
    except libvirt.libvirtError:
        pass  # nothing (left) to abort


def _pin_emulator(dom: libvirt.virDomain, cpus: tuple[int, ...], flags: int) -> None:
    size = dom.connect().getCPUMap()[0]
    dom.pinEmulator(tuple(cpu in cpus for cpu in range(size)), flags)


def _undefine(dom: libvirt.virDomain) -> None:
    try:
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
    except libvirt.libvirtError as error:
        # A transient domain is gone once it is off.
        if error.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID):
            raise
