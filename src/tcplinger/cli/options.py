"""Typed options: the CLI parses text into these and hands only these to
the library (never the argparse namespace)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..model import units
from ..model.states import TcpState, UnknownState, parse_states
from .errors import CatalogError, Exit

if TYPE_CHECKING:  # imported when called: --version, --help, rules and explain need no numpy
    from ..app.view import Filters
    from ..collect.snapshot import Scope


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

    @classmethod
    def of(cls, bad: units.BadValue) -> "OptionError":
        """The option error for a value model/units.py refused."""
        exc = cls.__new__(cls)
        exc.key, exc.fields = bad.key, dict(bad.fields)
        argparse.ArgumentTypeError.__init__(exc, str(bad))
        return exc


#: pid_t is a signed 32-bit int; a pid above the kernel's PID_MAX_LIMIT
#: (4194304, include/linux/threads.h) is well-formed and simply not found
PID_MAX = 2**31 - 1
DAY, LONGEST = units.DAY, units.LONGEST


def port(text: str) -> int:
    """A TCP port, 0-65535.

    >>> port("8080")
    8080
    """
    try:
        return units.parse_count(text, maximum=65535)
    except units.BadValue:
        raise OptionError("opt.invalid_port", "invalid port {value!r} (a number 0-65535)",
                          value=text) from None


def pid(text: str) -> int:
    """A process id (digits 0-9 only: ``int()`` would take other scripts').

    >>> pid("42")
    42
    """
    try:
        return units.parse_count(text, minimum=1, maximum=PID_MAX)
    except units.BadValue:
        raise OptionError("opt.invalid_pid", "invalid pid {value!r}", value=text) from None


def states(text: str) -> frozenset[TcpState]:
    try:
        return parse_states(text)
    except UnknownState as exc:
        raise OptionError(
            "opt.unknown_state", "unknown state {value!r} (try close-wait, fin-wait-2,"
            " time-wait, established, listen, or a group: lingering, active-close,"
            " passive-close)", value=str(exc)) from None


def _named(text: str) -> str:
    """A file or directory name: not empty (``Path("")`` is ``.``, the
    current directory), no NUL (no system call takes one)."""
    if not text or "\0" in text:
        raise OptionError("opt.bad_path", "invalid file name {value!r}", value=text)
    return text


def input_file(text: str) -> Path:
    """A file the command reads: named (its content is judged when read).

    >>> input_file("s.toml")
    PosixPath('s.toml')
    """
    return Path(_named(text))


def output_file(text: str) -> Path:
    """A file the command writes (``--svg``, ``--html``, ``--png``,
    ``--write``), refused before any work when the write could not
    happen: an OSError (a missing directory: exit 3; a read-only or
    unwritable one: 4; a directory, a device, a FIFO: 2) from
    fsutil.check_target, the test the one atomic writer makes again.
    """
    from ..fsutil import check_target

    check_target(_named(text))
    return Path(text)


def directory(text: str) -> Path:
    """A directory the command writes files into (``--textfile``)."""
    return Path(_named(text))


def _typed(name: str, parse):
    def typed(text: str):
        try:
            return parse(text)
        except units.BadValue as exc:
            raise OptionError.of(exc) from None
    typed.__name__ = name
    return typed


def duration_type(*, maximum: float, minimum: float = 0.0, positive: bool = False):
    """An argparse type: seconds, in the one grammar of model/units.py.

    >>> every = duration_type(maximum=DAY, positive=True)
    >>> every("90"), every("1.5m"), every("1h30m"), every("250ms")
    (90.0, 90.0, 5400.0, 0.25)
    >>> every("1e308")
    Traceback (most recent call last):
    ...
    tcplinger.cli.options.OptionError: invalid duration '1e308' (like 90, 90s, 1.5m, 2h, 1h30m or 250ms)
    """
    return _typed("duration", lambda text: units.parse_duration(
        text, maximum=maximum, minimum=minimum, positive=positive))


def count_type(*, maximum: int, minimum: int = 0):
    """An argparse type: a whole number within bounds.

    >>> count_type(maximum=10, minimum=1)("3")
    3
    >>> count_type(maximum=10)("-1")
    Traceback (most recent call last):
    ...
    tcplinger.cli.options.OptionError: invalid value '-1' (must not be negative)
    """
    return _typed("count", lambda text: units.parse_count(text, maximum=maximum,
                                                           minimum=minimum))


# ---- shared flag groups ----

def add_scope(parser: argparse.ArgumentParser, h) -> None:
    """``--netns``, ``--netns-pid``, ``--all-netns``, ``--container``,
    ``--pod``; ``h`` is the catalog of the help's language."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--netns", metavar="NAME", help=h("help.scope.netns"))
    group.add_argument("--netns-pid", metavar="PID", type=pid, help=h("help.scope.netns-pid"))
    group.add_argument("--all-netns", action="store_true", help=h("help.scope.all-netns"))
    group.add_argument("--container", metavar="NAME", help=h("help.scope.container"))
    group.add_argument("--pod", metavar="NS/NAME", help=h("help.scope.pod"))


def scope_from(args) -> Scope:
    from ..collect.snapshot import Scope

    return Scope(netns=args.netns, netns_pid=args.netns_pid, all_netns=args.all_netns,
                 container=args.container, pod=args.pod)


def add_filters(parser: argparse.ArgumentParser, h) -> None:
    parser.add_argument("--state", type=states, metavar="LIST", help=h("help.filter.state"))
    parser.add_argument("--port", type=port, help=h("help.filter.port"))
    parser.add_argument("--sport", type=port, help=h("help.filter.sport"))
    parser.add_argument("--dport", type=port, help=h("help.filter.dport"))
    parser.add_argument("--pid", type=pid, help=h("help.filter.pid"))


def filters_from(args) -> Filters:
    from ..app.view import Filters

    return Filters(states=args.state, port=args.port, sport=args.sport,
                   dport=args.dport, pid=args.pid)


def add_owners(parser: argparse.ArgumentParser, h, always: str) -> None:
    """``--owners`` / ``--no-owners``: ``args.owners`` is True, False, or
    None for the automatic choice of the one owner policy (collect/owners.py:
    walk /proc/*/fd only while the walk reads fewer than
    AUTO_OWNERS_MAX_FILES open files); ``always`` is the catalog key of
    ``--owners``' help."""
    from ..collect.files import AUTO_OWNERS_MAX_FILES

    group = parser.add_mutually_exclusive_group()
    group.add_argument("--owners", action="store_true", default=None, help=h(always))
    group.add_argument("--no-owners", dest="owners", action="store_false",
                       help=h("help.owners.no-owners", files=AUTO_OWNERS_MAX_FILES))


def owner_policy(choice: bool | None):
    """``--owners`` / ``--no-owners`` / neither as the one owner policy."""
    from ..collect.owners import OwnerPolicy

    return OwnerPolicy(walk=choice)


def add_db(parser: argparse.ArgumentParser, h, *, daemon: bool = False) -> None:
    """``--db``: the watch database that ``watch`` writes (``daemon``) or
    that a one-shot command takes ages from."""
    text = h("help.db.daemon") if daemon else h("help.db.ages")
    parser.add_argument("--db", metavar="PATH", type=input_file, default=None, help=text)


def add_diagnose_args(p: argparse.ArgumentParser, h) -> None:
    """What ``report``, ``check`` and ``tune`` share."""
    add_scope(p, h)
    add_owners(p, h, "help.diagnose.owners")
    p.add_argument("--threshold", action="append", default=[], metavar="RULE.NAME=VALUE",
                   help=h("help.diagnose.threshold"))
    p.add_argument("--rule", action="append", default=None, metavar="RULE",
                   help=h("help.diagnose.rule"))
    p.add_argument("--interval", type=duration_type(maximum=3600, positive=True), default=None,
                   metavar="SECONDS", help=h("help.diagnose.interval"))
    add_db(p, h)


def thresholds(texts) -> dict[str, dict]:
    """``RULE.NAME=VALUE`` options as ``{rule: {name: value}}``."""
    from ..diagnose.metadata import BadThreshold, parse_override

    overrides: dict[str, dict] = {}
    for text in texts:
        try:
            rule, name, value = parse_override(text)
        except BadThreshold as exc:
            raise CatalogError(exc.key, Exit.USAGE, **exc.fields) from None
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
            raise CatalogError("error.unknown_rule", Exit.USAGE, rule=repr(unknown[0]))
        rules = tuple(args.rule)
    seen = ObserveOptions(scope_from(args), owner_policy(args.owners), args.interval, args.db)
    return DiagnoseOptions(seen, overrides, rules)
