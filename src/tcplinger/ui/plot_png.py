"""``tcplinger history --png``: the watch database's series drawn with
matplotlib (the ``plot`` extra: ``pip install 'tcplinger[plot]'``, Debian
``python3-matplotlib``).

What the picture must say on its own, since it is pasted into tickets
without the command next to it: a title with the namespaces and the time
range; the limits the series run into as dashed lines (tcp_max_tw_buckets,
an owner's RLIMIT_NOFILE, the ephemeral port range), or named in the legend
when far above the data; the ephemeral port range beside the series that
runs into it, watch's busiest remote port (the most local ephemeral ports
held towards one remote port: connect() runs out per destination), what
history projects against it; without that series (a database of a watch
before it) the range is named in the legend as not drawn, since no state's
count runs into it; sampling gaps left as gaps (a NaN breaks the line
where two samples are further apart than three usual intervals, as in the
HTML charts); the legend outside the plot area, so it never hides data.
"""

from __future__ import annotations

import datetime as dt
import time

from .svgchart import split_at_gaps
from .timeline import COLOUR, GREY

#: A limit more than this many times above the data is named in the
#: legend instead of drawn (a line at 131072 would flatten 40 sockets).
OFF_CHART = 5.0
#: The busiest remote port's series (app/history._busiest_port): no state's colour.
PORTS_COLOUR = "#8c564b"
PALETTE = ("#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#edc948",
           "#ff9da7", "#9c755f", "#bab0ac")


def _colour(label: str, i: int) -> str:
    from ..model.states import parse_state
    try:
        return COLOUR.get(parse_state(label), GREY)[0]
    except ValueError:
        return PALETTE[i % len(PALETTE)]


def with_gaps(times: list[float], values: list[float]) -> tuple[list, list]:
    """Times as datetimes and values, with a NaN point inside every gap.

    >>> _, v = with_gaps([0, 10, 20, 100, 110], [1, 2, 3, 4, 5])
    >>> v
    [1, 2, 3, nan, 4, 5]
    """
    xs, ys = [], []
    for n, (a, b) in enumerate(split_at_gaps(times)):
        if n:
            xs.append(dt.datetime.fromtimestamp((times[a - 1] + times[a]) / 2))
            ys.append(float("nan"))
        xs += [dt.datetime.fromtimestamp(t) for t in times[a:b]]
        ys += list(values[a:b])
    return xs, ys


def title_of(doc: dict, msg) -> str:
    fmt = "%Y-%m-%d %H:%M"
    times = [t for s in doc["series"] for t in s["times"]]  # what was sampled, in the window
    since = time.strftime(fmt, time.localtime(min(times) if times else doc["since"]))
    until = time.strftime(fmt, time.localtime(max(times) if times else doc["until"]))
    where = ", ".join(doc.get("namespaces") or []) or "?"
    return msg("history.png.title", netns=where, since=since, until=until, by=doc["by"])


#: CJK fonts for zh text, after the default (matplotlib >= 3.6 falls back
#: glyph by glyph along ``font.family``): Debian fonts-wqy-zenhei, fonts-noto-cjk.
CJK_FONTS = ("WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans CJK JP")


def _fonts() -> None:
    import logging

    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    # findfont's "weight normal not found, using 500" for wqy is noise on stderr
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    have = {f.name for f in font_manager.fontManager.ttflist}
    plt.rcParams["font.family"] = ["DejaVu Sans", *(f for f in CJK_FONTS if f in have),
                                   "sans-serif"]


def figure(doc: dict, msg):
    """The matplotlib figure for a ``history --json`` document."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _fonts()
    fig, ax = plt.subplots(figsize=(11, 4.6))
    top = 0.0
    for i, s in enumerate(doc["series"]):
        xs, ys = with_gaps(s["times"], s["values"])
        ax.plot(xs, ys, label=s["label"], color=_colour(s["label"], i), linewidth=1.8)
        top = max([top] + list(s["values"]))
    ports = doc.get("busiest_port")
    if ports:
        xs, ys = with_gaps(ports["times"], ports["values"])
        many = ports.get("of_namespaces", 1) > 1
        ax.plot(xs, ys, color=PORTS_COLOUR, linewidth=1.8, linestyle="-.",
                label=msg("history.png.busiest_port_of" if many else "history.png.busiest_port",
                          netns=ports["netns"], n=ports.get("of_namespaces", 1)))
        top = max([top] + list(ports["values"]))
    for lim in doc.get("limits", []):
        text = msg("history.png.limit", name=lim["name"], value=f"{lim['value']:g}")
        if "for" in lim and lim["for"] is None:  # no series drawn runs into it
            ax.plot([], [], color="#c0392b", linestyle=":", linewidth=1.2,
                    label=msg("history.png.limit_not_drawn", limit=text))
        elif lim["value"] <= max(top, 1.0) * OFF_CHART:
            ports = lim.get("for") == "busiest_port"  # in the colour of its series
            ax.axhline(lim["value"], color=PORTS_COLOUR if ports else "#c0392b", linestyle="--",
                       linewidth=1.2,
                       label=msg("history.png.limit_ports", limit=text) if ports else text)
        else:  # named, not drawn: the data would be a flat line at the bottom
            ax.plot([], [], color="#c0392b", linestyle=":", linewidth=1.2,
                    label=msg("history.png.limit_above", limit=text))
    ax.set_title(title_of(doc, msg), fontsize=11, loc="left")
    ax.set_ylabel(msg("history.png.ylabel"))
    ax.set_ylim(bottom=0)
    ax.grid(True, color="#e4e4e4")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    import matplotlib.dates as mdates
    locator = mdates.AutoDateLocator(minticks=4, maxticks=8)  # round minutes and hours
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    fig.tight_layout()
    return fig


def render(doc: dict, msg) -> bytes:
    """The PNG file's bytes (the caller writes them with the one atomic
    writer); ImportError without matplotlib."""
    import io

    fig = figure(doc, msg)
    import matplotlib.pyplot as plt
    out = io.BytesIO()
    try:
        fig.savefig(out, format="png", dpi=100)
    finally:
        plt.close(fig)
    return out.getvalue()
