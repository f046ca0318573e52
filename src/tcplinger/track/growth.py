"""Growth of a count over time, and when it runs into its limit (pure).

The slope is an ordinary least-squares fit of count against time over the
window asked for; "growing" needs a positive slope that explains the data
(R² >= ``min_r2``), held for at least ``min_span`` seconds, so a burst that
drains away does not count.

>>> import numpy as np
>>> t = np.arange(0, 3 * 3600 + 1, 60.0)          # every minute for 3 h
>>> g = fit(t, 100 + 12 * t / 60)                  # +12 a minute
>>> round(g.per_minute, 3), g.growing, round(g.r2, 3)
(12.0, True, 1.0)
>>> ttl = time_to_limit(g, current=2260, limit=65536)  # fd limit
>>> round(ttl / 3600, 1)
87.9
>>> describe(g, ttl)
'+12/min for 3h; limit in about 88h'

A rise that fits a line but covers less than ``min_span`` is ``short``,
not growing: ``history`` says it rises and is not yet a trend (a leak of
4 a second watched for 40 s), rather than "nothing is growing".

>>> t = np.arange(0, 40, 1.0)
>>> g = fit(t, 4 * t)
>>> g.growing, g.why, round(g.per_minute)
(False, 'short', 240)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: What "growing" needs (the defaults of :func:`fit`): a rise that holds
#: this long, over this many samples, and that a line explains this well.
MIN_SPAN_S = 60.0
MIN_POINTS = 4
MIN_R2 = 0.6


@dataclass(frozen=True)
class Growth:
    slope: float  # per second
    intercept: float
    r2: float
    span: float  # seconds covered by the data
    points: int
    growing: bool
    #: why (not) growing: "growing"; "short" (a clean rise, shorter than
    #: min_span); "noisy" (R² below min_r2); "few" (points); "flat" (no rise)
    why: str = ""

    @property
    def per_minute(self) -> float:
        return self.slope * 60.0


def fit(times, values, *, min_r2: float = MIN_R2, min_span: float = MIN_SPAN_S,
        min_points: int = MIN_POINTS) -> Growth:
    """Least-squares slope of ``values`` over ``times`` (seconds).

    >>> fit([0, 10, 20, 30], [5, 5, 5, 5]).growing
    False
    >>> fit([0, 1], [0, 100]).growing  # too few points, too short
    False
    """
    t = np.asarray(times, float)
    y = np.asarray(values, float)
    n = len(t)
    if n < 2 or np.ptp(t) == 0:
        return Growth(0.0, float(y[-1]) if n else 0.0, 0.0, 0.0, n, False, "few")
    tm, ym = t.mean(), y.mean()
    dt = t - tm
    slope = float((dt * (y - ym)).sum() / (dt * dt).sum())
    intercept = float(ym - slope * tm)
    resid = y - (intercept + slope * t)
    ss_tot = float(((y - ym) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else 0.0
    span = float(np.ptp(t))
    growing = slope > 0 and r2 >= min_r2 and span >= min_span and n >= min_points
    if growing:
        why = "growing"
    elif slope <= 0:
        why = "flat"
    elif n < min_points:
        why = "few"
    elif r2 < min_r2:
        why = "noisy"
    else:
        why = "short"
    return Growth(slope, intercept, r2, span, n, growing, why)


def time_to_limit(g: Growth, current: float, limit: float | None) -> float | None:
    """Seconds until ``current`` reaches ``limit`` at the fitted slope; None
    when not growing or no limit; 0 when already there.

    >>> g = Growth(2.0, 0, 1, 600, 10, True)
    >>> time_to_limit(g, 100, 1100), time_to_limit(g, 2000, 1000), time_to_limit(g, 1, None)
    (500.0, 0.0, None)
    """
    if limit is None or not g.growing or g.slope <= 0:
        return None
    if current >= limit:
        return 0.0
    return (limit - current) / g.slope


def _hours(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))}min"
    return f"{round(seconds / 3600)}h"


def describe(g: Growth, ttl: float | None) -> str:
    """A short English summary (the CLI uses the catalogs; this is for logs
    and tests)."""
    rate = g.per_minute
    text = f"{'+' if rate >= 0 else ''}{rate:.3g}/min for {_hours(g.span)}"
    if ttl is not None and math.isfinite(ttl):
        text += f"; limit in about {_hours(ttl)}"
    return text
