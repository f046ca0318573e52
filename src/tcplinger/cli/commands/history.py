"""``tcplinger history``: trends from the watch database: a sparkline per
series, which ones grow, how fast, and when they reach their limit."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path


from ...model.states import name as state_name
from ...track import trends
from ...track.store import Store
from ...ui.sparkline import sparkline
from ...ui.table import duration, render
from ..errors import CliError, Exit
from ..options import states as states_arg
from .watch import _duration, add_db_argument, db_path

NAME = "history"


@dataclass(frozen=True)
class HistoryOptions:
    db: Path
    since: float  # seconds back
    states: frozenset | None
    by: str
    json: bool
    png: Path | None


def register(sub) -> None:
    p = sub.add_parser(NAME, help="trends from the watch database: sparklines, growth, time to limit",
                       description="Show how socket counts evolved (from `tcplinger watch`), which "
                                   "grow, at what rate, and when they reach their limit (fd limit "
                                   "of the owner, tcp_max_tw_buckets, the ephemeral port range).")
    p.add_argument("--since", type=_duration, default=6 * 3600.0, metavar="DURATION",
                   help="how far back (default 6h)")
    p.add_argument("--state", dest="states", type=states_arg, default=None, metavar="LIST",
                   help="only these states (close-wait, time-wait, lingering, ...)")
    p.add_argument("--by", choices=("state", "owner", "netns"), default="state")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.add_argument("--png", type=Path, default=None, metavar="FILE",
                   help="also plot the series into a PNG file (needs matplotlib)")
    add_db_argument(p)
    p.set_defaults(run=lambda args, term, msg: run(HistoryOptions(
        db_path(args.db), args.since, args.states, args.by, args.json, args.png), term, msg))


def _label(by: str, key, labels: dict) -> str:
    if by == "state":
        return state_name(int(key))
    if by == "netns":
        return labels.get(key) or str(key)
    return {"": "(not attributed)", "-": "(no process)"}.get(key, key)


def analyse(store: Store, opts: HistoryOptions, now: float) -> dict:
    """Everything history shows, as plain data (also the JSON document)."""
    start = now - opts.since
    states = None if opts.states is None else sorted(int(s) for s in opts.states)
    series = store.series(start, by=opts.by, states=states)
    labels = store.netns_labels()
    by_so = store.series(start, by="state_owner", states=states)
    owners = store.owner_info()
    found = trends.growing({k: v for k, v in by_so.items() if not k.endswith(" ")
                            and not k.endswith(" -")}, owners=owners)
    by_ns_state = store.counts_by_netns_state(start)
    found += trends.namespace_limits(by_ns_state, store.kernel_latest())
    if states is not None:
        found = [f for f in found if f.state is None or f.state in states]
    n = store.db.execute("SELECT COUNT(*) FROM samples WHERE t >= ?", (start,)).fetchone()[0]
    out = {"since": start, "until": now, "by": opts.by, "samples": n, "series": [],
           "growing": []}
    for key, (t, v) in sorted(series.items(), key=lambda kv: -kv[1][1][-1] if len(kv[1][1])
                              else 0):
        from ...track.growth import fit
        g = fit(t, v)
        out["series"].append({"key": key if opts.by != "state" else state_name(int(key)),
                              "label": _label(opts.by, key, labels),
                              "times": [round(x, 3) for x in t.tolist()],
                              "values": v.tolist(), "now": float(v[-1]) if len(v) else 0.0,
                              "max": float(v.max()) if len(v) else 0.0,
                              "per_minute": round(g.per_minute, 4), "growing": g.growing})
    for f in found:
        what = f.key
        if f.state is not None and f.owner:
            what = f"{state_name(f.state)} of {f.owner}"
        elif f.netns is not None:
            what = (f"{state_name(f.state)} in {labels.get(f.netns, f.netns)}" if f.state
                    else f"connections in {labels.get(f.netns, f.netns)}")
        out["growing"].append({"what": what, "state": state_name(f.state) if f.state else None,
                               "owner": f.owner, "netns": f.netns,
                               "per_minute": round(f.growth.per_minute, 4),
                               "span_s": round(f.growth.span, 1), "r2": round(f.growth.r2, 4),
                               "current": f.current, "limit_name": f.limit_name,
                               "limit": f.limit, "time_to_limit_s": None if f.ttl is None
                               else round(f.ttl, 1)})
    return out


def run(opts: HistoryOptions, term, msg) -> int:
    try:
        store = Store(opts.db, readonly=True)
    except FileNotFoundError:
        raise CliError(msg("history.error.no_db", path=opts.db), Exit.NOT_FOUND)
    try:
        now = time.time()
        doc = analyse(store, opts, now)
    finally:
        store.db.close()
    since_text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(doc["since"]))
    if doc["samples"] == 0 and not doc["series"]:
        raise CliError(msg("history.error.empty", path=opts.db, since=since_text),
                       Exit.NOT_FOUND)
    if opts.png is not None:
        write_png(doc, opts.png, msg)
    if opts.json:
        term.out(json.dumps(doc, indent=1))
        return 0
    term.out(msg("history.title", since=since_text, n=doc["samples"], by=opts.by))
    spark_w = max(10, min(60, (term.width or 100) - 50))
    rows = [[s["label"], _num(s["now"]), _num(s["max"]), sparkline(s["values"], spark_w),
             f"{s['per_minute']:+.3g}"] for s in doc["series"]]
    for line in render([msg("history.col.key"), msg("history.col.now"), msg("history.col.max"),
                        msg("history.col.trend"), msg("history.col.rate")], rows, align="lrrlr"):
        term.out(line)
    term.out("")
    if not doc["growing"]:
        term.out(msg("history.no_growth"))
    for f in doc["growing"]:
        text = msg("history.growing", what=f["what"], rate=f"{f['per_minute']:+.3g}",
                   span=duration(f["span_s"]))
        if f["limit"] and f["time_to_limit_s"] is not None:
            key = "history.limit_reached" if f["time_to_limit_s"] == 0 else "history.limit"
            text += msg(key, limit=f["limit_name"], value=_num(f["limit"]),
                        eta=duration(f["time_to_limit_s"]))
        term.out(text)
    if opts.png is not None:
        term.err(msg("history.png_written", path=opts.png))
    return 0


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.1f}"


def write_png(doc: dict, path: Path, msg) -> None:
    """matplotlib when installed: a plot needs axes, dates and a legend,
    which a hand-made PNG would only imitate badly."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise CliError(msg("history.error.png", text=str(exc)), Exit.UNSUPPORTED)
    import datetime as dt
    fig, ax = plt.subplots(figsize=(10, 4))
    for s in doc["series"]:
        ax.plot([dt.datetime.fromtimestamp(t) for t in s["times"]], s["values"], label=s["label"])
    ax.set_ylabel("sockets")
    ax.legend(loc="upper left", fontsize="small")
    fig.autofmt_xdate()
    fig.savefig(path, dpi=100)
    plt.close(fig)
