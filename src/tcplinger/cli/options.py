"""Typed options: the CLI parses text into these and hands only these to
the library (never the argparse namespace)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from ..collect.snapshot import Scope
from ..model.states import TcpState, UnknownState, parse_states


@dataclass(frozen=True)
class Filters:
    states: frozenset[TcpState] | None = None
    port: int | None = None
    sport: int | None = None
    dport: int | None = None
    pid: int | None = None


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


def add_owners(parser: argparse.ArgumentParser, always: str, *, per_namespace: bool = True) -> None:
    """``--owners`` / ``--no-owners``: ``args.owners`` is True, False, or
    None for the command's automatic choice (collect/files.py: walk /proc/*/fd
    only while the host has fewer than AUTO_OWNERS_MAX_FILES open files)."""
    from ..collect.files import AUTO_OWNERS_MAX_FILES

    group = parser.add_mutually_exclusive_group()
    group.add_argument("--owners", action="store_true", default=None, help=always)
    group.add_argument("--no-owners", dest="owners", action="store_false",
                       help="never walk /proc/*/fd (default: "
                            + ("the namespace's own processes, or every process " if per_namespace
                               else "only ")
                            + f"while the host has fewer than {AUTO_OWNERS_MAX_FILES} open files)")
