"""Is a file a watch database? Judged by its first bytes before SQLite
opens it, then by its tables once open; a file that is not one is left
as it is (track/store.py opens it only after both)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..model.files import NotOurFile


class NotAWatchDatabase(NotOurFile):
    """A file that is not a watch database: not SQLite, a damaged one, or
    another program's (no ``meta`` table with a schema version). Neither
    ``watch`` nor a reader changes it."""

    def __init__(self, path, reason: str):
        super().__init__(path, "file.not_watch_db", reason)


def uri(path: Path, mode: str) -> str:
    """An SQLite URI for ``path`` (https://sqlite.org/uri.html: ``?`` and
    ``#`` end the path, ``%`` escapes).

    >>> uri(Path("/tmp/a?b#c%d.db"), "ro")
    'file:/tmp/a%3fb%23c%25d.db?mode=ro'
    """
    text = str(path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    return f"file:{text}?mode={mode}"


def check_header(path: Path, *, empty_ok: bool) -> None:
    """Judge the file by its first bytes before SQLite opens it: a query
    on a file whose header says WAL makes SQLite create ``-wal`` and
    ``-shm`` files beside it, even read-only, and nothing may be made
    beside a file that is not ours. https://sqlite.org/fileformat.html:
    the 16-byte magic, the page size at offset 16 (big-endian, 1 = 65536,
    a power of two from 512), and a file of whole pages.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); p = Path(d, "x.db")
    >>> _ = p.write_bytes(b"SQLite format 3\\x00\\x10\\x00" + bytes(4096 - 18))
    >>> check_header(p, empty_ok=False)
    >>> _ = p.write_bytes(p.read_bytes()[:200])
    >>> check_header(p, empty_ok=False)
    Traceback (most recent call last):
    ...
    tcplinger.track.dbfile.NotAWatchDatabase: ...: not tcplinger's: cut short or damaged (200 bytes, pages of 4096) (left as it is)
    """
    with open(path, "rb") as f:
        head = f.read(100)
        size = os.fstat(f.fileno()).st_size
    if size == 0:
        if empty_ok:
            return
        raise NotAWatchDatabase(path, "empty")
    if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
        raise NotAWatchDatabase(path, "file is not a database")
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1) or size % page:
        raise NotAWatchDatabase(path, f"cut short or damaged ({size} bytes, pages of {page})")


def verify(db: sqlite3.Connection, path: Path, *, empty_ok: bool) -> None:
    """Raise NotAWatchDatabase unless ``db`` is one (or, ``empty_ok``,
    holds no table yet: a new file)."""
    try:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not names and empty_ok:
            return
        if "meta" not in names or "counts" not in names:
            raise NotAWatchDatabase(path, "no watch tables" if names else "no tables")
        row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed"
        raise NotAWatchDatabase(path, str(exc)) from None
    if row is None:
        raise NotAWatchDatabase(path, "no schema version")
