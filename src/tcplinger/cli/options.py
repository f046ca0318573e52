"""Typed options: the CLI parses text into these and hands only these to
the library (never the argparse namespace)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..app.view import Filters
from ..collect.snapshot import Scope
from ..model.states import TcpState, UnknownState, parse_states
from .errors import CliError, Exit


# ---- argument types (argparse calls them; their errors become one line) ----

class OptionError(argparse.ArgumentTypeError):
    """A bad option value: English text for argparse, and the catalog key
    and fields main.py renders in the user's language ("opt.*" keys).

    >>> e = OptionError("opt.invalid_pid", "invalid pid {value!r}", value="x")
    >>> str(e), e.key, e.fields
    ("invalid pid 'x'", 'opt.invalid_pid', {'value': "'x'"})
    """

    def __init__(self, key: str, english: str, *, value: str):
        self.key = key
        # the catalogs quote nothing themselves: the value arrives repr()'d,
        # as the English text always showed it
        self.fields = {"value": repr(value)}
        super().__init__(english.format(value=value))


def port(text: str) -> int:
    """A TCP port, 0-65535.

    >>> port("8080")
    8080
    """
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise OptionError("opt.invalid_port", "invalid port {value!r} (a number 0-65535)",
                          value=text)
    return value


def pid(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text) or int(text) <= 0:
        raise OptionError("opt.invalid_pid", "invalid pid {value!r}", value=text)
    return int(text)


def states(text: str) -> frozenset[TcpState]:
    try:
        return parse_states(text)
    except UnknownState as exc:
        raise OptionError(
            "opt.unknown_state", "unknown state {value!r} (try close-wait, fin-wait-2,"
            " time-wait, established, listen, or a group: lingering, active-close,"
            " passive-close)", value=str(exc)) from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise OptionError("opt.invalid_positive", "invalid value {value!r} (a positive number)",
                          value=text)
    return value


def duration(text: str) -> float:
    """``90s``, ``10m``, ``6h``, ``30d``, ``2w`` or seconds.

    >>> duration("6h"), duration("30d"), duration("45")
    (21600.0, 2592000.0, 45.0)
    """
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        if text and text[-1] in units:
            value = float(text[:-1]) * units[text[-1]]
        else:
            value = float(text)
    except ValueError:
        value = -1
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 90s, 10m, 6h, 30d)")
    return value


def duration_or_zero(text: str) -> float:
    """:func:`duration`, or 0.

    >>> duration_or_zero("0"), duration_or_zero("10s")
    (0.0, 10.0)
    """
    if text.strip() in ("0", "0s"):
        return 0.0
    return duration(text)


# ---- shared flag groups ----

def add_scope(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--netns", metavar="NAME",
                       help="the named network namespace (from /run/netns, as `ip netns`)")
    group.add_argument("--netns-pid", metavar="PID", type=pid,
                       help="the network namespace of process PID")
    group.add_argument("--all-netns", action="store_true",
                       help="every network namespace on the host (containers included)")
    group.add_argument("--container", metavar="NAME",
                       help="the network namespace of the container NAME (docker, podman, "
                            "containerd, CRI-O name; a pod's container name; or an id prefix)")
    group.add_argument("--pod", metavar="NS/NAME",
                       help="the network namespace of the Kubernetes pod NAME in namespace NS")


def scope_from(args) -> Scope:
    return Scope(netns=args.netns, netns_pid=args.netns_pid, all_netns=args.all_netns,
                 container=args.container, pod=args.pod)


def add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", type=states, metavar="LIST",
                        help="comma-separated states or groups (close-wait, FIN_WAIT2,"
                             " timewait, lingering, ...)")
    parser.add_argument("--port", type=port, help="local or remote port")
    parser.add_argument("--sport", type=port, help="local (source) port")
    parser.add_argument("--dport", type=port, help="remote (destination) port")
    parser.add_argument("--pid", type=pid, help="only sockets held by this process")


def filters_from(args) -> Filters:
    return Filters(states=args.state, port=args.port, sport=args.sport,
                   dport=args.dport, pid=args.pid)


def add_owners(parser: argparse.ArgumentParser, always: str) -> None:
    """``--owners`` / ``--no-owners``: ``args.owners`` is True, False, or
    None for the automatic choice of the one owner policy (collect/owners.py:
    walk /proc/*/fd only while the walk reads fewer than
    AUTO_OWNERS_MAX_FILES open files)."""
    from ..collect.files import AUTO_OWNERS_MAX_FILES

    group = parser.add_mutually_exclusive_group()
    group.add_argument("--owners", action="store_true", default=None, help=always)
    group.add_argument("--no-owners", dest="owners", action="store_false",
                       help="never walk /proc/*/fd (default: walk the namespace's own "
                            "processes, or every process for the host's namespace, while "
                            f"they hold fewer than {AUTO_OWNERS_MAX_FILES} open files)")


def owner_policy(choice: bool | None):
    """``--owners`` / ``--no-owners`` / neither as the one owner policy."""
    from ..collect.owners import OwnerPolicy

    return OwnerPolicy(walk=choice)


def add_db(parser: argparse.ArgumentParser, *, daemon: bool = False) -> None:
    """``--db``: the watch database that ``watch`` writes (``daemon``) or
    that a one-shot command takes ages from."""
    if daemon:
        text = ("the watch database (default: /var/lib/tcplinger/watch.db for root, "
                "~/.local/state/tcplinger/watch.db otherwise)")
    else:
        text = ("take ages from this watch database (default: the watch daemon's, "
                "when it is fresh; docs/watch.md)")
    parser.add_argument("--db", metavar="PATH", type=Path, default=None, help=text)


def add_diagnose_args(p: argparse.ArgumentParser) -> None:
    """What ``report``, ``check`` and ``tune`` share."""
    add_scope(p)
    add_owners(p, "always find the owning processes of lingering sockets")
    p.add_argument("--threshold", action="append", default=[], metavar="RULE.NAME=VALUE",
                   help="override a rule threshold (see `tcplinger rules`); repeatable")
    p.add_argument("--rule", action="append", default=None, metavar="RULE",
                   help="run only this rule (repeatable)")
    p.add_argument("--interval", type=float, default=None, metavar="SECONDS",
                   help="sample the kernel counters twice, SECONDS apart, to see which are rising")
    add_db(p)


def thresholds(texts) -> dict[str, dict]:
    """``RULE.NAME=VALUE`` options as ``{rule: {name: value}}``."""
    from ..diagnose.metadata import BadThreshold, parse_override

    overrides: dict[str, dict] = {}
    for text in texts:
        try:
            rule, name, value = parse_override(text)
        except BadThreshold as exc:
            raise CliError(str(exc), Exit.USAGE) from None
        overrides.setdefault(rule, {})[name] = value
    return overrides


def diagnose_options(args):
    """The typed options of :func:`add_diagnose_args`' flags."""
    from ..app.diagnosis import DiagnoseOptions
    from ..app.observation import ObserveOptions
    from ..diagnose.metadata import BY_ID

    overrides = thresholds(args.threshold)
    rules = None
    if args.rule:
        unknown = [r for r in args.rule if r not in BY_ID]
        if unknown:
            raise CliError(f"unknown rule {unknown[0]!r} (see `tcplinger rules`)", Exit.USAGE)
        rules = tuple(args.rule)
    if args.interval is not None and not 0 < args.interval <= 3600:
        raise CliError("--interval must be between 0 and 3600 seconds", Exit.USAGE)
    seen = ObserveOptions(scope_from(args), owner_policy(args.owners), args.interval, args.db)
    return DiagnoseOptions(seen, overrides, rules)
