"""What ``top`` shows at each refresh (ui/top.py's TopModel): a snapshot
of the scope with its ages (tracked ones from a fresh watch database), the
counts' recent history, the owners with the most lingering sockets, and
what grows, from the watch database."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..collect.roots import Roots
from ..collect.snapshot import Scope
from ..model.states import LINGERING, name as state_name
from ..ui import top as top_ui
from ..ui.table import duration
from . import watchdb
from .view import NsView, take



@dataclass(frozen=True)
class LiveOptions:
    scope: Scope
    db: Path | None  # the watch database (None: the default one)
    history: float = 3600.0  # seconds of counts shown as a trend


@dataclass
class _Recent:
    """What the watch database adds: counts per (netns, state), growth
    lines, latest counts per (owner, state); ``note`` when it is absent."""

    history: dict
    growth: list
    owners: dict
    note: str | None = None


def live_view(opts: LiveOptions, msg, roots: Roots = Roots(), limit: int = 50) -> top_ui.TopModel:
    """One screen of ``top``: at most ``limit`` oldest sockets per namespace."""
    view = take(opts.scope, roots=roots)
    tracked = watchdb.attach_ages(view, opts.db).ok
    recent = _recent(watchdb.db_path(opts.db), opts.history, msg)
    states, oldest = [], []
    for part in view.parts:
        label = part.ns.netns.label()
        for st, n in sorted(part.table.state_counts().items()):
            states.append((label, state_name(st), n,
                           tuple(recent.history.get((part.ns.netns.inode, st), ()))))
        oldest += _oldest(part, label, limit)
    source = "trace/first_seen" if tracked else "timer/last_recv"
    return top_ui.TopModel(view.total, len(view.parts), source, tuple(states),
                           tuple((o, s, n) for (o, s), n in recent.owners.items()),
                           tuple(oldest), tuple(recent.growth), recent.note)


def _recent(path: Path, history: float, msg) -> _Recent:
    from ..track import trends

    recent = _Recent({}, [], {})
    if not path.exists():
        recent.note = msg("top.no_db")
        return recent
    try:
        store = watchdb.open_reading(path)
        try:
            now = time.time()
            for (ns, st), (_, v) in store.counts_by_netns_state(now - history).items():
                recent.history[(ns, st)] = v[-60:].tolist()
            by_so = store.series(now - history, by="state_owner")
            for f in trends.growing(watchdb.owned_series(by_so), owners=store.owner_info())[:3]:
                text = f"{state_name(f.state)} of {f.owner} {f.growth.per_minute:+.3g}/min"
                if f.ttl is not None:
                    text += f"; {f.limit_name} {f.limit:g} in ~{duration(f.ttl)}"
                recent.growth.append(text)
            t = store.db.execute("SELECT MAX(t) FROM counts").fetchone()[0]
            for owner, st, n in store.db.execute(
                    "SELECT owner, state, SUM(n) FROM counts WHERE t = ? AND owner NOT IN"
                    " ('', '-') GROUP BY owner, state ORDER BY 3 DESC LIMIT 20", (t,)):
                recent.owners[(owner, state_name(st))] = int(n)
        finally:
            store.db.close()
    except Exception:  # noqa: BLE001 - a damaged or locked database must not stop top
        recent.note = msg("top.no_db")
    return recent


def _oldest(part: NsView, label: str, limit: int) -> list[top_ui.OldSocket]:
    """The ``limit`` oldest lingering sockets of one namespace."""
    from ..track.events import SOURCE_CODES

    rows = part.table.rows
    idx = np.flatnonzero(np.isin(rows["state"], [int(s) for s in LINGERING]))
    if part.tracked is not None:
        secs, sources, low = part.tracked.seconds, part.tracked.source, part.tracked.at_least
    else:
        exact, bound = part.age_arrays()
        secs = np.where(np.isnan(exact), bound, exact)
        sources = np.where(np.isnan(exact), np.where(np.isnan(bound), 0, 2), 1)
        low = np.isnan(exact) & ~np.isnan(bound)
    order = idx[np.argsort(-np.nan_to_num(secs[idx], nan=-1.0))][:limit]
    out = []
    for i in order.tolist():
        rec = part.table.record(i)
        out.append(top_ui.OldSocket(
            None if np.isnan(secs[i]) else float(secs[i]), bool(low[i]),
            SOURCE_CODES[int(sources[i])].value, state_name(rec.state), str(rec.local),
            str(rec.remote), label, "-" if rec.inode == 0 else f"inode {rec.inode}",
            rec.cookie))
    return out
