"""What ``tcplinger history`` shows, as plain data (also its JSON
document): the series of the watch database (by state, owner or
namespace), their growth, and the ones that reach a limit (the owner's fd
limit, tcp_max_tw_buckets, the ephemeral port range; track/trends.py).

The verdict follows the table: every series the table shows growing is
named (``growing``, kind "series"), with the per-owner and per-limit
detail after it (the same fits as the report's trend evidence,
app/watchdb.py); a series that rises cleanly but for less than
track.growth.MIN_SPAN_S is named as rising, not yet a trend (``rising``).
"Nothing is growing" is said only when neither holds."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model.states import name as state_name
from ..track import trends
from ..track.growth import MIN_R2, MIN_SPAN_S, fit
from ..track.series import BUSIEST_PORT
from ..track.store import Store
from .watchdb import open_reading, owned_series


@dataclass(frozen=True)
class HistoryQuery:
    db: Path
    since: float  # seconds back
    states: frozenset | None
    by: str  # "state", "owner" or "netns"


def history(query: HistoryQuery, now: float | None = None) -> dict:
    """The document of ``query``; FileNotFoundError without a database
    (and the other errors of watchdb.open_reading)."""
    store = open_reading(query.db)
    try:
        return analyse(store, query, time.time() if now is None else now)
    finally:
        store.db.close()


def _label(by: str, key, labels: dict) -> str:
    if by == "state":
        return state_name(int(key))
    if by == "netns":
        return labels.get(key) or str(key)
    return {"": "(not attributed)", "-": "(no process)"}.get(key, key)


def analyse(store: Store, query: HistoryQuery, now: float) -> dict:
    """Everything history shows from an open ``store``."""
    start = now - query.since
    states = None if query.states is None else sorted(int(s) for s in query.states)
    series = store.series(start, by=query.by, states=states)
    labels = store.netns_labels()
    found = trends.growing(owned_series(store.series(start, by="state_owner", states=states)),
                           owners=store.owner_info())
    busiest = store.counter_series(start, [BUSIEST_PORT])
    found += trends.namespace_limits(store.counts_by_netns_state(start), store.kernel_latest(),
                                     busiest)
    if states is not None:
        found = [f for f in found if f.state is None or f.state in states]
    n = store.db.execute("SELECT COUNT(*) FROM samples WHERE t >= ?", (start,)).fetchone()[0]
    out = {"since": start, "until": now, "by": query.by, "samples": n, "series": [],
           "growing": [], "rising": [], "needs": {"span_s": MIN_SPAN_S, "r2": MIN_R2}}
    for key, (t, v) in sorted(series.items(), key=lambda kv: -kv[1][1][-1] if len(kv[1][1])
                              else 0):
        g = fit(t, v)
        out["series"].append({"key": key if query.by != "state" else state_name(int(key)),
                              "label": _label(query.by, key, labels),
                              "times": [round(x, 3) for x in t.tolist()],
                              "values": v.tolist(), "now": float(v[-1]) if len(v) else 0.0,
                              "max": float(v.max()) if len(v) else 0.0,
                              "per_minute": round(g.per_minute, 4), "growing": g.growing,
                              "trend": g.why})
        if g.growing:
            out["growing"].append(_series_growing(query.by, key, out["series"][-1], g))
        elif g.why == "short":
            out["rising"].append({"what": out["series"][-1]["label"],
                                  "per_minute": round(g.per_minute, 4),
                                  "span_s": round(g.span, 1), "points": g.points,
                                  "r2": round(g.r2, 4)})
    out["growing"] += [_growing(f, labels) for f in found]
    out["namespaces"] = sorted(set(labels.values()))
    labels_shown = {s["label"] for s in out["series"]}
    out["busiest_port"] = (_busiest_port(busiest, store.kernel_latest(), labels)
                           if query.by == "state" and labels_shown & _PORT_STATES else None)
    out["limits"] = _limits(store, query.by, out["series"], out["busiest_port"])
    return out


#: The states whose table gets the ephemeral port range (and the busiest
#: remote port's series, which counts their local ends).
_PORT_STATES = frozenset({"ESTABLISHED", "TIME_WAIT"})


def _busiest_port(busiest: dict, kernel: dict, labels: dict) -> dict | None:
    """The series of watch's busiest remote port (track/series.BUSIEST_PORT:
    the most local ephemeral ports held towards one remote port) of the
    namespace nearest its own ip_local_port_range, the limit that series
    runs into (history's projection, track/trends.namespace_limits); None
    when no namespace has it (a database of a watch before it).
    ``of_namespaces``: how many namespaces have one."""
    best, key, n = None, None, 0
    for ns, (t, values) in busiest.items():
        limit = kernel.get((ns, "ephemeral_ports"))
        v = np.asarray(values.get(BUSIEST_PORT, ()), float)
        known = ~np.isnan(v)
        if not limit or not known.any():
            continue
        n += 1
        k = (float(v[known].max()) / limit, str(labels.get(ns, ns)))
        if key is None or k[0] > key[0] or (k[0] == key[0] and k[1] < key[1]):
            key = k
            best = {"netns": labels.get(ns) or str(ns), "limit": limit,
                    "times": [round(x, 3) for x in np.asarray(t)[known].tolist()],
                    "values": v[known].tolist()}
    if best is not None:
        best["of_namespaces"] = n
    return best


def _limits(store: Store, by: str, series: list[dict], busiest: dict | None) -> list[dict]:
    """The limits the plotted series run into (``for``: the series label):
    tcp_max_tw_buckets for TIME_WAIT, each owner's RLIMIT_NOFILE, and the
    ephemeral port range: the size of the one of ``busiest`` (``for``
    "busiest_port"), or without that series (a database of a watch before
    it) the largest across namespaces, ``for`` None: no series shown runs
    into it (connect() runs out per destination, not per state)."""
    kernel = store.kernel_latest()

    def top(name):
        values = [v for (_, n), v in kernel.items() if n == name]
        return max(values) if values else None

    out = []
    labels = {s["label"] for s in series}
    if by == "state":
        if "TIME_WAIT" in labels and top("tcp_max_tw_buckets"):
            out.append({"name": "tcp_max_tw_buckets", "value": top("tcp_max_tw_buckets"),
                        "for": "TIME_WAIT"})
        if busiest is not None:
            out.append({"name": "ip_local_port_range", "value": busiest["limit"],
                        "for": "busiest_port"})
        elif labels & _PORT_STATES and top("ephemeral_ports"):
            out.append({"name": "ip_local_port_range", "value": top("ephemeral_ports"),
                        "for": None})
    elif by == "owner":
        for key, (pid, comm, fd_limit, _fds) in store.owner_info().items():
            if key in labels and fd_limit:
                out.append({"name": f"RLIMIT_NOFILE {comm} ({pid})", "value": fd_limit,
                            "for": key})
    return out


def _series_growing(by: str, key, s: dict, g) -> dict:
    """A growing series of the table itself (whatever its owners)."""
    return {"kind": "series", "what": s["label"], "state": s["key"] if by == "state" else None,
            "owner": key if by == "owner" else None, "netns": key if by == "netns" else None,
            "per_minute": round(g.per_minute, 4), "span_s": round(g.span, 1),
            "r2": round(g.r2, 4), "current": s["now"], "limit_name": None, "limit": None,
            "time_to_limit_s": None}


def _growing(f, labels: dict) -> dict:
    what = f.key
    if f.state is not None and f.owner:
        what = f"{state_name(f.state)} of {f.owner}"
    elif f.netns is not None:
        what = (f"{state_name(f.state)} in {labels.get(f.netns, f.netns)}" if f.state
                else f"ephemeral ports towards the busiest remote port in "
                     f"{labels.get(f.netns, f.netns)}")
    return {"kind": "owner" if f.owner else "limit", "what": what,
            "state": state_name(f.state) if f.state else None,
            "owner": f.owner, "netns": f.netns,
            "netns_label": None if f.netns is None else labels.get(f.netns, str(f.netns)),
            "per_minute": round(f.growth.per_minute, 4),
            "span_s": round(f.growth.span, 1), "r2": round(f.growth.r2, 4),
            "current": f.current, "limit_name": f.limit_name,
            "limit": f.limit, "time_to_limit_s": None if f.ttl is None else round(f.ttl, 1)}
