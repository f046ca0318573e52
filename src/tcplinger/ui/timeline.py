"""Draw timelines (simulated or recorded by the lab): one band per party,
states coloured, as text for a terminal or as a standalone SVG file.

No third-party dependencies: the SVG is written by hand.

>>> from tcplinger.model.timeline import PartyTimeline, StateSpan, Timeline
>>> tl = Timeline((PartyTimeline("client", "endpoint", "linux",
...     (StateSpan(1, 0, 10), StateSpan(5, 10, 70, orphan=True, minisock=True))),), 100)
>>> print(bar(tl.parties[0], 100, 20))
EE222222222222......
>>> svg = render_svg(tl, title="t")
>>> svg.startswith("<svg") and "FIN_WAIT2" in svg and svg.rstrip().endswith("</svg>")
True
"""

from __future__ import annotations

import math
from html import escape as _escape

from ..model.states import TcpState, name as state_name
from ..model.timeline import PartyTimeline, Timeline
from .table import duration, render
from .ticks import count_ticks, time_label, time_ticks


def escape(text: str) -> str:
    """``&``, ``<`` and ``>`` as entities (SVG element text), as
    xml.sax.saxutils.escape does; html.escape, because importing saxutils
    imports urllib.request, http.client, ssl and email (~20 ms of every
    report's start, issue 16).

    >>> escape("a<b & c>d 'q'")
    "a&lt;b &amp; c&gt;d 'q'"
    """
    return _escape(text, quote=False)

#: One letter per state for text bars (legend printed with them).
LETTER = {
    TcpState.ESTABLISHED: "E", TcpState.SYN_SENT: "s", TcpState.SYN_RECV: "r",
    TcpState.FIN_WAIT1: "1", TcpState.FIN_WAIT2: "2", TcpState.TIME_WAIT: "T",
    TcpState.CLOSE: "x", TcpState.CLOSE_WAIT: "C", TcpState.LAST_ACK: "L",
    TcpState.LISTEN: "l", TcpState.CLOSING: "G",
}
#: Colours (SVG fill; ANSI 256-colour code for terminals).
COLOUR = {
    TcpState.ESTABLISHED: ("#4e79a7", 68), TcpState.SYN_SENT: ("#a0cbe8", 153),
    TcpState.SYN_RECV: ("#a0cbe8", 153), TcpState.FIN_WAIT1: ("#f28e2b", 208),
    TcpState.FIN_WAIT2: ("#e15759", 167), TcpState.TIME_WAIT: ("#59a14f", 71),
    TcpState.CLOSE: ("#bab0ac", 145), TcpState.CLOSE_WAIT: ("#b07aa1", 139),
    TcpState.LAST_ACK: ("#ff9da7", 218), TcpState.LISTEN: ("#9c755f", 137),
    TcpState.CLOSING: ("#edc948", 221),
}
GREY = ("#dddddd", 250)


def _colour(state: int):
    try:
        return COLOUR.get(TcpState(state), GREY)
    except ValueError:
        return GREY


def _letter(state: int) -> str:
    try:
        return LETTER.get(TcpState(state), "?")
    except ValueError:
        return "?"


def bar(party: PartyTimeline, horizon_s: float, width: int, colour: bool = False) -> str:
    """The party's states across ``width`` columns; each column shows the
    state held longest within it, ``.`` where none is held."""
    if width <= 0 or horizon_s <= 0:
        return ""
    col = horizon_s / width
    out = []
    for i in range(width):
        a, b = i * col, (i + 1) * col
        best, best_len = None, 0.0
        for s in party.spans:
            end = horizon_s if s.end_s is None else s.end_s
            overlap = min(b, end) - max(a, s.start_s)
            if overlap > best_len:
                best, best_len = s.state, overlap
        if best is None:
            out.append(".")
        elif colour:
            out.append(f"\x1b[48;5;{_colour(best)[1]}m{_letter(best)}\x1b[0m")
        else:
            out.append(_letter(best))
    return "".join(out)


def fmt_s(seconds: float | None) -> str:
    """Seconds for tables: 3 decimals below a minute, else short human.

    >>> fmt_s(0.25), fmt_s(61.026), fmt_s(7800), fmt_s(None)
    ('0.250s', '1m01s', '2h10m', '-')
    """
    if seconds is None:
        return "-"
    if math.isinf(seconds):
        return "inf"
    if seconds < 60:
        return f"{seconds:.3f}s"
    return duration(seconds)


def render_text(tl: Timeline, msg, width: int = 100, colour: bool = False,
                title: str = "") -> list[str]:
    """Bars for every party, a legend, and each party's spans."""
    lines = []
    if title:
        lines.append(title)
    name_w = max([len(p.name) for p in tl.parties] + [6])
    bar_w = max(20, min(100, width - name_w - 3))
    right = fmt_s(tl.horizon_s)
    axis_line = "0".ljust(bar_w - len(right)) + right
    lines.append(" " * (name_w + 2) + "|" + axis_line)
    for p in tl.parties:
        lines.append(p.name.ljust(name_w) + "  |" + bar(p, tl.horizon_s, bar_w, colour))
    used = sorted({s.state for p in tl.parties for s in p.spans})
    legend = "  ".join(f"{_letter(s)}={state_name(s)}" for s in used)
    lines.append(msg("sim.legend", legend=legend))
    for p in tl.parties:
        lines.append("")
        lines.append(msg("sim.party_heading", name=p.name, profile=p.profile,
                         role=msg("sim.role." + p.role)))
        rows = []
        for s in p.spans:
            flags = []
            if s.orphan:
                flags.append(msg("sim.flag.orphan"))
            if s.minisock:
                flags.append(msg("sim.flag.minisock"))
            if s.label:
                flags.append(s.label)
            rows.append([fmt_s(s.start_s), state_name(s.state),
                         fmt_s(s.duration()) if s.end_s is not None
                         else msg("sim.still_held"), ", ".join(flags)])
        if rows:
            for line in render([msg("sim.col.from"), msg("sim.col.state"),
                                msg("sim.col.held"), msg("sim.col.detail")], rows, align="rlrl"):
                lines.append("  " + line)
        else:
            lines.append("  " + msg("sim.never_held"))
    return lines


# ---- SVG ----

def _svg_text(x, y, text, size=12, anchor="start", weight="normal", fill="#222") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}">{escape(str(text))}</text>')


#: Spans shorter than this share of the horizon (about one pixel of the
#: plot) are not drawn and get no legend entry; the text view lists them.
VISIBLE = 1e-3


def visible_states(tl: Timeline) -> list[int]:
    """States some party holds long enough to be seen (a state passed
    through within a sample gets no legend entry)."""
    out = set()
    for p in tl.parties:
        for s in p.spans:
            d = s.duration(tl.horizon_s)
            if d is None or d > tl.horizon_s * VISIBLE:
                out.add(s.state)
    return sorted(out)


def _legend_texts(msg) -> dict:
    if msg is None:
        from ..i18n import Messages
        msg = Messages("en")
    keys = ("hatched", "open", "packet", "dropped", "note", "axis")
    return {k: msg(f"timeline.legend.{k}") for k in keys}


def render_svg(tl: Timeline, title: str = "", width: int = 960, packets: bool = True,
               msg=None) -> str:
    """A standalone SVG: a band per party, spans coloured by state (hatched
    when no process holds the socket: orphans and timewait minisockets; a
    span still held at the end runs into an arrow at the right edge),
    segments as ticks under the band (red: dropped), events (``notes``) as
    marks above it, a time axis at round values, and a legend of what is
    drawn and nothing else."""
    text = _legend_texts(msg)
    left, right, top, band, gap = 110, 24, 40 if title else 16, 26, 16
    plot_w = width - left - right
    n = len(tl.parties)
    axis_y = top + n * (band + gap)
    h = tl.horizon_s or 1.0

    def x(t):
        return left + plot_w * min(max(t, 0.0), h) / h

    body, rows = [], {}
    used = {"hatched": False, "open": False, "packet": False, "dropped": False, "note": False}
    for i, p in enumerate(tl.parties):
        y = top + i * (band + gap)
        rows[p.name] = y
        body.append(_svg_text(left - 8, y + band * 0.68, p.name, 12, anchor="end"))
        body.append(f'<rect x="{left}" y="{y}" width="{plot_w}" height="{band}" fill="#f4f4f4"/>')
        for s in p.spans:
            body += _span(s, x, y, band, h, used)
    if packets:
        for pk in tl.packets:
            y = rows.get(pk.src)
            if y is None:
                continue
            used["dropped" if pk.dropped_by else "packet"] = True
            colour = "#c00" if pk.dropped_by else "#222"
            px = x(pk.t_s)
            body.append(f'<line x1="{px:.2f}" y1="{y + band}" x2="{px:.2f}" y2="{y + band + 5}" '
                        f'stroke="{colour}" stroke-width="1"><title>{escape(pk.flags)} '
                        f'{escape(pk.src)}→{escape(pk.dst)} {escape(pk.tag)}'
                        f'{" dropped by " + escape(pk.dropped_by) if pk.dropped_by else ""}'
                        f'</title></line>')
    for note in tl.notes:
        y = rows.get(note.party)
        if y is None:
            continue
        used["note"] = True
        px = x(note.t_s)
        tip = note.key + (" " + ", ".join(f"{k}={v}" for k, v in note.fields) if note.fields
                          else "")
        body.append(f'<path d="M{px:.1f},{y - 1} l-3,-4 h6 z" fill="#555">'
                    f'<title>{escape(fmt_s(note.t_s))} {escape(tip)}</title></path>')
    body.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" '
                'stroke="#444"/>')
    for t in time_ticks(h):
        tx = x(t)
        body.append(f'<line x1="{tx:.1f}" y1="{axis_y}" x2="{tx:.1f}" y2="{axis_y + 5}" '
                    'stroke="#444"/>')
        body.append(_svg_text(tx, axis_y + 18, time_label(t), 10, anchor="middle"))
    body.append(_svg_text(left + plot_w, axis_y + 32, text["axis"], 10, anchor="end",
                          fill="#666"))
    legend, height = _legend(visible_states(tl), used, text, left, plot_w, axis_y + 44)
    head = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
            '<defs><pattern id="mini" width="6" height="6" patternUnits="userSpaceOnUse" '
            'patternTransform="rotate(45)"><rect width="3" height="6" fill="#ffffff" '
            'opacity="0.45"/></pattern></defs>',
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>']
    if title:
        head.append(_svg_text(left, 22, title, 15, weight="bold"))
    return "\n".join(head + body + legend + ["</svg>"]) + "\n"


def _span(s, x, y, band: int, h: float, used: dict) -> list[str]:
    d = s.duration(h)
    if d is not None and d <= h * VISIBLE:
        return []  # passed through within one sample: nothing to see (visible_states)
    end = h if s.end_s is None else s.end_s
    x0, x1 = x(s.start_s), x(end)
    w = max(x1 - x0, 0.8)
    fill = _colour(s.state)[0]
    tip = f"{state_name(s.state)} {fmt_s(s.start_s)} → " + \
          (fmt_s(s.end_s) if s.end_s is not None else "…") + \
          (" (" + s.label + ")" if s.label else "")
    out = [f'<rect x="{x0:.2f}" y="{y}" width="{w:.2f}" height="{band}" '
           f'fill="{fill}"><title>{escape(tip)}</title></rect>']
    if s.minisock or s.orphan:
        used["hatched"] = True
        out.append(f'<rect x="{x0:.2f}" y="{y}" width="{w:.2f}" height="{band}" '
                   f'fill="url(#mini)"/>')
    if s.end_s is None:  # still held at the end: the band runs on past the axis
        used["open"] = True
        out.append(f'<path d="M{x1:.1f},{y} l9,{band / 2:.1f} l-9,{band / 2:.1f} z" '
                   f'fill="{fill}"><title>{escape(tip)}</title></path>')
    if w > 60:
        out.append(_svg_text(x0 + 4, y + band * 0.68, state_name(s.state), 10, fill="#ffffff"))
    return out


def _legend(states, used: dict, text: dict, left: int, plot_w: int, y0: int):
    """Legend items (states first, then what the marks mean), wrapped to
    the plot's width; returns the SVG and the total height."""
    items = [(f'<rect x="{{x}}" y="{{y}}" width="12" height="12" fill="{_colour(st)[0]}"/>',
              state_name(st)) for st in states]
    marks = {
        "hatched": '<rect x="{x}" y="{y}" width="12" height="12" fill="#999"/>'
                   '<rect x="{x}" y="{y}" width="12" height="12" fill="url(#mini)"/>',
        "open": '<path d="M{x},{y} l9,6 l-9,6 z" fill="#999"/>',
        "packet": '<line x1="{x6}" y1="{y}" x2="{x6}" y2="{y12}" stroke="#222"/>',
        "dropped": '<line x1="{x6}" y1="{y}" x2="{x6}" y2="{y12}" stroke="#c00"/>',
        "note": '<path d="M{x6},{y12} l-4,-6 h8 z" fill="#555"/>',
    }
    items += [(marks[k], text[k]) for k in marks if used[k]]
    out, lx, ly = [], left, y0
    for shape, label in items:
        w = 22 + 6.5 * len(label)
        if lx + w > left + plot_w and lx > left:
            lx, ly = left, ly + 18
        out.append(shape.format(x=lx, y=ly, x6=lx + 6, y12=ly + 12))
        out.append(_svg_text(lx + 17, ly + 10, label, 10))
        lx += w + 10
    return out, ly + 26


def render_chart_svg(xs: list[float], series: dict[str, list[float | None]], x_label: str,
                     y_label: str, title: str = "", width: int = 720, height: int = 420,
                     held_label: str = "held") -> str:
    """A line chart (lifetime against a varied parameter): one polyline per
    series; ``None`` values (held at the horizon) are drawn as open circles
    on the top edge, NaN values (nothing to show) are skipped.

    >>> svg = render_chart_svg([1, 2, 3], {"client": [1.0, 2.0, None]}, "x", "s")
    >>> svg.count("<polyline"), "circle" in svg
    (1, True)
    """
    left, right, top, bottom = 70, 130, 40, 50
    pw, ph = width - left - right, height - top - bottom
    finite = [v for vs in series.values() for v in vs if v is not None and math.isfinite(v)]
    y_max = max(finite) if finite else 1.0
    y_max = y_max * 1.08 if y_max > 0 else 1.0
    x_min, x_max = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_max == x_min:
        x_max = x_min + 1.0

    def px(v):
        return left + pw * (v - x_min) / (x_max - x_min)

    def py(v):
        return top + ph - ph * v / y_max

    palette = ["#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#edc948"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>']
    if title:
        out.append(_svg_text(left, 22, title, 14, weight="bold"))
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
               'stroke="#999"/>')
    for t in time_ticks(y_max / 1.08 if finite else 1.0, 5):
        out.append(f'<line x1="{left - 4}" y1="{py(t):.1f}" x2="{left + pw}" y2="{py(t):.1f}" '
                   'stroke="#eee"/>')
        out.append(_svg_text(left - 6, py(t) + 4, time_label(t), 10, anchor="end"))
    for t in count_ticks(x_max - x_min, 6):
        v = x_min + t
        if v <= x_max + 1e-9:
            out.append(_svg_text(px(v), top + ph + 16, f"{v:g}", 10, anchor="middle"))
    out.append(_svg_text(left + pw / 2, height - 10, x_label, 12, anchor="middle"))
    out.append(f'<text x="16" y="{top + ph / 2:.1f}" font-size="12" text-anchor="middle" '
               f'transform="rotate(-90 16 {top + ph / 2:.1f})">{escape(y_label)}</text>')
    for i, (name, vs) in enumerate(series.items()):
        colour = palette[i % len(palette)]
        pts = [(px(xv), py(v)) for xv, v in zip(xs, vs) if v is not None and math.isfinite(v)]
        if pts:
            out.append('<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>'.format(
                colour, " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)))
        for xv, v in zip(xs, vs):
            if v is None:
                out.append(f'<circle cx="{px(xv):.1f}" cy="{top + 3}" r="3" fill="none" '
                           f'stroke="{colour}"><title>{escape(held_label)}</title></circle>')
        ly = top + 14 + 18 * i
        out.append(f'<rect x="{left + pw + 12}" y="{ly - 9}" width="12" height="4" '
                   f'fill="{colour}"/>')
        out.append(_svg_text(left + pw + 30, ly - 3, name, 11))
    out.append("</svg>")
    return "\n".join(out) + "\n"
