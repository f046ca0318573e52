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
        raise argparse.ArgumentTypeError(f"invalid port {text!r} (a number 0-65535)")
    return value


def pid(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text) or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"invalid pid {text!r}")
    return int(text)


def states(text: str) -> frozenset[TcpState]:
    try:
        return parse_states(text)
    except UnknownState as exc:
        raise argparse.ArgumentTypeError(
            f"unknown state {str(exc)!r} (try close-wait, fin-wait-2, time-wait,"
            " established, listen, or a group: lingering, active-close, passive-close)")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r} (a positive number)")
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


def scope_from(args) -> Scope:
    return Scope(netns=args.netns, netns_pid=args.netns_pid, all_netns=args.all_netns)


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
