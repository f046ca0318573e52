"""``tcplinger history``: trends from the watch database: a sparkline per
series, which ones grow, how fast, and when they reach their limit."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ...app.history import HistoryQuery, history
from ...app.watchdb import db_path
from ...diagnose.rates import number_text
from ...ui.sparkline import sparkline
from ...ui.table import duration, render
from ..errors import CliError, Exit, exit_for
from ..options import LONGEST, add_db, duration_type, output_file, states as states_arg

NAME = "history"


@dataclass(frozen=True)
class HistoryOptions:
    query: HistoryQuery
    json: bool
    png: Path | None


def register(sub, h) -> None:
    p = sub.add_parser(NAME, help=h("help.history"),
                       description=h("help.history.about"))
    p.add_argument("--since", type=duration_type(maximum=LONGEST, positive=True),
                   default=6 * 3600.0, metavar="DURATION",
                   help=h("help.history.since"))
    p.add_argument("--state", dest="states", type=states_arg, default=None, metavar="LIST",
                   help=h("help.history.state"))
    p.add_argument("--by", choices=("state", "owner", "netns"), default="state",
                   help=h("help.history.by"))
    p.add_argument("--json", action="store_true", help=h("help.history.json"))
    p.add_argument("--png", type=output_file, default=None, metavar="FILE",
                   help=h("help.history.png"))
    add_db(p, h, daemon=True)
    p.set_defaults(run=lambda args, term, msg: run(HistoryOptions(
        HistoryQuery(db_path(args.db), args.since, args.states, args.by), args.json, args.png),
        term, msg))


def run(opts: HistoryOptions, term, msg) -> int:
    q = opts.query
    try:
        doc = history(q)
    except FileNotFoundError:
        raise CliError(msg("history.error.no_db", path=q.db), Exit.NOT_FOUND)
    # the first sample shown, not the start of the window asked for: "since
    # 10:25" over samples of the last minute read as six hours of history
    first = min((s["times"][0] for s in doc["series"] if s["times"]), default=doc["since"])
    since_text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(first))
    if doc["samples"] == 0 and not doc["series"]:
        raise CliError(msg("history.error.empty", path=q.db, since=since_text),
                       Exit.NOT_FOUND)
    if opts.png is not None:
        write_png(doc, opts.png, msg)
    if opts.json:
        term.out(json.dumps(doc, indent=1))
        return 0
    term.out(msg("history.title", since=since_text, n=doc["samples"], by=q.by))
    spark_w = max(10, min(60, (term.width or 100) - 50))
    rows = [[s["label"], _num(s["now"]), _num(s["max"]), sparkline(s["values"], spark_w),
             number_text(s["per_minute"], signed=True)] for s in doc["series"]]
    for line in render([msg("history.col.key"), msg("history.col.now"), msg("history.col.max"),
                        msg("history.col.trend"), msg("history.col.rate")], rows, align="lrrlr"):
        term.out(line)
    term.out("")
    for f in doc["growing"]:
        ports = f["limit_name"] == "ephemeral ports"  # track/trends.namespace_limits
        what = msg("history.what.busiest_port", netns=f["netns_label"]) if ports else f["what"]
        text = msg("history.growing", what=what,
                   rate=number_text(f["per_minute"], signed=True),
                   span=duration(f["span_s"]))
        if f["limit"] and f["time_to_limit_s"] is not None:
            key = "history.limit_reached" if f["time_to_limit_s"] == 0 else "history.limit"
            text += msg(key + ("_ports" if ports else ""), limit=f["limit_name"],
                        value=_num(f["limit"]), eta=duration(f["time_to_limit_s"]))
        term.out(text)
    for r in doc["rising"]:
        term.out(msg("history.rising", what=r["what"],
                     rate=number_text(r["per_minute"], signed=True),
                     span=duration(r["span_s"]), n=r["points"],
                     need=duration(doc["needs"]["span_s"])))
    if not doc["growing"] and not doc["rising"]:
        term.out(msg("history.no_growth", need=duration(doc["needs"]["span_s"]),
                     r2=doc["needs"]["r2"]))
    if opts.png is not None:
        term.err(msg("history.png_written", path=opts.png))
    return 0


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.1f}"


def write_png(doc: dict, path: Path, msg) -> None:
    """ui/plot_png.py, with matplotlib from the ``plot`` extra."""
    from ...fsutil import atomic_write
    from ...ui import plot_png
    try:
        data = plot_png.render(doc, msg)
    except ImportError as exc:
        raise CliError(msg("history.error.png", text=str(exc)), Exit.UNSUPPORTED) from None
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise CliError(msg("html.unwritable", path=path, reason=exc.strerror or str(exc)),
                       exit_for(exc)) from None
