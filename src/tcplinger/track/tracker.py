"""Identity over time: which socket is which across snapshots, since when
it is in its state, and the transitions it went through.

Sockets are keyed by ``(netns inode, sock_diag cookie)`` and, because a
cookie says nothing once the kernel reuses a slot of another namespace or
a test replays data, also checked against their 4-tuple: a row whose
cookie is known but whose ports or addresses differ is a new socket.

Per namespace the tracker holds numpy columns sorted by cookie, so one
observation of 100k sockets is a few ``searchsorted`` calls, not 100k
dict look-ups.

Where "since" comes from, most trusted first (DESIGN.md):

* ``trace``: a ``sock:inet_sock_set_state`` event for the socket's
  4-tuple whose new state is the state the socket is seen in. Events
  carry no namespace (KERNEL-NOTES); a 4-tuple seen in two namespaces at
  once is ambiguous and its events are not used.
* ``first_seen``: the sample that first saw the socket in this state.
  A socket that changed (or appeared) between two samples entered its
  state at most one interval before; one already present at the first
  sample of its namespace was there before watching began and only gets
  "at least" (never an invented age).

:func:`merge_ages` then ranks these against the timer of timewait-type
sockets and tcp_info's last-receive bound.

A worked example: a socket is seen ESTABLISHED at the first sample (t=0),
and CLOSE_WAIT at t=10, with a trace event at t=4.5.

>>> import numpy as np
>>> from tcplinger.model.table import SocketTable, empty
>>> rows = empty(1); rows["cookie"] = 7; rows["state"] = 1; rows["sport"] = 80
>>> rows["dport"] = 5000; rows["family"] = 2
>>> rows["saddr"] = rows["daddr"] = np.void(bytes([127, 0, 0, 1]) + bytes(12))
>>> tr = Tracker()
>>> tr.observe([(1, SocketTable(rows.copy()))], now=0.0)
[]
>>> tr.add_event(StateEvent(4.5, 2, ("127.0.0.1", 80), ("127.0.0.1", 5000), 1, 8))
>>> rows["state"] = 8
>>> [(t.old, t.new, t.t, t.source.value, t.stayed, t.stayed_at_least)
...  for t in tr.observe([(1, SocketTable(rows))], now=10.0)]
[(1, 8, 4.5, 'trace', 4.5, True)]
>>> a = tr.ages(1, SocketTable(rows), now=12.0)
>>> float(a.seconds[0]), bool(a.at_least[0]), a.source_of(0).value
(7.5, False, 'trace')
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from ..model.socket import AgeSource, format_address
from ..model.table import SocketTable

#: Age source codes in arrays: index -> AgeSource. The first three are
#: the order export/jsonout.py used before tracked ages existed.
SOURCE_CODES = (AgeSource.UNKNOWN, AgeSource.TIMER, AgeSource.LAST_RECV,
                AgeSource.TRACE, AgeSource.FIRST_SEEN)
CODE = {s: i for i, s in enumerate(SOURCE_CODES)}
UNKNOWN, TIMER, LAST_RECV, TRACE, FIRST_SEEN = range(5)

#: The kernel's TCP_CLOSE: what a destroyed socket's last event enters.
CLOSE = 7


@dataclass(frozen=True)
class StateEvent:
    """One ``inet_sock_set_state`` (or ``tcp_destroy_sock``: ``new`` CLOSE,
    ``cookie`` set) event, in the tracker's clock (time.monotonic())."""

    t: float
    family: int
    local: tuple[str, int]
    remote: tuple[str, int]
    old: int | None
    new: int | None
    cookie: int | None = None

    @property
    def ports(self) -> int:
        return (self.local[1] << 16) | self.remote[1]


@dataclass(frozen=True)
class Transition:
    """A socket moved from ``old`` to ``new`` at ``t`` (None: it appeared /
    went away). ``stayed`` is how long it was in ``old`` (None: unknown),
    a lower bound when ``stayed_at_least``."""

    netns: int
    cookie: int
    old: int | None
    new: int | None
    t: float
    source: AgeSource
    stayed: float | None
    stayed_at_least: bool
    family: int = 2
    local: tuple[str, int] = ("", 0)
    remote: tuple[str, int] = ("", 0)
    #: a trace event read after the sample that saw the change by sampling:
    #: this transition replaces the sampled one (same cookie and ``new``)
    corrects: bool = False


@dataclass
class TrackedAges:
    """Per row: seconds in state (NaN unknown), lower bound or not, and the
    source as a code of :data:`SOURCE_CODES`."""

    seconds: np.ndarray
    at_least: np.ndarray
    source: np.ndarray

    def __len__(self) -> int:
        return len(self.seconds)

    def source_of(self, i: int) -> AgeSource:
        return SOURCE_CODES[int(self.source[i])]

    def select(self, idx) -> "TrackedAges":
        return TrackedAges(self.seconds[idx], self.at_least[idx], self.source[idx])

    def as_tuple(self):
        """The form export/jsonout.py accepts: (seconds, at_least, codes)."""
        return (self.seconds, self.at_least, self.source)

    def to_ages(self) -> list:
        from ..model.socket import UNKNOWN_AGE, Age
        out = []
        for s, b, c in zip(self.seconds.tolist(), self.at_least.tolist(), self.source.tolist()):
            out.append(UNKNOWN_AGE if s != s or c == UNKNOWN
                       else Age(s, bool(b), SOURCE_CODES[c]))
        return out


def merge_ages(now: float, since: np.ndarray, since_code: np.ndarray, since_at_least: np.ndarray,
               timer: np.ndarray, bound: np.ndarray) -> TrackedAges:
    """Rank the age sources per row: trace, timer, first seen, last receive.

    ``since`` is the tracker's entry time (NaN: untracked) with its code
    (TRACE or FIRST_SEEN) and whether it is only a lower bound; ``timer``
    and ``bound`` are track.age.age_arrays(). A first-seen lower bound
    yields to a larger last-receive bound (both are "at least"; the larger
    one is closer to the truth).

    >>> nan = float("nan")
    >>> a = merge_ages(100.0, np.array([90.0, 90.0, 90.0, 99.0, nan, nan]),
    ...                np.array([TRACE, FIRST_SEEN, FIRST_SEEN, FIRST_SEEN, 0, 0]),
    ...                np.array([False, False, True, True, False, False]),
    ...                np.array([30.0, 30.0, nan, nan, nan, nan]),
    ...                np.array([nan, nan, 5.0, 20.0, 3.0, nan]))
    >>> a.seconds.tolist(), a.at_least.tolist()
    ([10.0, 30.0, 10.0, 20.0, 3.0, nan], [False, False, True, True, True, False])
    >>> [s.value for s in map(a.source_of, range(6))]
    ['trace', 'timer', 'first_seen', 'last_recv', 'last_recv', 'unknown']
    """
    n = len(since)
    seconds = np.full(n, np.nan)
    at_least = np.zeros(n, bool)
    code = np.zeros(n, np.int8)
    tracked = ~np.isnan(since)
    with np.errstate(invalid="ignore"):
        elapsed = np.maximum(now - since, 0.0)
    # lowest rank first, higher ranks overwrite
    b = ~np.isnan(bound)
    seconds[b], at_least[b], code[b] = bound[b], True, LAST_RECV
    fs = tracked & (since_code == FIRST_SEEN)
    fs_exact = fs & ~since_at_least
    with np.errstate(invalid="ignore"):
        fs_bound = fs & since_at_least & ~(b & (bound > elapsed))
    for m, low in ((fs_exact, False), (fs_bound, True)):
        seconds[m], at_least[m], code[m] = elapsed[m], low, FIRST_SEEN
    t = ~np.isnan(timer)
    seconds[t], at_least[t], code[t] = timer[t], False, TIMER
    tr = tracked & (since_code == TRACE)
    seconds[tr], at_least[tr], code[tr] = elapsed[tr], False, TRACE
    return TrackedAges(seconds, at_least, code)


_COLS = ("cookie", "state", "family", "sport", "dport", "saddr", "daddr")


def tuple_hash(rows) -> np.ndarray:
    """A 64-bit mix of family, ports and addresses per row: comparing it is
    ~10x cheaper than comparing the 16-byte address fields (a collision
    only makes a reused cookie look like the same socket, and needs the
    same cookie too)."""
    n = len(rows)
    if n == 0:
        return np.zeros(0, np.uint64)
    s = np.ascontiguousarray(rows["saddr"]).view(np.uint64).reshape(n, 2)
    d = np.ascontiguousarray(rows["daddr"]).view(np.uint64).reshape(n, 2)
    with np.errstate(over="ignore"):
        h = (s[:, 0] * np.uint64(0x9E3779B97F4A7C15)) ^ (s[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F))
        h ^= (d[:, 0] * np.uint64(0x165667B19E3779F9)) ^ (d[:, 1] * np.uint64(0x27D4EB2F165667C5))
        h ^= ((rows["sport"].astype(np.uint64) << np.uint64(16))
              | rows["dport"].astype(np.uint64)
              | (rows["family"].astype(np.uint64) << np.uint64(32))) * np.uint64(0xFF51AFD7ED558CCD)
    return h


@dataclass
class _Namespace:
    """Tracked sockets of one namespace, sorted by cookie."""

    cols: np.ndarray  # SOCKET_DTYPE subset (_COLS)
    hash: np.ndarray  # tuple_hash(cols)
    since: np.ndarray  # float64, tracker clock
    code: np.ndarray  # int8: TRACE or FIRST_SEEN
    at_least: np.ndarray  # bool
    first_seen: np.ndarray  # float64
    missed: np.ndarray  # int16: consecutive samples without the socket
    prev_since: np.ndarray  # float64: since of the state before (late trace events)
    prev_at_least: np.ndarray  # bool
    last_obs: float = 0.0
    #: bool per state number: the states the last observation dumped (None: all)
    last_mask: np.ndarray | None = None

    @property
    def cookies(self) -> np.ndarray:
        c = self.__dict__.get("_cookies")
        if c is None:
            c = self.__dict__["_cookies"] = np.ascontiguousarray(self.cols["cookie"])
        return c


@dataclass
class Tracker:
    """Feed it snapshots (:meth:`observe`) and trace events
    (:meth:`add_event`); ask it for ages (:meth:`ages`).

    ``miss_limit``: samples a socket may be missing before it counts as
    gone (1: at once). A namespace absent from an observation (not read
    this time) keeps its sockets untouched. ``event_horizon``: seconds an
    unmatched trace event is kept waiting for a sample to claim it.
    """

    miss_limit: int = 1
    event_horizon: float = 30.0
    namespaces: dict = field(default_factory=dict)
    events: dict = field(default_factory=lambda: defaultdict(list))  # ports -> [StateEvent]
    destroyed: dict = field(default_factory=dict)  # cookie -> StateEvent (tcp_destroy_sock)

    # ---- input ----------------------------------------------------------
    def add_event(self, ev: StateEvent) -> None:
        if ev.cookie is not None and ev.new == CLOSE and ev.old is None:
            self.destroyed[ev.cookie] = ev
            return
        self.events[ev.ports].append(ev)

    def add_events(self, evs: Iterable[StateEvent]) -> None:
        for ev in evs:
            self.add_event(ev)

    def observe(self, parts: Sequence[tuple[int, SocketTable]], now: float,
                dumped_states=None) -> list[Transition]:
        """One snapshot: ``(netns inode, table)`` per namespace read, taken
        at ``now`` (tracker clock). Returns the transitions seen, in time
        order.

        ``dumped_states``: the states the snapshot asked the kernel for
        (None: all, a full dump). A known socket in a state that was not
        dumped and missing from the table is kept as it was, without
        counting a miss (it was not looked for); a socket first seen in a
        state the previous observation did not dump may have entered it any
        time since the last full dump, so its age is only "at least".
        """
        mask = None if dumped_states is None else _state_bits(dumped_states)
        ambiguous = self._ambiguous_ports(parts)
        out: list[Transition] = []
        for ns, table in parts:
            out.extend(self._observe_ns(ns, table, now, ambiguous, mask))
        self._prune_events(now)
        out.sort(key=lambda tr: tr.t)
        return out

    # ---- output ---------------------------------------------------------
    def since_arrays(self, ns: int, table: SocketTable):
        """(since, code, at_least) aligned with ``table``'s rows; NaN since
        where the tracker does not know the socket in that state."""
        n = len(table)
        since = np.full(n, np.nan)
        code = np.zeros(n, np.int8)
        at_least = np.zeros(n, bool)
        st = self.namespaces.get(ns)
        if st is None or n == 0 or len(st.cols) == 0:
            return since, code, at_least
        idx, hit = _match(st, table.rows)
        hit &= st.cols["state"][idx] == table.rows["state"]
        since[hit] = st.since[idx[hit]]
        code[hit] = st.code[idx[hit]]
        at_least[hit] = st.at_least[idx[hit]]
        return since, code, at_least

    def ages(self, ns: int, table: SocketTable, now: float, timer=None, bound=None) -> TrackedAges:
        """Ages of ``table``'s rows, every source merged (:func:`merge_ages`)."""
        n = len(table)
        timer = np.full(n, np.nan) if timer is None else timer
        bound = np.full(n, np.nan) if bound is None else bound
        since, code, at_least = self.since_arrays(ns, table)
        return merge_ages(now, since, code, at_least, timer, bound)

    def forget(self, ns: int) -> None:
        """A namespace that no longer exists: drop its sockets."""
        self.namespaces.pop(ns, None)

    def live(self, ns: int):
        """The tracked columns of one namespace (for the store)."""
        return self.namespaces.get(ns)

    # ---- internals ------------------------------------------------------
    def _ambiguous_ports(self, parts) -> set[int]:
        """Port pairs with pending events seen in more than one namespace."""
        if not self.events:
            return set()
        wanted = np.fromiter(self.events.keys(), np.uint32, len(self.events))
        seen: dict[int, int] = {}
        for _, table in parts:
            keys = _port_keys(table.rows)
            for k in np.unique(keys[np.isin(keys, wanted)]).tolist():
                seen[k] = seen.get(k, 0) + 1
        return {k for k, c in seen.items() if c > 1}

    def _observe_ns(self, ns: int, table: SocketTable, now: float, ambiguous,
                    mask: np.ndarray | None = None) -> list[Transition]:
        rows = table.rows
        order = np.argsort(rows["cookie"], kind="stable")
        cur = np.empty(len(rows), [(c, rows.dtype[c]) for c in _COLS])
        for c in _COLS:
            cur[c] = rows[c][order]
        cur_hash = tuple_hash(cur)
        old = self.namespaces.get(ns)
        fresh = old is None  # first look at this namespace: stuck sockets get "at least"
        idx = hit = None
        n = len(cur)
        since = np.full(n, now)
        code = np.full(n, FIRST_SEEN, np.int8)
        at_least = np.full(n, fresh)
        first_seen = np.full(n, now)
        prev_since = np.full(n, np.nan)
        prev_low = np.zeros(n, bool)
        late = np.zeros(n, bool)  # a sampled change a late trace event may correct
        out: list[Transition] = []
        prev_t = old.last_obs if old is not None else now
        if old is not None and old.last_mask is not None:
            # New rows in a state the previous observation did not dump were
            # only looked for at the last full dump: they entered it at some
            # time since then, maybe more than one interval ago. (Rows it
            # knew are overwritten below: a change it did not see happened
            # after it.)
            at_least |= ~old.last_mask[cur["state"]]
        if old is not None and len(old.cols):
            idx, hit = _match(old, cur, cur_hash)
            first_seen[hit] = old.first_seen[idx[hit]]
            same = hit & (old.cols["state"][idx] == cur["state"])
            since[same] = old.since[idx[same]]
            code[same] = old.code[idx[same]]
            at_least[same] = old.at_least[idx[same]]
            prev_since[same] = old.prev_since[idx[same]]
            prev_low[same] = old.prev_at_least[idx[same]]
            late[same] = old.code[idx[same]] == FIRST_SEEN
            diff = hit & ~same
            at_least[diff] = False
            prev_since[diff] = old.since[idx[diff]]
            prev_low[diff] = old.at_least[idx[diff]]
            changed = np.flatnonzero(diff)
            for i in changed.tolist():
                j = int(idx[i])
                out.append(self._sampled(ns, old, j, int(cur["state"][i]), now))
            gone = np.ones(len(old.cols), bool)
            gone[idx[hit]] = False
            unseen = _unseen(old, mask)
            keep_missing = gone & ((old.missed + 1 < self.miss_limit) | unseen)
            for j in np.flatnonzero(gone & ~keep_missing).tolist():
                out.extend(self._gone(ns, old, j, now, prev_t))
        # trace events for rows whose port pair has some
        if self.events:
            keys = _port_keys(cur)
            wanted = np.fromiter(self.events.keys(), np.uint32, len(self.events))
            for i in np.flatnonzero(np.isin(keys, wanted)).tolist():
                k = int(keys[i])
                if k in ambiguous:
                    continue
                evs = [e for e in self.events[k] if e.t <= now and _same_tuple(e, cur[i])]
                if not evs:
                    continue
                last = evs[-1]
                if last.new != int(cur["state"][i]):
                    continue
                if code[i] == TRACE and since[i] >= last.t:
                    continue  # already used
                cookie = int(cur["cookie"][i])
                # replace a sampled transition of this sample by the traced chain
                out = [t for t in out if not (t.netns == ns and t.cookie == cookie
                                              and t.source == AgeSource.FIRST_SEEN)]
                corrects = bool(late[i])  # the sampled change was written last time
                if corrects or not np.isnan(prev_since[i]):
                    p_since, p_low = float(prev_since[i]), bool(prev_low[i])
                else:
                    p_since, p_low = float(since[i]), bool(at_least[i])
                chain_from = since[i] if code[i] == TRACE else -np.inf
                if corrects:
                    evs = evs[-1:]  # only the change the sample saw
                for e in evs:
                    if e.t <= chain_from:
                        continue
                    stayed = None if np.isnan(p_since) else max(e.t - p_since, 0.0)
                    out.append(Transition(ns, cookie, e.old, e.new, e.t, AgeSource.TRACE,
                                          stayed, p_low, int(cur["family"][i]), e.local,
                                          e.remote, corrects))
                    p_since, p_low = e.t, False
                since[i], code[i], at_least[i] = last.t, TRACE, False
        # appearances after the first look are transitions from nothing
        if not fresh:
            known = hit if hit is not None else np.zeros(n, bool)
            traced = {(t.cookie) for t in out if t.source == AgeSource.TRACE}
            for i in np.flatnonzero(~known).tolist():
                c = int(cur["cookie"][i])
                if c in traced:
                    continue
                out.append(Transition(ns, c, None, int(cur["state"][i]), now,
                                      AgeSource.FIRST_SEEN, None, False, int(cur["family"][i]),
                                      *_endpoints(cur[i])))
        missed = np.zeros(n, np.int16)
        st = _Namespace(cur, cur_hash, since, code, at_least, first_seen, missed, prev_since,
                        prev_low, now, mask)
        if hit is not None:
            # sockets missing for fewer than miss_limit samples stay, unchanged;
            # so do those in a state this sample did not dump (no miss counted)
            gone = np.ones(len(old.cols), bool)
            gone[idx[hit]] = False
            unseen = _unseen(old, mask)
            keep = gone & ((old.missed + 1 < self.miss_limit) | unseen)
            if keep.any():
                st = _concat(st, old, keep, unseen[keep])
        self.namespaces[ns] = st
        return out

    def _sampled(self, ns, old: _Namespace, j: int, new: int, now: float) -> Transition:
        row = old.cols[j]
        return Transition(ns, int(row["cookie"]), int(row["state"]), new, now, AgeSource.FIRST_SEEN,
                          max(now - float(old.since[j]), 0.0), bool(old.at_least[j]),
                          int(row["family"]), *_endpoints(row))

    def _gone(self, ns, old: _Namespace, j: int, now: float, prev_t: float) -> list[Transition]:
        row = old.cols[j]
        cookie = int(row["cookie"])
        since, low = float(old.since[j]), bool(old.at_least[j])
        # events after it entered its last known state are its own (a new
        # socket on the same 4-tuple within seconds is not plausible)
        evs = [e for e in self.events.get(_port_key(row), ())
               if max(since, prev_t - self.event_horizon) < e.t <= now and _same_tuple(e, row)]
        out = []
        for e in evs:
            if e.t <= since and int(old.code[j]) == TRACE:
                continue
            out.append(Transition(ns, cookie, e.old, e.new, e.t, AgeSource.TRACE,
                                  max(e.t - since, 0.0), low, int(row["family"]), e.local, e.remote))
            since, low = e.t, False
        end = self.destroyed.pop(cookie, None)
        if not out or out[-1].new != CLOSE:
            if end is not None:
                out.append(Transition(ns, cookie, int(row["state"]) if not out else out[-1].new,
                                      None, end.t, AgeSource.TRACE, max(end.t - since, 0.0), low,
                                      int(row["family"]), *_endpoints(row)))
            else:
                out.append(Transition(ns, cookie, int(row["state"]) if not out else out[-1].new,
                                      None, now, AgeSource.FIRST_SEEN, max(now - since, 0.0),
                                      low, int(row["family"]), *_endpoints(row)))
        return out

    def _prune_events(self, now: float) -> None:
        limit = now - self.event_horizon
        for k in list(self.events):
            kept = [e for e in self.events[k] if e.t > limit]
            if kept:
                self.events[k] = kept
            else:
                del self.events[k]
        for c in [c for c, e in self.destroyed.items() if e.t <= limit]:
            del self.destroyed[c]


def _port_keys(rows) -> np.ndarray:
    return (rows["sport"].astype(np.uint32) << 16) | rows["dport"].astype(np.uint32)


def _port_key(row) -> int:
    return (int(row["sport"]) << 16) | int(row["dport"])


def _endpoints(row):
    fam = int(row["family"])
    return ((format_address(fam, row["saddr"].tobytes()), int(row["sport"])),
            (format_address(fam, row["daddr"].tobytes()), int(row["dport"])))


def _same_tuple(ev: StateEvent, row) -> bool:
    if ev.family != int(row["family"]):
        return False
    loc, rem = _endpoints(row)
    return ev.local == loc and ev.remote == rem


def _match(known: "_Namespace", rows: np.ndarray, row_hash: np.ndarray | None = None):
    """For each row: index into ``known`` (sorted by cookie) and whether it
    is the same socket (cookie and 4-tuple equal: a reused cookie with
    another 4-tuple is another socket)."""
    cookies = known.cookies
    rc = rows["cookie"]
    idx = np.searchsorted(cookies, rc)
    idx = np.minimum(idx, max(len(cookies) - 1, 0))
    if len(cookies) == 0:
        return idx, np.zeros(len(rows), bool)
    if row_hash is None:
        row_hash = tuple_hash(rows)
    hit = (cookies[idx] == rc) & (known.hash[idx] == row_hash)
    return idx, hit


def _state_bits(states) -> np.ndarray:
    """A bool per state number (0..255): True for the states in ``states``.

    >>> np.flatnonzero(_state_bits([4, 8])).tolist()
    [4, 8]
    """
    bits = np.zeros(256, bool)
    bits[[int(s) for s in states]] = True
    return bits


def _unseen(old: "_Namespace", mask: np.ndarray | None) -> np.ndarray:
    """Known sockets this observation could not see: their state was not
    dumped, and no dump of their state missed them yet (one that did is
    gone or moved to a dumped state, where the table would show it)."""
    if mask is None:
        return np.zeros(len(old.cols), bool)
    return ~mask[old.cols["state"]] & (old.missed == 0)


def _concat(st: _Namespace, old: _Namespace, keep: np.ndarray,
            unseen: np.ndarray | None = None) -> _Namespace:
    missed = old.missed[keep] + 1
    if unseen is not None:
        missed[unseen] -= 1  # not looked for: not a miss
    # Both sides are sorted by cookie: merge by position instead of sorting
    # the concatenation (70k ESTABLISHED rows kept every sample between
    # full dumps: 18 ms of argsort and gathers, 100k-socket bench). Ties
    # put the current row first, as a stable sort of [st, old] would.
    kept = np.flatnonzero(keep)
    n_new, n_kept = len(st.cols), len(kept)
    at = np.searchsorted(st.cookies, old.cookies[kept], side="right") + np.arange(n_kept)
    mine = np.ones(n_new + n_kept, bool)
    mine[at] = False

    def merge(a, b):
        out = np.empty(n_new + n_kept, a.dtype)
        out[mine] = a
        out[at] = b
        return out
    return _Namespace(merge(st.cols, old.cols[kept]), merge(st.hash, old.hash[kept]),
                      merge(st.since, old.since[kept]), merge(st.code, old.code[kept]),
                      merge(st.at_least, old.at_least[kept]),
                      merge(st.first_seen, old.first_seen[kept]), merge(st.missed, missed),
                      merge(st.prev_since, old.prev_since[kept]),
                      merge(st.prev_at_least, old.prev_at_least[kept]), st.last_obs,
                      st.last_mask)


def event_from_trace(ev) -> StateEvent | None:
    """A collect.tracefs.TraceEvent (duck-typed: track stays pure) as a
    StateEvent; None for events that are neither kind."""
    if ev.event == "inet_sock_set_state":
        return StateEvent(ev.t, ev.family or 2, ev.local, ev.remote, ev.oldstate, ev.newstate)
    if ev.event == "tcp_destroy_sock":
        return StateEvent(ev.t, ev.family or 2, ev.local, ev.remote, None, CLOSE, ev.cookie)
    return None
