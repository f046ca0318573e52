"""``tcplinger exporter``: Prometheus metrics, served over HTTP or written
for node_exporter's textfile collector (docs/exporter.md).

Each scrape reads the kernel afresh (export/prometheus.py builds the
metrics from it): one snapshot of the scope with tcp_info for the teardown
states, owners for the lingering sockets a process holds (the walk of
/proc/*/fd report uses: restricted to a namespace's own processes, skipped
on hosts with too many open files), then the diagnosis for
``tcplinger_finding``.  Kernel counters of the previous scrape make the
"rising counter" rules work without ``--interval``'s sleep.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ...collect import files
from ...collect import snapshot as snap_mod
from ...collect.snapshot import Roots, Scope
from ...diagnose import engine
from ...diagnose.inputs import NamespaceInput
from .. import query
from ..errors import CliError, Exit
from ..options import add_owners, add_scope, scope_from
from . import report

NAME = "exporter"
DEFAULT_PORT = 9469
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"


@dataclass(frozen=True)
class ExporterOptions:
    scope: Scope
    listen: tuple[str, int] = ("127.0.0.1", DEFAULT_PORT)
    web_config: Path | None = None
    textfile: Path | None = None
    interval: float | None = None  # textfile: rewrite every so many seconds; None: once
    top_owners: int = 10
    top_destinations: int = 5
    age_histograms: bool = True
    owners: bool | None = None  # None: automatic (as report)
    findings: bool = True
    thresholds: dict = field(default_factory=dict)


# ---- arguments ---------------------------------------------------------------

def listen_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (every address).

    >>> listen_address("127.0.0.1:9469"), listen_address("[::1]:80"), listen_address(":9469")
    (('127.0.0.1', 9469), ('::1', 80), ('', 9469))
    """
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        sep = ""  # an IPv6 address needs brackets
    if not sep or not port.isdigit() or not 0 < int(port) <= 65535:
        raise argparse.ArgumentTypeError(
            f"invalid listen address {text!r} (HOST:PORT, [IPv6]:PORT or :PORT)")
    return host, int(port)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"invalid number {text!r} (0 or more)")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 1 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"invalid interval {text!r} (1 to 86400 seconds)")
    return value


def register(sub) -> None:
    p = sub.add_parser(NAME, help="Prometheus exporter (HTTP, or a file for node_exporter)",
                       description="Serve Prometheus metrics built from a fresh snapshot at each "
                                   "scrape: sockets by state and owner, ages, orphans and "
                                   "TIME_WAIT against their limits, ephemeral ports, TcpExt "
                                   "counters, conntrack, and the current findings. Listens on "
                                   f"{DEFAULT_LISTEN} unless told otherwise.")
    add_scope(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--listen", type=listen_address, default=None, metavar="HOST:PORT",
                     help=f"address to serve /metrics on (default {DEFAULT_LISTEN}; "
                          f":{DEFAULT_PORT} for every address)")
    out.add_argument("--textfile", type=Path, metavar="DIR",
                     help="write DIR/tcplinger.prom for node_exporter's textfile collector "
                          "instead of serving")
    p.add_argument("--web-config", type=Path, metavar="FILE",
                   help="TLS and basic auth, in the Prometheus exporter-toolkit format")
    p.add_argument("--interval", type=_seconds, metavar="SECONDS",
                   help="with --textfile: rewrite the file every SECONDS (default: once)")
    p.add_argument("--top-owners", type=_count, default=10, metavar="K",
                   help="processes per namespace and state with their own owner label; the "
                        "rest are summed as owner=\"other\" (default 10)")
    p.add_argument("--top-destinations", type=_count, default=5, metavar="N",
                   help="busiest destinations per namespace in tcplinger_ephemeral_ports_used "
                        "(default 5)")
    p.add_argument("--no-age-histograms", dest="age_histograms", action="store_false",
                   help="export only the oldest age per state, not age histograms (16 series "
                        "per namespace, state and age source)")
    add_owners(p, "always find the processes owning lingering sockets")
    p.add_argument("--no-findings", dest="findings", action="store_false",
                   help="do not run the diagnosis (no tcplinger_finding)")
    p.add_argument("--threshold", action="append", default=[], metavar="RULE.NAME=VALUE",
                   help="override a rule threshold for tcplinger_finding; repeatable")
    p.set_defaults(run=lambda args, term, msg: run(options_from(args), term, msg))


def options_from(args) -> ExporterOptions:
    if args.web_config is not None and args.textfile is not None:
        raise CliError("--web-config applies to the HTTP server: not with --textfile", Exit.USAGE)
    if args.interval is not None and args.textfile is None:
        raise CliError("--interval applies to --textfile", Exit.USAGE)
    overrides = report.threshold_overrides(args.threshold)
    return ExporterOptions(
        scope=scope_from(args), listen=args.listen or ("127.0.0.1", DEFAULT_PORT),
        web_config=args.web_config, textfile=args.textfile, interval=args.interval,
        top_owners=args.top_owners, top_destinations=args.top_destinations,
        age_histograms=args.age_histograms, owners=args.owners,
        findings=args.findings, thresholds=overrides)


# ---- one scrape ----------------------------------------------------------------

class ScrapeSource:
    """Called once per scrape; returns export.prometheus.Scrape."""

    def __init__(self, opts: ExporterOptions, roots: Roots = Roots(), log=None):
        from ...export.prometheus import Scrape

        self._Scrape = Scrape
        self.opts = opts
        self.roots = roots
        self.log = log or (lambda line: None)
        self._previous: dict = {}  # netns inode -> (KernelContext, time.time())

    def __call__(self):
        opts, roots = self.opts, self.roots
        phases, errors = {}, []
        t = time.perf_counter()
        # A namespace that vanishes mid-scan (a pod going away) is skipped
        # by collect.snapshot.take() under --all-netns.
        view = query.collect(opts.scope, tcp_info=True, roots=roots)
        phases["snapshot"] = time.perf_counter() - t
        t = time.perf_counter()
        owners = opts.owners
        if owners is None:
            # report walks a namespace's own processes whatever their fd
            # count; at every scrape that can be too dear (~4 us per fd,
            # 4 s at 1M fds), so automatic mode estimates the walk first.
            n = owner_walk_files(view, roots)
            if n is not None and n >= files.AUTO_OWNERS_MAX_FILES:
                owners = False
        try:
            if owners is not False:
                report.attach_owners(view, report.DiagnoseOptions(opts.scope, owners), roots)
        except OSError as exc:
            errors.append("owners")
            self.log("owners", f"{exc.strerror or exc}")
        phases["owners"] = time.perf_counter() - t
        inputs = []
        for part in view.parts:
            prev = interval = None
            if part.ns.netns.inode in self._previous:
                prev, when = self._previous[part.ns.netns.inode]
                interval = max(part.ns.taken_at - when, 0.0)
            inputs.append(NamespaceInput(
                netns=part.ns.netns, kernel=part.ns.kernel, table=part.table, owners=part.owners,
                processes=report.fd_usage(part, roots) if opts.findings else {},
                previous=prev, interval=interval))
        findings = None
        if opts.findings:
            t = time.perf_counter()
            try:
                findings = engine.diagnose(inputs, thresholds=opts.thresholds,
                                           sysctl_files=report.read_sysctl_files(roots),
                                           sample_limit=0)
            except Exception as exc:  # noqa: BLE001 - the other metrics still count
                errors.append("diagnose")
                self.log("diagnose", f"{type(exc).__name__}: {exc}")
            phases["diagnose"] = time.perf_counter() - t
        self._previous = {p.ns.netns.inode: (p.ns.kernel, p.ns.taken_at) for p in view.parts}
        skipped = sum(1 for ref, _ in view.snapshot.skipped if ref is not None)
        return self._Scrape(inputs, findings, skipped=skipped,
                            owners_resolved=view.owners_resolved, phases=phases, errors=errors)

def owner_walk_files(view: query.View, roots: Roots) -> int | None:
    """Open files the owner walk would read: the host's (file-nr) when it
    walks every process, else the fds of the namespaces' own processes.

    The fd count of a process is the st_size of /proc/PID/fd since Linux
    6.2 ("proc: report open files as size in stat() for /proc/pid/fd",
    fs/proc/fd.c); before that st_size is 0 and the walk is not held back.
    """
    pids: set[int] = set()
    for part in view.parts:
        if not part.ns.pids or report.is_current(part, roots):
            return files.open_files(roots.proc)  # report walks every process then
        pids.update(part.ns.pids)
    total = 0
    for pid in pids:
        try:
            total += os.stat(f"{roots.proc}/{pid}/fd").st_size
        except OSError:
            continue
    return total


# ---- running ---------------------------------------------------------------------

def _modules(msg):
    """export.prometheus and friends import prometheus_client: say how to
    install it rather than fail at import time for every command."""
    try:
        from ...export import prometheus, server, textfile, webconfig
    except ImportError as exc:
        if exc.name and exc.name.startswith("prometheus_client"):
            raise CliError(msg("exporter.missing_module", feature="tcplinger exporter",
                               module="prometheus_client",
                               pip="'tcplinger[exporter]'", deb="python3-prometheus-client"),
                           Exit.UNSUPPORTED) from None
        raise
    return prometheus, textfile, webconfig, server


def run(opts: ExporterOptions, term, msg, roots: Roots = Roots()) -> int:
    prometheus, textfile, webconfig, server = _modules(msg)
    from prometheus_client import CollectorRegistry, ProcessCollector

    # Bad input first, before the first (possibly slow) snapshot: a
    # namespace that does not exist (NetnsNotFound: exit 3), a web config,
    # a textfile directory.
    snap_mod.resolve(opts.scope, roots)
    loaded = None
    if opts.web_config is not None:
        try:
            loaded = webconfig.load(opts.web_config)
        except webconfig.MissingModule as exc:
            raise CliError(msg("exporter.bad_web_config", path=opts.web_config, reason=exc),
                           Exit.UNSUPPORTED) from None
        except webconfig.WebConfigError as exc:
            raise CliError(msg("exporter.bad_web_config", path=opts.web_config, reason=exc),
                           Exit.USAGE) from None
    if opts.textfile is not None:
        try:
            textfile.check_directory(opts.textfile)
        except OSError as exc:
            raise _textfile_error(opts.textfile, exc, msg) from None

    def log(phase, text):
        term.err(msg("exporter.phase_failed", phase=phase, text=text))

    source = ScrapeSource(opts, roots, log=log)
    limits = prometheus.Limits(top_owners=opts.top_owners,
                               top_destinations=opts.top_destinations,
                               age_histograms=opts.age_histograms)
    collector = prometheus.TcplingerCollector(source, limits,
                                              log=lambda text: log("scrape", text))
    registry = CollectorRegistry()
    registry.register(collector)
    if opts.textfile is not None:
        return _write_files(opts, registry, collector, textfile, term, msg)
    ProcessCollector(registry=registry)  # the exporter's own CPU and memory
    return _serve(opts, registry, loaded, server, term, msg)


def _textfile_error(path: Path, exc: OSError, msg) -> CliError:
    code = {errno.ENOENT: Exit.NOT_FOUND, errno.ENOTDIR: Exit.NOT_FOUND,
            errno.EACCES: Exit.PERMISSION, errno.EPERM: Exit.PERMISSION}.get(exc.errno, Exit.ERROR)
    return CliError(msg("exporter.textfile_unwritable", path=path,
                        reason=exc.strerror or str(exc)), code)


def _write_files(opts, registry, collector, textfile, term, msg) -> int:
    stop = _StopOnSignal()
    with stop:
        while True:
            try:
                textfile.write(opts.textfile, registry)
            except OSError as exc:
                raise _textfile_error(opts.textfile, exc, msg) from None
            if opts.interval is None or stop.wait(opts.interval):
                break
    if opts.interval is None and not collector.last_ok:
        return int(Exit.ERROR)  # the file says tcplinger_scrape_success 0; so does the exit code
    return int(Exit.OK)


def _serve(opts, registry, loaded, http, term, msg) -> int:
    host, port = opts.listen
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        server = http.make_server(host, port, registry, loaded)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CliError(msg("exporter.port_busy", addr=shown), Exit.USAGE) from None
        code = Exit.PERMISSION if exc.errno == errno.EACCES else Exit.USAGE
        raise CliError(msg("exporter.listen_failed", addr=shown,
                           reason=exc.strerror or str(exc)), code) from None
    scheme = "https" if loaded is not None and loaded.context is not None else "http"
    auth = loaded is not None and loaded.auth is not None
    term.err(msg("exporter.listening", url=f"{scheme}://{shown}/metrics",
                 auth=msg("exporter.auth_on" if auth else "exporter.auth_off")))
    thread = threading.Thread(target=server.serve_forever, name="tcplinger-http", daemon=True)
    stop = _StopOnSignal()
    try:
        with stop:
            thread.start()
            stop.wait(None)
    finally:
        server.shutdown()
        server.server_close()
    return int(Exit.OK)


class _StopOnSignal:
    """SIGTERM (systemd, kubelet) ends the exporter cleanly with exit 0;
    Ctrl-C stays a KeyboardInterrupt (exit 130). Handlers can only be set
    from the main thread; elsewhere (tests) only the event stops it."""

    def __init__(self):
        self.event = threading.Event()
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGTERM, lambda *_: self.event.set())
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)

    def wait(self, seconds: float | None) -> bool:
        """True when stopped. Short waits so that Ctrl-C is seen at once."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while not self.event.is_set():
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if left <= 0:
                return False
            self.event.wait(left)
        return True
