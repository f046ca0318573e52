"""Axis ticks at round values: time in seconds, minutes and hours (1, 2, 5,
10, 15, 30 s; 1, 2, 5, 10, 15, 30 min; 1, 2, 3, 6, 12 h; days), counts at
1-2-5 steps.  Shared by every chart tcplinger draws (lab and simulator
timelines, the HTML report, history plots).

>>> time_ticks(3000)[:4], time_label(1800), time_label(3600), time_label(45)
([0.0, 600.0, 1200.0, 1800.0], '30m', '1h', '45s')
>>> time_ticks(100)
[0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0]
>>> count_ticks(37)
[0.0, 10.0, 20.0, 30.0, 40.0]
"""

from __future__ import annotations

import math

#: Round steps for a time axis, in seconds.
TIME_STEPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
              1, 2, 5, 10, 15, 20, 30,
              60, 120, 300, 600, 900, 1800,
              3600, 7200, 10800, 21600, 43200,
              86400, 172800, 604800)


def time_step(span_s: float, max_ticks: int = 7) -> float:
    """The smallest round step giving at most ``max_ticks`` intervals."""
    for step in TIME_STEPS:
        if span_s / step <= max_ticks:
            return float(step)
    return float(TIME_STEPS[-1] * math.ceil(span_s / (TIME_STEPS[-1] * max_ticks)))


def time_ticks(span_s: float, max_ticks: int = 7, start: float = 0.0) -> list[float]:
    """Tick positions from the first multiple of the step at or after
    ``start`` up to ``start + span_s``."""
    if span_s <= 0:
        return [start]
    step = time_step(span_s, max_ticks)
    first = math.ceil(start / step - 1e-9) * step
    n = int(math.floor((start + span_s - first) / step + 1e-9))
    return [round(first + i * step, 6) for i in range(n + 1)]


def time_label(seconds: float) -> str:
    """A round duration the way an axis shows it: 500ms, 45s, 10m, 1h30m, 2d.

    >>> [time_label(x) for x in (0, 0.25, 90, 5400, 172800)]
    ['0', '250ms', '1m30s', '1h30m', '2d']
    """
    if seconds == 0:
        return "0"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    s = int(round(seconds))
    d, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((d, "d"), (h, "h"), (m, "m"), (sec, "s")) if v]
    return "".join(parts[:2])


def count_ticks(top: float, max_ticks: int = 5) -> list[float]:
    """0 to at least ``top`` in 1-2-5 steps."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / max_ticks
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    step = max(step, 1.0) if top >= 1 else step
    n = int(math.ceil(top / step - 1e-9))
    return [float(round(i * step, 9)) for i in range(n + 1)]
