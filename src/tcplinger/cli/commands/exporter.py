"""``tcplinger exporter``: Prometheus metrics, served over HTTP or written
for node_exporter's textfile collector (docs/exporter.md). What one scrape
reads is app/scrape.py's; this module parses, serves and writes."""

from __future__ import annotations

import errno
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ...app.scrape import ScrapeOptions, ScrapeSource
from ...collect import snapshot as snap_mod
from ...collect.roots import Roots
from ...model import units
from ..errors import CatalogError, CliError, Exit, exit_for
from ..options import (DAY, OptionError, add_owners, add_scope, count_type, directory,
                       duration_type, input_file, owner_policy, scope_from, thresholds)

NAME = "exporter"
DEFAULT_PORT = 9469
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"
#: --top-owners / --top-destinations at most: each one is a label set per
#: namespace and state, and Prometheus pays for every series
TOP_MAX = 10000


@dataclass(frozen=True)
class ExporterOptions:
    scrape: ScrapeOptions
    listen: tuple[str, int] = ("127.0.0.1", DEFAULT_PORT)
    web_config: Path | None = None
    textfile: Path | None = None
    interval: float | None = None  # textfile: rewrite every so many seconds; None: once
    top_owners: int = 10
    top_destinations: int = 5
    age_histograms: bool = True


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
    try:
        number = units.parse_count(port, minimum=1, maximum=65535) if sep else None
    except units.BadValue:
        number = None
    if number is None:
        raise OptionError("opt.invalid_listen",
                          "invalid listen address {value} (HOST:PORT, [IPv6]:PORT or :PORT)",
                          value=text)
    return host, number


def register(sub, h) -> None:
    p = sub.add_parser(NAME, help=h("help.exporter"),
                       description=h("help.exporter.about", listen=DEFAULT_LISTEN))
    add_scope(p, h)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--listen", type=listen_address, default=None, metavar="HOST:PORT",
                     help=h("help.exporter.listen", listen=DEFAULT_LISTEN, port=DEFAULT_PORT))
    out.add_argument("--textfile", type=directory, metavar="DIR",
                     help=h("help.exporter.textfile"))
    p.add_argument("--web-config", type=input_file, metavar="FILE",
                   help=h("help.exporter.web-config"))
    p.add_argument("--interval", type=duration_type(minimum=1, maximum=DAY), metavar="SECONDS",
                   help=h("help.exporter.interval"))
    p.add_argument("--top-owners", type=count_type(maximum=TOP_MAX), default=10, metavar="K",
                   help=h("help.exporter.top-owners"))
    p.add_argument("--top-destinations", type=count_type(maximum=TOP_MAX), default=5, metavar="N",
                   help=h("help.exporter.top-destinations"))
    p.add_argument("--no-age-histograms", dest="age_histograms", action="store_false",
                   help=h("help.exporter.no-age-histograms"))
    add_owners(p, h, "help.exporter.owners")
    p.add_argument("--no-findings", dest="findings", action="store_false",
                   help=h("help.exporter.no-findings"))
    p.add_argument("--threshold", action="append", default=[], metavar="RULE.NAME=VALUE",
                   help=h("help.exporter.threshold"))
    p.set_defaults(run=lambda args, term, msg: run(options_from(args), term, msg))


def options_from(args) -> ExporterOptions:
    if args.web_config is not None and args.textfile is not None:
        raise CatalogError("exporter.err.web_config_textfile", Exit.USAGE)
    if args.interval is not None and args.textfile is None:
        raise CatalogError("exporter.err.interval_needs_textfile", Exit.USAGE)
    scrape = ScrapeOptions(scope_from(args), owner_policy(args.owners), args.findings,
                           thresholds(args.threshold))
    return ExporterOptions(
        scrape, listen=args.listen or ("127.0.0.1", DEFAULT_PORT),
        web_config=args.web_config, textfile=args.textfile, interval=args.interval,
        top_owners=args.top_owners, top_destinations=args.top_destinations,
        age_histograms=args.age_histograms)


# ---- running ---------------------------------------------------------------------

def _modules(msg):
    """export.prometheus and friends import prometheus_client: say how to
    install it rather than fail at import time for every command."""
    try:
        from ...export import collector, prometheus, server, textfile, webconfig
    except ImportError as exc:
        if exc.name and exc.name.startswith("prometheus_client"):
            raise CliError(msg("exporter.missing_module", feature="tcplinger exporter",
                               module="prometheus_client",
                               pip="'tcplinger[exporter]'", deb="python3-prometheus-client"),
                           Exit.UNSUPPORTED) from None
        raise
    return prometheus, collector, textfile, webconfig, server


def run(opts: ExporterOptions, term, msg, roots: Roots = Roots()) -> int:
    prometheus, collector_mod, textfile, webconfig, server = _modules(msg)
    from prometheus_client import CollectorRegistry, ProcessCollector

    # Bad input first, before the first (possibly slow) snapshot: a
    # namespace that does not exist (NetnsNotFound: exit 3), a web config,
    # a textfile directory.
    snap_mod.resolve(opts.scrape.scope, roots)
    loaded = None
    if opts.web_config is not None:
        try:
            loaded = webconfig.load(opts.web_config)
        except webconfig.MissingModule as exc:
            raise CliError(msg("exporter.bad_web_config", path=opts.web_config, reason=exc),
                           Exit.UNSUPPORTED) from None
        except webconfig.CannotRead as exc:  # missing 3, unreadable 4, a device 2
            raise CliError(msg("exporter.bad_web_config", path=opts.web_config, reason=exc),
                           exit_for(exc.os_error)) from None
        except webconfig.WebConfigError as exc:
            raise CliError(msg("exporter.bad_web_config", path=opts.web_config, reason=exc),
                           Exit.USAGE) from None
        _judge_web_config(opts.web_config, loaded, term, msg)
    if opts.textfile is not None:
        try:
            textfile.check_directory(opts.textfile)
        except OSError as exc:
            raise _textfile_error(opts.textfile, exc, msg) from None

    def log(phase, text):
        term.err(msg("exporter.phase_failed", phase=phase, text=text))

    limits = prometheus.Limits(top_owners=opts.top_owners,
                               top_destinations=opts.top_destinations,
                               age_histograms=opts.age_histograms)
    source = ScrapeSource(opts.scrape, roots, log=log, limits=limits)
    collector = collector_mod.TcplingerCollector(source, limits,
                                              log=lambda text: log("scrape", text))
    registry = CollectorRegistry()
    registry.register(collector)
    if opts.textfile is not None:
        return _write_files(opts, registry, collector, textfile, term, msg)
    ProcessCollector(registry=registry)  # the exporter's own CPU and memory
    return _serve(opts, registry, loaded, server, term, msg)


def _judge_web_config(path: Path, loaded, term, msg) -> None:
    """A web config that enables nothing protects nothing: an empty one is
    refused (an unfilled template, a secret mounted empty), one with only
    headers is served with a warning that names it (docs/exporter.md)."""
    cfg = loaded.config
    if loaded.context is not None or loaded.auth is not None:
        return
    if not cfg.headers:
        raise CliError(msg("exporter.bad_web_config", path=path,
                           reason=msg("exporter.web_config_empty")), Exit.USAGE)
    term.err(msg("exporter.web_config_plain", path=path))


def _textfile_error(path: Path, exc: OSError, msg) -> CliError:
    """missing 3; unwritable or read-only 4; not a directory 2 (cli/errors.exit_for)"""
    return CliError(msg("exporter.textfile_unwritable", path=path,
                        reason=exc.strerror or str(exc)), exit_for(exc))


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
