"""Small inline SVG charts for the HTML report: bar histograms and time
series with limit lines.  Pure functions of their data; no scripts, no
external fonts or files, so the page renders anywhere, offline.

Sampling gaps stay gaps: a series is broken where two samples are further
apart than ``GAP_FACTOR`` times the usual interval (a watch daemon that was
stopped, a host that slept), instead of drawing a straight line across.

>>> svg = series_svg([{"label": "CLOSE_WAIT", "colour": "#b07aa1",
...     "times": [0, 10, 20, 100, 110], "values": [1, 2, 3, 9, 10]}],
...     limits=[("RLIMIT_NOFILE", 12)], title="t")
>>> svg.count("<polyline"), "RLIMIT_NOFILE" in svg, "t" in svg
(2, True, True)
>>> split_at_gaps([0, 10, 20, 100, 110])
[(0, 3), (3, 5)]
"""

from __future__ import annotations

import time
from xml.sax.saxutils import escape

from .ticks import count_ticks, time_label, time_step, time_ticks

GAP_FACTOR = 3.0
FONT = "font-family=\"sans-serif\""


def _text(x, y, s, size=11, anchor="start", fill="#222", weight="normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'fill="{fill}" font-weight="{weight}">{escape(str(s))}</text>')


def histogram_svg(bars: list[tuple[str, int]], colour: str, title: str = "",
                  width: int = 380, height: int = 170, unit: str = "") -> str:
    """One bar per bucket (``(label, count)``), the count above each bar."""
    left, right, top, bottom = 36, 8, 24 if title else 8, 34
    pw, ph = width - left - right, height - top - bottom
    top_v = max([n for _, n in bars] + [1])
    ticks = count_ticks(top_v, 4)
    ymax = ticks[-1] or 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" {FONT} role="img">']
    if title:
        out.append(_text(left, 15, title, 12, weight="bold"))
    for t in ticks:
        y = top + ph - ph * t / ymax
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" '
                   'stroke="#e4e4e4"/>')
        out.append(_text(left - 4, y + 4, f"{t:g}", 9, anchor="end", fill="#555"))
    n = max(len(bars), 1)
    slot = pw / n
    for i, (label, count) in enumerate(bars):
        h = ph * count / ymax
        x = left + i * slot + slot * 0.12
        out.append(f'<rect x="{x:.1f}" y="{top + ph - h:.1f}" width="{slot * 0.76:.1f}" '
                   f'height="{h:.1f}" fill="{colour}"><title>{escape(label)}: {count}'
                   f'{escape(unit)}</title></rect>')
        if count:
            out.append(_text(x + slot * 0.38, top + ph - h - 3, count, 9, anchor="middle"))
        out.append(_text(x + slot * 0.38, top + ph + 13, label, 9, anchor="middle", fill="#444"))
    out.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" '
               'stroke="#888"/>')
    out.append("</svg>")
    return "".join(out)


def split_at_gaps(times, factor: float = GAP_FACTOR) -> list[tuple[int, int]]:
    """``[(start, end)]`` index ranges of the runs between sampling gaps."""
    if len(times) < 2:
        return [(0, len(times))] if times else []
    steps = sorted(b - a for a, b in zip(times, times[1:]))
    usual = steps[len(steps) // 2] or 1e-9
    runs, start = [], 0
    for i in range(1, len(times)):
        if times[i] - times[i - 1] > factor * usual:
            runs.append((start, i))
            start = i
    runs.append((start, len(times)))
    return runs


def clock_label(t: float, step: float) -> str:
    lt = time.localtime(t)
    if step >= 86400:
        return time.strftime("%m-%d", lt)
    if step >= 60:
        return time.strftime("%H:%M", lt)
    return time.strftime("%H:%M:%S", lt)


def series_svg(series: list[dict], limits: list[tuple[str, float]] = (), title: str = "",
               width: int = 760, height: int = 260, y_label: str = "") -> str:
    """Lines over clock time (``times`` in epoch seconds), dashed limit
    lines, the legend to the right of the plot, outside the data."""
    left, right, top, bottom = 50, 170, 26 if title else 10, 30
    pw, ph = width - left - right, height - top - bottom
    times = [t for s in series for t in s["times"]]
    t0, t1 = (min(times), max(times)) if times else (0.0, 1.0)
    if t1 <= t0:
        t1 = t0 + 1.0
    top_v = max([v for s in series for v in s["values"]] + [v for _, v in limits] + [1])
    yt = count_ticks(top_v * 1.05, 5)
    ymax = yt[-1] or 1

    def px(t):
        return left + pw * (t - t0) / (t1 - t0)

    def py(v):
        return top + ph - ph * min(v, ymax) / ymax

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" {FONT} role="img">']
    if title:
        out.append(_text(left, 17, title, 12, weight="bold"))
    for v in yt:
        out.append(f'<line x1="{left}" y1="{py(v):.1f}" x2="{left + pw}" y2="{py(v):.1f}" '
                   'stroke="#e4e4e4"/>')
        out.append(_text(left - 5, py(v) + 4, f"{v:g}", 9, anchor="end", fill="#555"))
    step = time_step(t1 - t0, 6)
    for t in time_ticks(t1 - t0, 6, start=t0):
        out.append(f'<line x1="{px(t):.1f}" y1="{top + ph}" x2="{px(t):.1f}" y2="{top + ph + 4}" '
                   'stroke="#888"/>')
        out.append(_text(px(t), top + ph + 16, clock_label(t, step), 9, anchor="middle",
                         fill="#444"))
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
               'stroke="#bbb"/>')
    if y_label:
        out.append(f'<text x="12" y="{top + ph / 2:.1f}" font-size="10" text-anchor="middle" '
                   f'transform="rotate(-90 12 {top + ph / 2:.1f})">{escape(y_label)}</text>')
    legend = []
    for name, value in limits:
        if value <= ymax:
            out.append(f'<line x1="{left}" y1="{py(value):.1f}" x2="{left + pw}" '
                       f'y2="{py(value):.1f}" stroke="#c0392b" stroke-dasharray="5,4"/>')
        legend.append(("limit", f"{name} {value:g}", "#c0392b"))
    for s in series:
        ts, vs = s["times"], s["values"]
        for a, b in split_at_gaps(ts):
            pts = " ".join(f"{px(ts[i]):.1f},{py(vs[i]):.1f}" for i in range(a, b))
            if b - a == 1:
                out.append(f'<circle cx="{px(ts[a]):.1f}" cy="{py(vs[a]):.1f}" r="2" '
                           f'fill="{s["colour"]}"/>')
            else:
                out.append(f'<polyline fill="none" stroke="{s["colour"]}" stroke-width="2" '
                           f'points="{pts}"/>')
        legend.append(("line", s["label"], s["colour"]))
    lx = left + pw + 12
    for i, (kind, label, colour) in enumerate(legend):
        y = top + 8 + 16 * i
        dash = ' stroke-dasharray="5,4"' if kind == "limit" else ""
        out.append(f'<line x1="{lx}" y1="{y}" x2="{lx + 18}" y2="{y}" stroke="{colour}" '
                   f'stroke-width="2"{dash}/>')
        out.append(_text(lx + 24, y + 4, label, 10))
    out.append(_text(left + pw, top + ph + 28, time_label(t1 - t0), 9, anchor="end",
                     fill="#777"))
    out.append("</svg>")
    return "".join(out)
