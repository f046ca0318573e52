"""What ``top`` shows at each refresh (ui/top.py's TopModel): the scope
diagnosed as ``report`` does (owners by the one policy, inferred culprits
of the sockets no process holds, the findings), its ages (tracked ones
from a fresh watch database), and from the watch database the counts'
recent history and what grows."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..collect.owners import OwnerPolicy
from ..collect.roots import Roots
from ..collect.snapshot import Scope
from ..diagnose import culprits
from ..diagnose.context import NsContext
from ..model.states import LINGERING, name as state_name
from ..ui import top as top_ui
from ..ui.table import duration
from . import watchdb
from .diagnosis import DiagnoseOptions, diagnose
from .observation import ObserveOptions
from .view import NsView



@dataclass(frozen=True)
class LiveOptions:
    scope: Scope
    db: Path | None  # the watch database (None: the default one)
    history: float = 3600.0  # seconds of counts shown as a trend
    owners: OwnerPolicy = OwnerPolicy()


@dataclass
class _Recent:
    """What the watch database adds: counts per (netns, state) and growth
    lines; ``note`` when it is absent."""

    history: dict
    growth: list
    note: str | None = None


def live_view(opts: LiveOptions, msg, roots: Roots = Roots(), limit: int = 50) -> top_ui.TopModel:
    """One screen of ``top``: the scope diagnosed as ``report`` does
    (app/diagnosis.py: owners by the one policy, inferred culprits for the
    sockets no process holds, the findings), at most ``limit`` oldest
    sockets per namespace, and the counts' history from the watch database."""
    d = diagnose(DiagnoseOptions(ObserveOptions(opts.scope, owners=opts.owners, db=opts.db)),
                 roots)
    tracked = any(p.tracked is not None for p in d.view.parts)
    recent = _recent(watchdb.db_path(opts.db), opts.history, msg)
    states, oldest, owners = [], [], []
    for part, inp in zip(d.view.parts, d.inputs):
        label = part.ns.netns.label()
        for st, n in sorted(part.table.state_counts().items()):
            states.append((label, state_name(st), n,
                           tuple(recent.history.get((part.ns.netns.inode, st), ()))))
        idx = _lingering(part)
        shown = _oldest_rows(part, idx, limit)
        held, keys = culprits.holdings(NsContext(inp), idx, shown)
        owners += [top_ui.OwnerRow(h.key, state_name(h.state), h.count, h.command,
                                   h.basis if h.basis == "owner" else f"{h.basis} {h.where}")
                   for h in held]
        oldest += _oldest(part, label, shown, keys)
    owners.sort(key=lambda o: -o.count)
    source = "trace/first_seen" if tracked else "timer/last_recv"
    findings = tuple(top_ui.FindingRow(f.severity.label, f.rule, f.netns.label(), f.count,
                                       f.title.render(msg)) for f in d.findings)
    return top_ui.TopModel(d.view.total, len(d.view.parts), source, tuple(states),
                           tuple(owners), tuple(oldest), tuple(recent.growth), recent.note,
                           findings)


def _recent(path: Path, history: float, msg) -> _Recent:
    from ..track import trends

    recent = _Recent({}, [])
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
        finally:
            store.db.close()
    except Exception:  # noqa: BLE001 - a damaged or locked database must not stop top
        recent.note = msg("top.no_db")
    return recent


def _lingering(part: NsView) -> np.ndarray:
    return np.flatnonzero(np.isin(part.table.rows["state"], [int(s) for s in LINGERING]))


def _ages(part: NsView):
    """(seconds, source codes, at-least) of every row: tracked ones when a
    fresh watch database gave them, else what the snapshot tells."""
    if part.tracked is not None:
        return part.tracked.seconds, part.tracked.source, part.tracked.at_least
    exact, bound = part.age_arrays()
    secs = np.where(np.isnan(exact), bound, exact)
    sources = np.where(np.isnan(exact), np.where(np.isnan(bound), 0, 2), 1)
    return secs, sources, np.isnan(exact) & ~np.isnan(bound)


def _oldest_rows(part: NsView, idx: np.ndarray, limit: int) -> list[int]:
    """The ``limit`` oldest of rows ``idx``."""
    secs = _ages(part)[0]
    return idx[np.argsort(-np.nan_to_num(secs[idx], nan=-1.0), kind="stable")][:limit].tolist()


def _oldest(part: NsView, label: str, rows: list[int], keys: dict) -> list[top_ui.OldSocket]:
    from ..track.events import SOURCE_CODES

    secs, sources, low = _ages(part)
    out = []
    for i in rows:
        rec = part.table.record(i)
        out.append(top_ui.OldSocket(
            None if np.isnan(secs[i]) else float(secs[i]), bool(low[i]),
            SOURCE_CODES[int(sources[i])].value, state_name(rec.state), str(rec.local),
            str(rec.remote), label, keys.get(i, "-"), rec.cookie))
    return out
