"""What the one-shot commands take from the watch daemon's database
(track/store.py) when it is fresh: the ages of the sockets it tracks
(source ``trace`` or ``first_seen``, merged with what the snapshot itself
tells by track.events.merge_ages) and what grows (track/trends.py).

sqlite3, the store and the tracker are imported only when a database is
there: 11-23 ms that every ls/stats/report would pay otherwise.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..model.states import TcpState

if TYPE_CHECKING:  # imported where used: stats and ls need no diagnosis inputs
    from ..diagnose.inputs import NamespaceTrends

#: How far back the diagnosis fits growth in the watch database (the raw
#: samples' retention, and history's default).
TREND_WINDOW_S = 6 * 3600.0


def db_path(given: Path | None) -> Path:
    """``--db``, else where ``watch`` writes for this user."""
    from ..track.paths import default_path

    return given if given is not None else default_path(os.geteuid(), dict(os.environ))


def open_reading(path: Path):
    """The watch database at ``path``, for reading: FileNotFoundError when
    it is missing, an OSError for a directory or a device (fsutil),
    NotAWatchDatabase for a file that is not one (track/dbfile.py)."""
    from ..fsutil import check_regular
    from ..track.store import Store

    check_regular(path)
    return Store(path, readonly=True)


def open_writing(path: Path):
    """The watch database at ``path`` for ``watch``, made if needed (and
    its directory): the OSError a write would meet first (a read-only or
    missing place, a directory, a device: fsutil.check_target), and
    NotAWatchDatabase for an existing file that is not one (it is left
    as it is)."""
    from ..fsutil import check_target
    from ..track.store import Store

    path.parent.mkdir(parents=True, exist_ok=True)
    check_target(path)
    return Store(path)


def check_given(given: Path | None) -> None:
    """An explicit ``--db`` is a watch database this user can read, or an
    error (the exceptions of :func:`open_reading`) before any work is
    done. Only the default path may be absent (or unreadable) quietly:
    most hosts run no daemon."""
    if given is not None:
        open_reading(given).db.close()


@dataclass(frozen=True)
class Attached:
    """What :func:`attach_ages` did: ``ok`` when the parts got tracked ages;
    else ``error`` (the database could not be read) or ``stale`` with the
    seconds since its last sample (None: it has none)."""

    ok: bool
    path: Path
    error: str | None = None
    stale: bool = False
    ago: float | None = None


def attach_ages(view, given: Path | None, now: float | None = None) -> Attached:
    """Give each part of ``view`` tracked ages when the database is fresh.
    A missing database is not an error: most hosts run no daemon."""
    path = db_path(given)
    try:
        # A default path under another user's home (HOME kept by sudo -u,
        # or a dropped-privilege run) raises EACCES rather than "missing".
        if not path.exists():
            return Attached(False, path)
    except OSError as exc:
        return Attached(False, path, error=exc.strerror or str(exc))
    import sqlite3

    from ..model.files import NotOurFile
    from ..track.events import merge_ages

    try:
        store = open_reading(path)
    except (OSError, sqlite3.Error, NotOurFile) as exc:
        return Attached(False, path, error=getattr(exc, "strerror", None) or str(exc))
    try:
        now = time.time() if now is None else now
        if not store.is_fresh(now):
            last = store.last_sample()
            return Attached(False, path, stale=True, ago=None if last is None else now - last.t)
        for part in view.parts:
            rows = part.table.rows
            since, code, low = store.live_since(part.ns.netns.inode, rows["cookie"],
                                                rows["state"])
            timer, bound = part.age_arrays()
            part.tracked = merge_ages(now, since, code, low, timer, bound)
        return Attached(True, path)
    except sqlite3.Error as exc:
        return Attached(False, path, error=str(exc))
    finally:
        store.db.close()


def oldest(view) -> list[dict]:
    """Per state, the oldest tracked socket: what ``stats`` adds when a
    fresh watch database gave ages."""
    import numpy as np

    from ..model.states import name as state_name
    from ..track.events import SOURCE_CODES
    best: dict[int, tuple] = {}
    for part in view.parts:
        t = part.tracked
        if t is None or not len(t):
            continue
        st = part.table.rows["state"]
        secs = np.where(np.isnan(t.seconds), -1.0, t.seconds)
        for s in np.unique(st).tolist():
            idx = np.flatnonzero(st == s)
            i = idx[np.argmax(secs[idx])]
            if secs[i] < 0:
                continue
            cand = (float(secs[i]), bool(t.at_least[i]), SOURCE_CODES[int(t.source[i])].value,
                    part.ns.netns.label())
            if s not in best or cand[0] > best[s][0]:
                best[s] = cand
    return [{"state": state_name(s), "seconds": round(v[0], 3), "at_least": v[1],
             "source": v[2], "netns": v[3]} for s, v in sorted(best.items())]


# ---- trends ------------------------------------------------------------------

@dataclass(frozen=True)
class WatchTrends:
    """What grows in the watch database: per (pid, state), and per
    namespace (``track.trends``, the same fits as ``tcplinger history``)."""

    by_owner: dict
    by_netns: dict  # inode -> (by_state {state: Trend}, connections Trend | None)

    def of(self, inode: int) -> NamespaceTrends:
        from ..diagnose.inputs import NamespaceTrends

        by_state, conns = self.by_netns.get(inode, ({}, None))
        return NamespaceTrends(self.by_owner, by_state, conns)


def _read_fresh(given: Path | None, now: float | None, read):
    """``read(store, now)`` on the watch database when it is fresh; None when
    it is missing, stale or unreadable (the callers go without)."""
    import sqlite3

    from ..model.files import NotOurFile
    path = db_path(given)
    try:
        if not path.exists():
            return None
        store = open_reading(path)
    except (OSError, sqlite3.Error, NotOurFile):
        return None
    try:
        now = time.time() if now is None else now
        return read(store, now) if store.is_fresh(now) else None
    except sqlite3.Error:
        return None
    finally:
        store.db.close()


def watch_trends(given: Path | None, now: float | None = None,
                 window: float = TREND_WINDOW_S) -> WatchTrends | None:
    """Trends from the watch database when it is fresh, else None."""
    return _read_fresh(given, now, lambda store, now: trends_of(store, now - window))


def owned_series(series: dict) -> dict:
    """The per (state, owner) series that name a process: keys of
    unattributed sockets end in " " (no owner looked up) or " -" (no
    process: TIME_WAIT, orphans; track/series.py)."""
    return {k: v for k, v in series.items() if not k.endswith((" ", " -"))}


def trends_of(store, start: float) -> WatchTrends:
    """The growing series of ``store`` since ``start``, as diagnosis input."""
    from ..diagnose.inputs import Trend
    from ..track import trends as trends_mod
    from ..track.series import BUSIEST_PORT

    cw = int(TcpState.CLOSE_WAIT)
    series = store.series(start, by="state_owner", states=[cw])
    owned = trends_mod.growing(owned_series(series), owners=store.owner_info())
    by_owner = {}
    for f in owned:
        pid = f.owner.partition("/")[0]  # owner keys are "pid/comm" (track.series)
        if pid.isdigit():
            by_owner[(int(pid), f.state)] = Trend.of(f)
    by_netns: dict = {}
    for f in trends_mod.namespace_limits(store.counts_by_netns_state(start), store.kernel_latest(),
                                         store.counter_series(start, [BUSIEST_PORT])):
        by_state, conns = by_netns.get(f.netns, ({}, None))
        if f.state is None:
            conns = Trend.of(f)
        else:
            by_state[f.state] = Trend.of(f)
        by_netns[f.netns] = (by_state, conns)
    return WatchTrends(by_owner, by_netns)


# ---- rates -------------------------------------------------------------------

#: The last seconds of the watch database's counter samples a rate is
#: measured over (six samples at watch's default 10 s).
RATE_WINDOW_S = 60.0


def watch_rates(given: Path | None, now: float | None = None,
                window: float = RATE_WINDOW_S) -> dict | None:
    """Per namespace inode, the counter rates of a fresh watch database
    (``{"active_close": Rate}``, diagnose/rates.py); None without one."""
    return _read_fresh(given, now, lambda store, now: rates_of(store, now - window))


def rates_of(store, start: float) -> dict:
    """Active closes per second per namespace since ``start``: TcpExt TW +
    TCPTimeWaitOverflow as the watch database recorded them."""
    import numpy as np

    from ..diagnose import rates
    names = ["tcpext_" + n for n in rates.ACTIVE_CLOSE]
    out = {}
    for ns, (times, cols) in store.counter_series(start, names).items():
        if set(cols) != set(names):
            continue
        total = sum(cols.values())
        ok = ~np.isnan(total)
        found = rates.from_series(times[ok], total[ok], source="watch")
        if found is not None:
            out[ns] = {"active_close": found}
    return out


# ---- plots -------------------------------------------------------------------

def state_plots(given: Path | None, now: float | None = None,
                window: float = TREND_WINDOW_S) -> dict | None:
    """Counts per lingering state over the last ``window`` from a fresh
    watch database, with tcp_max_tw_buckets when TIME_WAIT is among them
    (the report's HTML page draws them); None without a fresh database."""
    from ..model.states import LINGERING, name as state_name

    def read(store, now):
        series = store.series(now - window, by="state", states=sorted(LINGERING))
        tw = [v for (_, name), v in store.kernel_latest().items() if name == "tcp_max_tw_buckets"]
        return series, tw
    got = _read_fresh(given, now, read)
    if got is None:
        return None
    series, tw = got
    out = [{"label": state_name(int(k)), "times": t.tolist(), "values": v.tolist()}
           for k, (t, v) in sorted(series.items()) if len(v) and v.max() > 0]
    limits = [("tcp_max_tw_buckets", max(tw))] if tw and any(
        s["label"] == "TIME_WAIT" for s in out) else []
    return {"series": out, "limits": limits} if out else None
