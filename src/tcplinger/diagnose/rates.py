"""Rates from what the kernel counts, sampled over time; never count ÷ lifetime.

With tcp_max_tw_buckets reached, TIME_WAIT stays at the cap whatever the
close rate: nginx under ``ab -c 10`` with the cap at 512 showed 512
TIME_WAIT (512 / 60 s = 8.5/s) while TcpExt TW + TCPTimeWaitOverflow rose
by 4,300-8,600 per second over 3 s windows (docs/real-software.md). So a
rate comes only from a counter read twice: ``report --interval`` (two
readings in one run), the watch database (``tcplinger watch`` keeps TcpExt
per sample), or the tracepoint. When none was sampled, a finding says so
and how to get one.

Active closes: each connection this namespace closes first creates one
timewait-type socket (TcpExt ``TW``) or, with the table full, is counted in
``TCPTimeWaitOverflow`` (net/ipv4/tcp_minisocks.c, ``tcp_time_wait()``);
over an interval their sum is the number of active closes (KERNEL-NOTES.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

#: The counters whose sum is the active-close count.
ACTIVE_CLOSE = ("TW", "TCPTimeWaitOverflow")
#: Headroom over rate × TIME_WAIT length when sizing tcp_max_tw_buckets.
HEADROOM = 1.5


@dataclass(frozen=True)
class Rate:
    """Events per second of a counter (or a sum of counters) over a window.

    ``source``: "interval" (report --interval), "watch" (the watch
    database's TcpExt samples) or "trace". ``end`` is the wall-clock time
    of the second reading when known (``start`` = end - window).
    """

    per_s: float
    window_s: float
    delta: int
    source: str
    end: float | None = None

    def to_json(self) -> dict:
        return {"per_s": round(self.per_s, 3), "window_s": round(self.window_s, 3),
                "delta": self.delta, "source": self.source,
                "start": None if self.end is None else round(self.end - self.window_s, 3),
                "end": None if self.end is None else round(self.end, 3)}


def from_readings(before: dict, after: dict, window_s: float | None, names=ACTIVE_CLOSE,
                  source: str = "interval", end: float | None = None) -> Rate | None:
    """The rate of ``sum(names)`` between two readings; None when a counter
    is missing, the window is empty or a counter went backwards (a new
    namespace with the same inode).

    >>> from_readings({"TW": 100, "TCPTimeWaitOverflow": 1000},
    ...               {"TW": 332, "TCPTimeWaitOverflow": 17215}, 3.03).to_json()["per_s"]
    5428.053
    >>> from_readings({"TW": 5}, {"TW": 4}, 1.0) is None
    True
    """
    if not window_s or window_s <= 0:
        return None
    if any(n not in before or n not in after for n in names):
        return None
    delta = sum(int(after[n]) - int(before[n]) for n in names)
    if delta < 0:
        return None
    return Rate(delta / window_s, window_s, delta, source, end)


def from_series(times: Sequence[float], values: Sequence[float], *, source: str = "watch",
                window_s: float | None = None) -> Rate | None:
    """The rate of a recorded counter series over its last ``window_s``
    seconds (all of it when None): increases summed between consecutive
    samples, so that a reset (the counter going back, e.g. a namespace
    recreated) does not count as a huge negative rate.

    >>> from_series([0, 10, 20, 30], [0, 600, 1200, 1800]).per_s
    60.0
    >>> from_series([0, 10, 20, 30], [500, 1100, 40, 640]).per_s  # reset between 10 and 20
    40.0
    >>> from_series([0, 10, 20, 30], [0, 600, 1200, 1800], window_s=10).per_s
    60.0
    >>> from_series([5], [1]) is None
    True
    """
    pairs = sorted(zip((float(t) for t in times), (float(v) for v in values)))
    if window_s is not None and pairs:
        last = pairs[-1][0]
        pairs = [p for p in pairs if p[0] >= last - window_s - 1e-9]
    if len(pairs) < 2:
        return None
    span = pairs[-1][0] - pairs[0][0]
    if span <= 0:
        return None
    delta = 0
    for (_, a), (_, b) in zip(pairs, pairs[1:]):
        if b >= a:
            delta += b - a
    return Rate(float(delta / span), float(span), int(delta), source, float(pairs[-1][0]))


def buckets_for(rate_per_s: float, timewait_s: float = 60.0, headroom: float = HEADROOM,
                step: int = 1024) -> int:
    """tcp_max_tw_buckets that holds ``rate`` active closes per second for
    the 60 s of TIME_WAIT, with headroom, rounded up to ``step``.

    >>> buckets_for(7600)
    684032
    >>> buckets_for(8.5)
    1024
    """
    want = rate_per_s * timewait_s * headroom
    return max(step, int(math.ceil(want / step)) * step)


def size_text(n_bytes: float) -> str:
    """Bytes in units that read right.

    >>> size_text(512 * 256), size_text(684032 * 256), size_text(3 << 30), size_text(900)
    ('128 KiB', '167 MiB', '3.0 GiB', '900 B')
    """
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n_bytes >= scale:
            value = n_bytes / scale
            return f"{value:.1f} {unit}" if value < 10 and unit == "GiB" else \
                f"{value:.0f} {unit}"
    return f"{n_bytes:.0f} B"


def number_text(value: float, signed: bool = False) -> str:
    """A rate as people read it: whole numbers from 100 up, three
    significant digits below (``.3g`` alone writes 7142 as "7.14e+03").

    >>> number_text(7142.3), number_text(8.533), number_text(0.01234), number_text(240, True)
    ('7142', '8.53', '0.0123', '+240')
    """
    sign = "+" if signed else ""
    if abs(value) >= 100:
        return f"{value:{sign}.0f}"
    return f"{value:{sign}.3g}"
