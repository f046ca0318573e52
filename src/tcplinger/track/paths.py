"""Where the watch database lives (no sqlite3 import: every one-shot
command asks, most find nothing)."""

from __future__ import annotations

import os
from pathlib import Path


def default_path(euid: int, env: dict) -> Path:
    """Where ``watch`` writes and the other commands look, unless ``--db``.

    >>> default_path(0, {})
    PosixPath('/var/lib/tcplinger/watch.db')
    >>> default_path(1000, {"HOME": "/home/ann"})
    PosixPath('/home/ann/.local/state/tcplinger/watch.db')
    >>> default_path(1000, {"XDG_STATE_HOME": "/s", "HOME": "/home/ann"})
    PosixPath('/s/tcplinger/watch.db')
    """
    if euid == 0:
        return Path("/var/lib/tcplinger/watch.db")
    base = env.get("XDG_STATE_HOME") or os.path.join(env.get("HOME", "/tmp"), ".local", "state")
    return Path(base) / "tcplinger" / "watch.db"
