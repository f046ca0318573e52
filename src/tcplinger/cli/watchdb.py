"""One-shot commands (ls, stats, report) use the daemon's memory: when a
fresh watch database is there, the ages of the sockets it tracks come from
it (source ``trace`` or ``first_seen``), merged with what the snapshot
itself tells (timer, tcp_info) by track.tracker.merge_ages."""

from __future__ import annotations

import os
import time
from pathlib import Path

# sqlite3, the store and the tracker are imported only when a database is
# there: 11-23 ms that every ls/stats/report would pay otherwise.


def add_argument(p) -> None:
    p.add_argument("--db", metavar="PATH", type=Path, default=None,
                   help="take ages from this watch database (default: the watch daemon's, "
                        "when it is fresh; docs/watch.md)")


def path_of(given: Path | None) -> Path:
    from ..track.paths import default_path

    return given if given is not None else default_path(os.geteuid(), dict(os.environ))


def attach(view, given: Path | None, term=None, msg=None) -> bool:
    """Give each part of ``view`` tracked ages when the database is fresh.
    Returns whether it did. A missing default database is silent; a named
    one that is stale or unreadable is said on stderr."""
    path = path_of(given)
    try:
        # A default path under another user's home (HOME kept by sudo -u,
        # or a dropped-privilege run) raises EACCES rather than "missing".
        if not path.exists():
            return False
    except OSError as exc:
        if given is not None and term is not None:
            term.err(f"warning: cannot read watch database {path}: {exc.strerror or exc}")
        return False
    import sqlite3

    from ..track.store import Store
    from ..track.tracker import merge_ages

    try:
        store = Store(path, readonly=True)
    except (OSError, sqlite3.Error) as exc:
        if given is not None and term is not None:
            term.err(f"warning: cannot read watch database {path}: "
                     f"{getattr(exc, 'strerror', None) or exc}")
        return False
    try:
        now = time.time()
        if not store.is_fresh(now):
            last = store.last_sample()
            if given is not None and term is not None and msg is not None:
                ago = "never" if last is None else f"{now - last.t:.0f}s"
                term.err(msg("watch.stale", path=path, ago=ago))
            return False
        for part in view.parts:
            rows = part.table.rows
            since, code, low = store.live_since(part.ns.netns.inode, rows["cookie"],
                                                rows["state"])
            timer, bound = part.age_arrays()
            part.tracked = merge_ages(now, since, code, low, timer, bound)
        return True
    except sqlite3.Error:
        return False
    finally:
        store.db.close()


def oldest(view) -> list[dict]:
    """Per state, the oldest tracked socket: what ``stats`` adds when a
    fresh watch database gave ages."""
    import numpy as np

    from ..model.states import name as state_name
    from ..track.tracker import SOURCE_CODES
    best: dict[int, tuple] = {}
    for part in view.parts:
        t = getattr(part, "tracked", None)
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
