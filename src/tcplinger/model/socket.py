"""Socket records: the frozen per-socket view and its parts.

A :class:`SocketRecord` is what renderers, rules and JSON see. Collectors
produce a columnar :class:`~tcplinger.model.table.SocketTable` (one numpy
array per field, cheap at a million sockets) and materialise records only
for the rows someone looks at.
"""

from __future__ import annotations

import enum
from socket import AF_INET, AF_INET6, inet_ntop  # pure formatting, no I/O
from dataclasses import dataclass

from .states import AFTER_CLOSE, name as state_name
from .text import printable
from .workload import Workload


class TimerKind(enum.IntEnum):
    """``idiag_timer`` / the ``tr`` column of /proc/net/tcp (tcp_ipv4.c)."""

    OFF = 0
    RETRANSMIT = 1  # also loss probe / RACK reorder timers
    KEEPALIVE = 2  # sk_timer: keepalive, and the FIN_WAIT2 timer of orphans
    TIMEWAIT = 3
    PROBE = 4  # zero-window probe


TIMER_NAMES = {k: k.name.lower() for k in TimerKind}


class AgeSource(str, enum.Enum):
    """Where an age in state comes from, most trusted first (DESIGN.md)."""

    TRACE = "trace"  # sock:inet_sock_set_state seen the transition
    TIMER = "timer"  # configured timeout minus remaining timer (timewait-type)
    FIRST_SEEN = "first_seen"  # first seen in this state by a tracker
    LAST_RECV = "last_recv"  # tcp_info last_data_recv: a lower bound only
    # An orphan's timer counts from close(), not from entering FIN_WAIT2:
    # a lower bound of the age in state (a half-closed socket may have sat
    # in FIN_WAIT2, owned, before close(): Apache's lingering close, ~2 s).
    SINCE_CLOSE = "since_close"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Age:
    """Time spent in the current state.

    ``seconds`` is None when nothing is known; ``at_least`` says the true
    age may be larger (a lower bound, never a guess).
    """

    seconds: float | None
    at_least: bool
    source: AgeSource

    @staticmethod
    def unknown() -> "Age":
        return UNKNOWN_AGE

    def to_json(self) -> dict:
        secs = None if self.seconds is None else round(self.seconds, 3)
        return {"seconds": secs, "at_least": self.at_least, "source": self.source.value}


UNKNOWN_AGE = Age(None, False, AgeSource.UNKNOWN)


@dataclass(frozen=True)
class Endpoint:
    address: str
    port: int

    def to_json(self) -> dict:
        return {"address": self.address, "port": self.port}

    def __str__(self) -> str:
        if ":" in self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


@dataclass(frozen=True)
class Timer:
    kind: TimerKind
    expires_ms: int
    retransmits: int

    def to_json(self) -> dict:
        return {"kind": TIMER_NAMES[self.kind], "expires_ms": self.expires_ms,
                "retransmits": self.retransmits}


@dataclass(frozen=True)
class Owner:
    """A process holding a socket through one of its file descriptors."""

    pid: int
    comm: str
    fd: int
    cmdline: str = ""
    user: str = ""
    uid: int = -1
    container: str | None = None

    def to_json(self) -> dict:
        return {"pid": self.pid, "comm": self.comm, "fd": self.fd,
                "cmdline": self.cmdline, "user": self.user}


@dataclass(frozen=True)
class NetnsRef:
    """Which network namespace a socket lives in."""

    inode: int
    name: str | None = None
    container: str | None = None  # workload.label(), or a bare label
    workload: Workload | None = None  # the container or pod, from its runtime

    def label(self) -> str:
        """The namespace's name for tables and labels, one printable line:
        root names /run/netns entries with any byte but '/' and NUL
        (ip-netns(8) checks neither controls nor escapes), and a runtime's
        container names come from whoever started the container."""
        return printable(self.name or self.container or f"net:[{self.inode}]")

    def to_json(self) -> dict:
        # the workload's details go once per namespace (the documents'
        # "namespaces" list), not into every socket
        return {"inode": self.inode, "name": self.name, "container": self.container}


@dataclass(frozen=True)
class SocketRecord:
    family: int  # socket.AF_INET or AF_INET6
    state: int  # kernel TcpState number
    local: Endpoint
    remote: Endpoint
    timer: Timer
    uid: int
    inode: int
    cookie: int
    recv_q: int
    send_q: int
    timewait_type: bool  # a tcp_timewait_sock (TIME_WAIT or orphan FIN_WAIT2)
    shutdown: int | None = None  # bit 0: receive side shut, bit 1: send side
    netns: NetnsRef | None = None
    owners: tuple[Owner, ...] = ()
    age: Age = UNKNOWN_AGE
    tcp_info: dict | None = None

    @property
    def state_name(self) -> str:
        return state_name(self.state)

    @property
    def orphan(self) -> bool:
        return is_orphan(self.state, self.inode)

    def to_json(self) -> dict:
        out = {
            "state": self.state_name,
            "family": "ipv6" if self.family == 10 else "ipv4",
            "local": self.local.to_json(),
            "remote": self.remote.to_json(),
            "cookie": self.cookie,
            "inode": self.inode,
            "uid": self.uid,
            "orphan": self.orphan,
            "timewait_type": self.timewait_type,
            "timer": self.timer.to_json(),
            "recv_q": self.recv_q,
            "send_q": self.send_q,
            "shutdown": self.shutdown,
            "netns": self.netns.to_json() if self.netns else None,
            "owners": [o.to_json() for o in self.owners],
            "age": self.age.to_json(),
        }
        if self.tcp_info is not None:
            out["tcp_info"] = self.tcp_info
        return out


_ORPHAN_STATES = frozenset(int(s) for s in AFTER_CLOSE)


def is_orphan(state: int, inode: int) -> bool:
    """No file refers to the socket any more (close()d, kernel-held).

    CLOSE_WAIT with inode 0 cannot happen (the kernel sends FIN on close),
    so only the states a close() leads to are counted.
    """
    return inode == 0 and state in _ORPHAN_STATES


def format_address(family: int, raw: bytes) -> str:
    """Text form of a 4- or 16-byte address as sock_diag stores it.

    >>> format_address(2, bytes([127, 0, 0, 1]) + bytes(12))
    '127.0.0.1'
    >>> format_address(10, bytes(15) + b"\\x01")
    '::1'
    >>> format_address(10, bytes(10) + b"\\xff\\xff" + bytes([10, 0, 0, 1]))
    '::ffff:10.0.0.1'
    """
    # inet_ntop, as ss uses, so mapped addresses read the same in both.
    if family == 2:
        return inet_ntop(AF_INET, bytes(raw[:4]))
    return inet_ntop(AF_INET6, bytes(raw[:16]))
