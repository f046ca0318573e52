"""How late a kernel timer fires: the tolerance of every lifetime check.

TCP's long timers (the FIN_WAIT2 and TIME_WAIT minisock timers, keepalive)
are timer-wheel timers. The wheel (kernel/time/timer.c, since 4.8) files a
timer ``delta`` jiffies away in level ``n`` where ``delta <
LVL_START(n+1) = 63 << 3n``, and level ``n`` has a granularity of ``8**n``
jiffies; calc_index() rounds the expiry *up* to the next granule. A timer
therefore never fires early and fires up to one granule late:

>>> [round(granule_s(s, hz=250), 3) for s in (0.2, 1, 5, 30, 60, 120)]
[0.004, 0.032, 0.256, 2.048, 2.048, 2.048]
>>> round(granule_s(60, hz=1000), 3)
4.096

At HZ=250 a 60 s TIME_WAIT may last up to 62.05 s (measured:
docs/kernel-behaviour.md). Retransmission timers are wheel timers too,
short ones (levels 0-2, granules of 4-256 ms at HZ=250).
"""

from __future__ import annotations

from dataclasses import dataclass

import gzip
import math
from functools import lru_cache
from pathlib import Path

LVL_CLK_SHIFT = 3
LVL_BITS = 6
LVL_DEPTH = 9


def _lvl_start(n: int) -> int:
    return ((1 << LVL_BITS) - 1) << ((n - 1) * LVL_CLK_SHIFT)


def granule_s(seconds: float, hz: int) -> float:
    """The wheel granule for a timer ``seconds`` away, in seconds."""
    delta = max(0, math.ceil(seconds * hz))
    lvl = 0
    while lvl + 1 < LVL_DEPTH and delta >= _lvl_start(lvl + 1):
        lvl += 1
    return (1 << (lvl * LVL_CLK_SHIFT)) / hz


@lru_cache(maxsize=1)
def kernel_hz(config: Path = Path("/proc/config.gz")) -> int | None:
    """CONFIG_HZ from /proc/config.gz, None when the kernel does not expose
    its configuration (then callers assume the coarsest common value)."""
    try:
        with gzip.open(config, "rt") as f:
            for line in f:
                if line.startswith("CONFIG_HZ="):
                    return int(line.split("=", 1)[1])
    except (OSError, ValueError):
        return None
    return None


def late_by(seconds: float, hz: int | None = None) -> float:
    """The most a timer of ``seconds`` can fire late: one granule, at the
    worst of HZ 100/250/1000 when HZ is unknown."""
    if hz is None:
        hz = kernel_hz()
    if hz is None:
        return max(granule_s(seconds, h) for h in (100, 250, 1000))
    return granule_s(seconds, hz)


@dataclass(frozen=True)
class Tolerance:
    """How far a measured lifetime may be from the configured one: a
    timer fires up to one wheel granule late (above), the recorder places
    poll-seen changes within half the window between two polls at each
    end of a span, and scheduling of the lab's own processes adds a
    little.

    ``interval`` is the poll interval asked for; ``polls_s`` the run's own
    measured widest poll window (the recorder's ``longest_gap_s``: a dump
    start to the next dump's end). On a loaded machine a poll comes late
    and a dump takes long (0.3-1.0 s measured at load 17 with stress-ng),
    so the nominal interval understates where a poll-seen boundary can
    be; the run's measurement does not:

    >>> t = Tolerance(0.02, 250, polls_s=0.4)
    >>> round(t.lo(2.0), 3), round(t.hi(2.0), 3)
    (1.55, 2.582)
    >>> round(Tolerance(0.02, 250).lo(2.0), 3)
    1.93
    """

    interval: float
    hz: int | None
    sched_s: float = 0.15
    polls_s: float = 0.0

    @property
    def poll(self) -> float:
        """The widest error that polls put on a span (half a window at
        each end)."""
        return max(self.interval, self.polls_s)

    def lo(self, seconds: float) -> float:
        return max(0.0, seconds - self.poll - 0.05)

    def hi(self, seconds: float) -> float:
        return seconds + late_by(seconds, self.hz) + self.poll + self.sched_s

    def about(self, seconds: float) -> tuple[float, float]:
        return self.lo(seconds), self.hi(seconds)
