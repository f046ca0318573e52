"""The watch database: SQLite, one file, written by ``tcplinger watch`` and
read by every other command.

Tables (all times are wall-clock seconds, ``time.time()``):

``meta``     key/value: schema version, interval, age source, host.
``samples``  one row per sample: when, sockets seen, trace events lost.
``counts``   sockets per (namespace, state, owner) per sample; ``res`` is
             0 for raw samples and :data:`DOWNSAMPLE_S` for rolled-up
             buckets (``n`` the mean, ``n_max`` the maximum).
``kernel``   limits and counters per namespace (sockstat, sysctls,
             TcpExt), same ``res`` scheme.
``owners``   what an owner key (``pid/comm``) means: pid, comm, fd limit.
``events``   per-socket transitions into or out of a lingering state, with
             how long the socket stayed in the state it left.
``live``     the sockets being tracked now, with since when they are in
             their state: what ``ls`` reads to show ages.

Time-series tables are WITHOUT ROWID with the time first in their primary
key: the rows are stored once, in time order, with no separate index
(https://sqlite.org/withoutrowid.html); that halves the file against a
rowid table plus a time index (measured, docs/watch.md).

Durability: WAL journal, one transaction per sample, ``synchronous=NORMAL``
(https://sqlite.org/wal.html: a crash of the writer never corrupts the
database nor loses a committed transaction; only a power loss can drop the
last ones). Readers never block the writer.

Retention (:meth:`Store.retain`): raw rows for ``raw_keep`` (6 h), then
rolled up into 5-minute buckets kept for ``keep`` (30 days); events kept
for ``keep``. The size this gives is measured in docs/watch.md.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dbfile import check_header, uri, verify
from .identity import live_changes


SCHEMA_VERSION = 2
DOWNSAMPLE_S = 300
RAW_KEEP_S = 6 * 3600
KEEP_S = 30 * 24 * 3600

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS samples(t REAL PRIMARY KEY, interval REAL, sockets INTEGER,
    lost_events INTEGER, age_source TEXT);
CREATE TABLE IF NOT EXISTS counts(t REAL, res INTEGER, netns INTEGER, state INTEGER,
    owner TEXT, n REAL, n_max INTEGER,
    PRIMARY KEY(t, res, netns, state, owner)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kernel(t REAL, res INTEGER, netns INTEGER, name TEXT, value REAL,
    PRIMARY KEY(t, res, netns, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS netns(inode INTEGER PRIMARY KEY, label TEXT);
CREATE TABLE IF NOT EXISTS owners(key TEXT PRIMARY KEY, pid INTEGER, comm TEXT,
    fd_limit INTEGER, fds INTEGER, t REAL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events(t REAL, netns INTEGER, cookie INTEGER, old INTEGER,
    new INTEGER, source TEXT, stayed REAL, stayed_at_least INTEGER, local TEXT, remote TEXT);
CREATE INDEX IF NOT EXISTS events_t ON events(t);
CREATE TABLE IF NOT EXISTS live(netns INTEGER, cookie INTEGER, state INTEGER, since REAL,
    source INTEGER, at_least INTEGER, PRIMARY KEY(netns, cookie)) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class CountRow:
    netns: int
    state: int
    owner: str  # "pid/comm", "-" (no process: TIME_WAIT, orphans), "" (not attributed)
    n: int


@dataclass(frozen=True)
class SampleInfo:
    t: float
    interval: float
    sockets: int
    lost_events: int
    age_source: str


class Store:
    """An open watch database. ``Store(path)`` creates it if needed;
    ``Store(path, readonly=True)`` only reads (raises FileNotFoundError
    when absent). Either raises NotAWatchDatabase for a file that is not
    one, and leaves that file as it is."""

    def __init__(self, path: Path | str, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.exists():
                raise FileNotFoundError(2, "No such file or directory", str(self.path))
            check_header(self.path, empty_ok=False)
            self.db = sqlite3.connect(uri(self.path, "ro"), uri=True, timeout=5)
            try:
                verify(self.db, self.path, empty_ok=False)
            except BaseException:
                self.db.close()
                raise
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                check_header(self.path, empty_ok=True)
            self.db = sqlite3.connect(uri(self.path, "rwc"), uri=True, timeout=10,
                                      isolation_level=None)
            try:
                verify(self.db, self.path, empty_ok=True)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.executescript(SCHEMA)
                self.db.execute("INSERT OR IGNORE INTO meta VALUES('schema', ?)",
                                (str(SCHEMA_VERSION),))
            except BaseException:
                self.db.close()
                raise
        self._live: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._kernel_last: dict[tuple[int, str], tuple[float, int]] = {}

    def close(self) -> None:
        if not self.readonly:
            try:
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- writing --------------------------------------------------------
    def set_meta(self, **values) -> None:
        self.db.executemany("INSERT OR REPLACE INTO meta VALUES(?, ?)",
                            [(k, json.dumps(v)) for k, v in values.items()])

    def write_sample(self, info: SampleInfo, counts, kernel=(), events=(), owners=(),
                     live=None, netns_labels=None, gone_netns=()) -> None:
        """One sample, one transaction.

        ``counts``: CountRow; ``kernel``: (netns, name, value);
        ``events``: track.events.Transition with wall-clock ``t``;
        ``owners``: (key, pid, comm, fd_limit, fds); ``live``: {netns:
        (cookie, state, since_wall, code, at_least) arrays} replacing what
        is stored for those namespaces (only the differences are written);
        ``gone_netns``: namespaces that no longer exist (their live rows go).
        """
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for ns in gone_netns:
                db.execute("DELETE FROM live WHERE netns=?", (ns,))
                self._live.pop(ns, None)
            db.execute("INSERT OR REPLACE INTO samples VALUES(?,?,?,?,?)",
                       (info.t, info.interval, info.sockets, info.lost_events, info.age_source))
            db.executemany("INSERT OR REPLACE INTO counts VALUES(?,0,?,?,?,?,?)",
                           [(info.t, c.netns, c.state, c.owner, c.n, c.n) for c in counts])
            # limits rarely change: a row only when the value did (or a new
            # 5-minute bucket starts, so every bucket has a value to average)
            bucket = int(info.t // DOWNSAMPLE_S)
            rows = []
            for ns, name, v in kernel:
                v = float(v)
                if self._kernel_last.get((ns, name)) != (v, bucket):
                    rows.append((info.t, ns, name, v))
                    self._kernel_last[(ns, name)] = (v, bucket)
            db.executemany("INSERT OR REPLACE INTO kernel VALUES(?,0,?,?,?)", rows)
            # a late trace event replaces the row its sampled twin wrote
            db.executemany("DELETE FROM events WHERE netns=? AND cookie=? AND new IS ?"
                           " AND source='first_seen'",
                           [(e.netns, _i64(e.cookie), e.new) for e in events if e.corrects])
            db.executemany("INSERT INTO events VALUES(?,?,?,?,?,?,?,?,?,?)",
                           [(e.t, e.netns, _i64(e.cookie), e.old, e.new, e.source.value,
                             e.stayed, int(e.stayed_at_least), f"{e.local[0]}:{e.local[1]}",
                             f"{e.remote[0]}:{e.remote[1]}") for e in events])
            db.executemany("INSERT OR REPLACE INTO owners VALUES(?,?,?,?,?,?)",
                           [(k, pid, comm, lim, fds, info.t) for k, pid, comm, lim, fds in owners])
            if netns_labels:
                db.executemany("INSERT OR REPLACE INTO netns VALUES(?,?)", netns_labels.items())
            for ns, cols in (live or {}).items():
                self._write_live(ns, *cols)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _write_live(self, ns, cookie, state, since, code, at_least) -> None:
        """Upsert rows that are new or changed, delete the ones gone. The
        previous arrays are kept in memory, so a steady host costs nothing."""
        cookie = np.asarray(cookie, np.uint64)
        prev = self._live.get(ns)
        if prev is None:
            self.db.execute("DELETE FROM live WHERE netns=?", (ns,))
            changed, gone = np.ones(len(cookie), bool), np.zeros(0, np.uint64)
        else:
            changed, gone = live_changes(*prev, cookie, state, since)
        self.db.executemany("DELETE FROM live WHERE netns=? AND cookie=?",
                            [(ns, _i64(c)) for c in gone.tolist()])
        rows = zip(cookie[changed].tolist(), state[changed].tolist(), since[changed].tolist(),
                   code[changed].tolist(), at_least[changed].tolist())
        self.db.executemany("INSERT OR REPLACE INTO live VALUES(?,?,?,?,?,?)",
                            [(ns, _i64(c), s, t, k, int(b)) for c, s, t, k, b in rows])
        if len(cookie) < 2 or (cookie[1:] >= cookie[:-1]).all():  # the tracker keeps them sorted
            # copies: the caller's arrays may be its own, changed in place later
            self._live[ns] = (cookie.copy(), np.array(state), np.array(since))
        else:
            order = np.argsort(cookie)
            self._live[ns] = (cookie[order], np.asarray(state)[order], np.asarray(since)[order])

    def retain(self, now: float, *, raw_keep: float = RAW_KEEP_S, keep: float = KEEP_S,
               bucket: int = DOWNSAMPLE_S) -> None:
        """Roll raw rows older than ``raw_keep`` into ``bucket``-second rows
        (mean and max), drop everything older than ``keep``."""
        db = self.db
        cut = now - raw_keep
        cut = cut - cut % bucket  # whole buckets only
        db.execute("BEGIN IMMEDIATE")
        try:
            # mean over the samples of the bucket; a series absent from a sample counts 0
            db.execute(
                """INSERT OR REPLACE INTO counts
                   SELECT b, ?, netns, state, owner, SUM(n) / MAX(1, (SELECT COUNT(*) FROM samples
                          WHERE t >= b AND t < b + ?)), MAX(n_max)
                   FROM (SELECT CAST(t / ? AS INTEGER) * ? AS b, netns, state, owner, n, n_max
                         FROM counts WHERE res = 0 AND t < ?)
                   GROUP BY b, netns, state, owner""", (bucket, bucket, bucket, bucket, cut))
            db.execute("DELETE FROM counts WHERE res = 0 AND t < ?", (cut,))
            db.execute(
                """INSERT OR REPLACE INTO kernel
                   SELECT CAST(t / ? AS INTEGER) * ?, ?, netns, name, AVG(value)
                   FROM kernel WHERE res = 0 AND t < ? GROUP BY 1, netns, name""",
                (bucket, bucket, bucket, cut))
            db.execute("DELETE FROM kernel WHERE res = 0 AND t < ?", (cut,))
            db.execute("DELETE FROM samples WHERE t < ?", (cut,))
            old = now - keep
            for table in ("counts", "kernel", "events"):
                db.execute(f"DELETE FROM {table} WHERE t < ?", (old,))
            db.execute("DELETE FROM owners WHERE t < ?", (old,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # ---- reading --------------------------------------------------------
    def meta(self) -> dict:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def last_sample(self) -> SampleInfo | None:
        row = self.db.execute("SELECT t, interval, sockets, lost_events, age_source FROM samples"
                              " ORDER BY t DESC LIMIT 1").fetchone()
        return SampleInfo(*row) if row else None

    def is_fresh(self, now: float, intervals: float = 3.0, slack: float = 5.0) -> bool:
        """The last sample is recent enough to trust ``live``."""
        last = self.last_sample()
        return last is not None and now - last.t <= intervals * last.interval + slack

    def live_since(self, ns: int, cookies: np.ndarray, states: np.ndarray):
        """(since wall seconds, source code, at_least) for ``cookies`` of
        namespace ``ns`` whose stored state equals ``states``; NaN/0 else."""
        n = len(cookies)
        since = np.full(n, np.nan)
        code = np.zeros(n, np.int8)
        low = np.zeros(n, bool)
        rows = self.db.execute("SELECT cookie, state, since, source, at_least FROM live"
                               " WHERE netns=?", (ns,)).fetchall()
        if not rows or n == 0:
            return since, code, low
        arr = np.array(rows, dtype=[("c", "i8"), ("s", "i8"), ("t", "f8"), ("k", "i1"),
                                    ("b", "?")])
        keys = arr["c"].astype(np.int64).view(np.uint64)  # signed storage of the u64 cookie
        order = np.argsort(keys)
        keys, arr = keys[order], arr[order]
        cookies = np.asarray(cookies, np.uint64)
        idx = np.minimum(np.searchsorted(keys, cookies), len(keys) - 1)
        hit = (keys[idx] == cookies) & (arr["s"][idx] == np.asarray(states, np.int64))
        since[hit] = arr["t"][idx[hit]]
        code[hit] = arr["k"][idx[hit]]
        low[hit] = arr["b"][idx[hit]]
        return since, code, low

    def counts_by_netns_state(self, start: float) -> dict:
        """``{(netns, state): (times, counts)}`` since ``start``, summed over
        owners: what history, top and the report's trends plot and fit."""
        rows = self.db.execute("SELECT t, netns, state, SUM(n) FROM counts WHERE t >= ?"
                               " GROUP BY t, netns, state ORDER BY t", (start,)).fetchall()
        return _by_key((t, (ns, st), n) for t, ns, st, n in rows)

    def series(self, since: float, *, by: str = "state", states=None, res: int | None = None):
        """``{key: (times, values)}`` summed over everything but ``by``
        (``state``, ``owner``, ``netns`` or ``state_owner``). Raw rows where
        they exist, the rolled-up ones before."""
        col = {"state": "state", "owner": "owner", "netns": "netns",
               "state_owner": "state || ' ' || owner"}[by]
        where, args = "t >= ?", [since]
        if states is not None:
            where += f" AND state IN ({','.join('?' * len(states))})"
            args += [int(s) for s in states]
        if res is not None:
            where += " AND res = ?"
            args.append(res)
        return _by_key(self.db.execute(f"SELECT t, {col}, SUM(n) FROM counts WHERE {where}"
                                       f" GROUP BY t, {col} ORDER BY t", args))

    def kernel_latest(self) -> dict[tuple[int, str], float]:
        """The last value of every limit and counter, per namespace."""
        rows = self.db.execute("SELECT netns, name, value, MAX(t) FROM kernel"
                               " GROUP BY netns, name").fetchall()
        return {(ns, name): v for ns, name, v, _ in rows}

    def counter_series(self, since: float, names) -> dict:
        """``{netns: (times, {name: values})}``: the kernel values ``names``
        at every raw sample since ``since``, NaN before a namespace's first
        row. A row is written only when a value changes (or a 5-minute
        bucket starts: :meth:`write_sample`), so values are carried forward
        from the last row at or before each sample, an earlier one included.
        """
        names = list(names)
        marks = ",".join("?" * len(names))
        times = np.array([r[0] for r in self.db.execute(
            "SELECT t FROM samples WHERE t >= ? ORDER BY t", (since,))], dtype=float)
        rows: dict[tuple, list] = {}
        for ns, name, value, t in self.db.execute(
                f"SELECT netns, name, value, MAX(t) FROM kernel WHERE res = 0 AND t < ?"
                f" AND name IN ({marks}) GROUP BY netns, name", [since, *names]):
            rows.setdefault((ns, name), []).append((t, value))
        for t, ns, name, value in self.db.execute(
                f"SELECT t, netns, name, value FROM kernel WHERE res = 0 AND t >= ?"
                f" AND name IN ({marks}) ORDER BY t", [since, *names]):
            rows.setdefault((ns, name), []).append((t, value))
        out: dict = {}
        for (ns, name), pts in rows.items():
            ts = np.array([p[0] for p in pts])
            vs = np.array([p[1] for p in pts], dtype=float)
            at = np.searchsorted(ts, times, side="right") - 1
            values = np.where(at >= 0, vs[np.maximum(at, 0)], np.nan)
            out.setdefault(ns, (times, {}))[1][name] = values
        return out

    def owner_info(self) -> dict[str, tuple]:
        return {k: (pid, comm, lim, fds) for k, pid, comm, lim, fds in
                self.db.execute("SELECT key, pid, comm, fd_limit, fds FROM owners")}

    def netns_labels(self) -> dict[int, str]:
        return dict(self.db.execute("SELECT inode, label FROM netns"))

    def events(self, since: float = 0.0, netns: int | None = None, cookie: int | None = None):
        q, args = "SELECT * FROM events WHERE t >= ?", [since]
        if netns is not None:
            q, args = q + " AND netns = ?", args + [netns]
        if cookie is not None:
            q, args = q + " AND cookie = ?", args + [_i64(cookie)]
        cur = self.db.execute(q + " ORDER BY t, rowid", args)
        names = [d[0] for d in cur.description]
        out = []
        for row in cur:
            d = dict(zip(names, row))
            d["cookie"] &= (1 << 64) - 1
            out.append(d)
        return out


def _by_key(rows) -> dict:
    """``{key: (times, values)}`` from ``(t, key, n)`` rows: every series on
    the times of all of them, 0 where a key has no row.

    >>> _by_key([(1.0, "a", 2), (2.0, "b", 3)])["b"]
    (array([1., 2.]), array([0., 3.]))
    """
    rows = list(rows)
    times = sorted({r[0] for r in rows})
    pos = {t: i for i, t in enumerate(times)}
    out: dict = {}
    for t, key, n in rows:
        out.setdefault(key, np.zeros(len(times)))[pos[t]] = n
    ts = np.array(times)
    return {k: (ts, v) for k, v in out.items()}


def _i64(cookie: int) -> int:
    """SQLite integers are signed 64-bit: store the u64 cookie's bits."""
    return cookie - (1 << 64) if cookie >= 1 << 63 else cookie

