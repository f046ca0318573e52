"""What the engine is given: per namespace, plain data and no I/O.

The CLI builds these from a snapshot (collect/), owners (``/proc/*/fd``)
and fd usage; tests build them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence

from ..model.kernel import KernelContext
from ..model.socket import Age, NetnsRef, Owner
from ..model.table import SocketTable
from ..track.growth import Growth, time_to_limit
from .rates import Rate


class FdUsageLike(Protocol):
    """``collect.owners.FdUsage`` or :class:`ProcessFacts`."""

    open_fds: int
    soft_limit: int | None


@dataclass(frozen=True)
class ProcessFacts:
    open_fds: int
    soft_limit: int | None  # RLIMIT_NOFILE soft limit; None: unlimited
    hard_limit: int | None = None


@dataclass(frozen=True)
class Trend:
    """A count that grows, from the watch database's history (fitted by
    ``track.trends``; the CLI reads the database, the rules get this).

    >>> g = Growth(slope=0.2, intercept=0, r2=0.99, span=3 * 3600, points=180, growing=True)
    >>> t = Trend(g, current=2300, limit=65536, limit_name="fd limit", ttl=316180.0)
    >>> round(t.per_minute), t.window, round(t.until(10000, 65536) / 3600)
    (12, 10800, 77)
    >>> t.evidence()["time_to_limit_s"], t.evidence(ttl=None)["time_to_limit_s"]
    (316180.0, None)
    """

    growth: Growth  # slope (per second), span (the window, seconds), R²
    current: float  # the last value of the series (or of what meets the limit)
    limit: float | None = None
    limit_name: str | None = None  # "fd limit", "tcp_max_tw_buckets", "ephemeral ports"
    ttl: float | None = None  # seconds until current reaches limit at the slope

    @classmethod
    def of(cls, found) -> "Trend":
        """From a ``track.trends.GrowthFinding`` (what ``history`` shows)."""
        return cls(found.growth, found.current, found.limit, found.limit_name, found.ttl)

    @property
    def slope(self) -> float:
        return self.growth.slope

    @property
    def per_minute(self) -> float:
        return self.growth.slope * 60.0

    @property
    def window(self) -> float:
        return self.growth.span

    def until(self, current: float, limit: float | None) -> float | None:
        """Seconds from ``current`` to ``limit`` at this slope (fresher
        numbers than the database's, e.g. fd usage read just now)."""
        return time_to_limit(self.growth, current, limit)

    def evidence(self, **override) -> dict:
        """The ``growing`` evidence object (docs/json.md)."""
        out = {"per_minute": round(self.per_minute, 4), "slope_per_s": round(self.slope, 6),
               "window_s": round(self.window, 1), "r2": round(self.growth.r2, 4),
               "points": self.growth.points, "current": self.current,
               "limit_name": self.limit_name, "limit": self.limit,
               "time_to_limit_s": None if self.ttl is None else round(self.ttl, 1)}
        if "ttl" in override:
            ttl = override.pop("ttl")
            out["time_to_limit_s"] = None if ttl is None else round(ttl, 1)
        out.update(override)
        return out


def within(ttl: float | None, threshold: float | None) -> bool:
    """A time-to-limit threshold is reached when the limit is at most that
    far away; None (no limit, not growing, or the threshold off) is not.

    >>> within(3600, 3600), within(3601, 3600), within(0.0, 60), within(None, 60), within(5, None)
    (True, False, True, False, False)
    """
    return ttl is not None and threshold is not None and ttl <= threshold


@dataclass(frozen=True)
class NamespaceTrends:
    """What grows, over the watch database's recent history."""

    #: (pid, state) -> trend of the sockets in that state the process holds
    #: (the limit: its RLIMIT_NOFILE soft limit, "current" its open fds).
    by_owner: Mapping[tuple[int, int], Trend] = field(default_factory=dict)
    #: state -> trend in this namespace (TIME_WAIT against tcp_max_tw_buckets).
    by_state: Mapping[int, Trend] = field(default_factory=dict)
    #: all connections of the namespace (LISTEN excluded) against the
    #: ephemeral port range: an upper bound of one destination's growth.
    connections: Trend | None = None


@dataclass(frozen=True)
class Connects:
    """Processes seen opening connections, by destination, over a window
    (the state-change tracepoint during ``report --interval``;
    collect/connects.py): who is behind TIME_WAIT or orphans towards a
    destination when no socket to it is held at the snapshot.

    >>> o = Owner(pid=12, comm="nginx", fd=-1, cmdline="nginx: worker process")
    >>> c = Connects(3.0, ((o, 2, "127.0.0.1", 8084, 12000),))
    >>> [(w.pid, n) for w, n in c.to(2, "127.0.0.1", 8084)]
    [(12, 12000)]
    """

    window_s: float
    #: (owner, family, address as text, port, connects in the window)
    items: tuple = ()
    #: events the ring buffer dropped, connects of threads gone before they
    #: were placed: the counts are lower bounds when either is not 0
    lost: int = 0
    unplaced: int = 0

    def to_json(self) -> dict:
        return {"window_s": round(self.window_s, 3), "lost": self.lost,
                "unplaced": self.unplaced}

    def to(self, family: int, addr: str, port: int) -> list[tuple[Owner, int]]:
        """Who connected to ``addr``:``port``, most connects first."""
        out = [(o, n) for o, fam, a, p, n in self.items
               if p == port and fam == family and a == addr]
        return sorted(out, key=lambda e: (-e[1], e[0].pid))


@dataclass(frozen=True)
class NamespaceInput:
    netns: NetnsRef
    kernel: KernelContext
    table: SocketTable
    #: inode -> owners; None when owners were not looked up (then rules
    #: about a process say so and lower their confidence).
    owners: Mapping[int, tuple[Owner, ...]] | None = None
    #: pid -> fd usage, for the owners a rule needs (close-wait-leak).
    processes: Mapping[int, FdUsageLike] = field(default_factory=dict)
    #: Ages better than one snapshot can tell (a tracker's), aligned with
    #: the table's rows; None: from timers and tcp_info (track.age).
    ages: Sequence[Age] | None = None
    #: The same namespace's kernel context some seconds earlier, for
    #: counters that are *rising* (TCPTimeWaitOverflow, TCPAbortOnMemory).
    previous: KernelContext | None = None
    interval: float | None = None  # seconds between previous and kernel
    sampled_at: float | None = None  # wall-clock time of ``kernel``'s reading
    #: Counter rates measured elsewhere (the watch database's TcpExt
    #: series, diagnose.rates.from_series), by name: "active_close".
    rates: Mapping[str, "Rate"] = field(default_factory=dict)
    #: Growth from a fresh watch database (``tcplinger watch``); None: no
    #: history, the rules judge the snapshot alone.
    trends: NamespaceTrends | None = None
    #: Who opened connections to where during ``interval`` (tracepoint);
    #: None: not recorded.
    connects: Connects | None = None
