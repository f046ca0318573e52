"""One-shot commands (ls, stats, report) use the daemon's memory: when a
fresh watch database is there, the ages of the sockets it tracks come from
it (source ``trace`` or ``first_seen``), merged with what the snapshot
itself tells (timer, tcp_info) by track.tracker.merge_ages."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from ..track.store import Store, default_path
from ..track.tracker import merge_ages


def add_argument(p) -> None:
    p.add_argument("--db", metavar="PATH", type=Path, default=None,
                   help="take ages from this watch database (default: the watch daemon's, "
                        "when it is fresh; docs/watch.md)")


def path_of(given: Path | None) -> Path:
    return given if given is not None else default_path(os.geteuid(), dict(os.environ))


def attach(view, given: Path | None, term=None, msg=None) -> bool:
    """Give each part of ``view`` tracked ages when the database is fresh.
    Returns whether it did. A missing default database is silent; a named
    one that is stale or unreadable is said on stderr."""
    path = path_of(given)
    if not path.exists():
        return False
    try:
        store = Store(path, readonly=True)
    except (OSError, sqlite3.Error):
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
