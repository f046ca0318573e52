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

from ..model.socket import AgeSource
from ..model.table import SocketTable
from .events import (CLOSE, FIRST_SEEN, TRACE, StateEvent, TrackedAges, Transition, bound_codes,
                     merge_ages)
from .identity import (DumpOrders, Namespace, by_tuple, concat, endpoints, match, port_key,
                       port_keys, socket_tuple, sorted_columns, state_bits, tuple_hash,
                       unchanged, unseen_rows, update_in_place)

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
    orders: DumpOrders = field(default_factory=DumpOrders)

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
        mask = None if dumped_states is None else state_bits(dumped_states)
        ambiguous = self._ambiguous_ports(parts)
        out: list[Transition] = []
        for ns, table in parts:
            out.extend(self._observe_ns(ns, table, now, ambiguous, mask))
        self._prune_events(now)
        out.sort(key=lambda tr: tr.t)
        return out

    def wanted_ports(self, parts: Sequence[tuple[int, SocketTable]]) -> np.ndarray:
        """The port pairs :meth:`observe` of ``parts`` looks events up by:
        those of the rows it is given and of the sockets it holds (a gone
        one's last events). Events of other pairs can wait unparsed
        (tracelines.PendingEvents)."""
        keys = [port_keys(t.rows) for _, t in parts]
        keys += [port_keys(st.cols) for st in self.namespaces.values()]
        return np.concatenate(keys) if keys else np.empty(0, np.uint32)

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
        idx, hit = match(st, table.rows)
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
        return merge_ages(now, since, code, at_least, timer, bound, bound_codes(table))

    def forget(self, ns: int) -> None:
        """A namespace that no longer exists: drop its sockets."""
        self.namespaces.pop(ns, None)
        self.orders.forget(ns)

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
            keys = port_keys(table.rows)
            for k in np.unique(keys[np.isin(keys, wanted)]).tolist():
                seen[k] = seen.get(k, 0) + 1
        return {k for k, c in seen.items() if c > 1}

    def _observe_ns(self, ns: int, table: SocketTable, now: float, ambiguous,
                    mask: np.ndarray | None = None) -> list[Transition]:
        cur = sorted_columns(table.rows, self.orders.order(ns, table.rows))
        cur_hash = tuple_hash(cur)
        old = self.namespaces.get(ns)
        if old is not None and mask is not None and not self.events:
            same = self._unchanged(old, cur, cur_hash, mask, now)
            if same is not None:  # a steady host between full dumps
                self.namespaces[ns] = same
                return []
        fresh = old is None  # first look at this namespace: stuck sockets get "at least"
        rows = _RowAges.start(len(cur), now, fresh)
        if old is not None and old.last_mask is not None:
            # New rows in a state the previous observation did not dump were
            # only looked for at the last full dump: they entered it at some
            # time since then, maybe more than one interval ago. (Rows it
            # knew are overwritten below: a change it did not see happened
            # after it.)
            rows.at_least |= ~old.last_mask[cur["state"]]
        idx = hit = kept = None
        out: list[Transition] = []
        if old is not None and len(old.cols):
            idx, hit = match(old, cur, cur_hash)
            kept = self._kept(old, idx, hit, mask)
            out += self._carry_over(ns, old, cur, idx, hit, rows, now, kept)
        if self.events:
            out = self._traced(ns, cur, rows, ambiguous, now, out)
        if not fresh:  # appearances after the first look are transitions from nothing
            out += _appearances(ns, cur, hit, out, now)
        st = Namespace(cur, cur_hash, rows.since, rows.code, rows.at_least, rows.first_seen,
                       np.zeros(len(cur), np.int16), rows.prev_since, rows.prev_low, now, mask)
        if hit is not None:
            st = self._merge_kept(st, old, idx, hit, kept)
        self.namespaces[ns] = st
        return out

    def _unchanged(self, old, cur, cur_hash, mask, now) -> Namespace | None:
        return unchanged(old, cur, cur_hash, mask, now)

    def _merge_kept(self, st: Namespace, old: Namespace, idx, hit, kept) -> Namespace:
        """``st`` (the sample's rows) with the known sockets that stay:
        those missing for fewer than miss_limit samples, unchanged, and
        those in a state this sample did not dump (no miss counted). In
        ``old``'s own arrays when the sample's rows are its rows (between
        full dumps on a steady host), else merged."""
        gone, keep, unseen = kept
        if not keep.any():
            return st
        same = update_in_place(st, old, idx, hit, gone, keep, unseen)
        return same if same is not None else concat(st, old, keep, unseen[keep])

    def _kept(self, old: Namespace, idx, hit, mask):
        """Known sockets missing from the sample (gone), those of them that
        stay tracked (keep), and those the sample could not see (unseen)."""
        gone = np.ones(len(old.cols), bool)
        gone[idx[hit]] = False
        unseen = unseen_rows(old, mask)
        return gone, gone & ((old.missed + 1 < self.miss_limit) | unseen), unseen

    def _carry_over(self, ns, old: Namespace, cur, idx, hit, rows: "_RowAges", now: float,
                    kept) -> list[Transition]:
        """What the previous observation knew of the rows it sees again;
        the transitions of those that changed state and of those gone."""
        rows.first_seen[hit] = old.first_seen[idx[hit]]
        same = hit & (old.cols["state"][idx] == cur["state"])
        rows.since[same] = old.since[idx[same]]
        rows.code[same] = old.code[idx[same]]
        rows.at_least[same] = old.at_least[idx[same]]
        rows.prev_since[same] = old.prev_since[idx[same]]
        rows.prev_low[same] = old.prev_at_least[idx[same]]
        rows.late[same] = old.code[idx[same]] == FIRST_SEEN
        diff = hit & ~same
        rows.at_least[diff] = False
        rows.prev_since[diff] = old.since[idx[diff]]
        rows.prev_low[diff] = old.at_least[idx[diff]]
        out = [self._sampled(ns, old, int(idx[i]), int(cur["state"][i]), now)
               for i in np.flatnonzero(diff).tolist()]
        gone, keep, _ = kept  # self._kept()
        for j in np.flatnonzero(gone & ~keep).tolist():
            out.extend(self._gone(ns, old, j, now, old.last_obs))
        return out

    def _traced(self, ns, cur, rows: "_RowAges", ambiguous, now: float,
                out: list[Transition]) -> list[Transition]:
        """Trace events for rows whose port pair has some: the row's entry
        time, and the traced chain of transitions in place of a sampled one."""
        keys = port_keys(cur)
        # a row can only take events whose pair has one entering the row's
        # state (its tuple's last event must): (pair, new state) in numpy
        # first, so rows in a state no event entered (ESTABLISHED: not
        # traced) cost nothing
        entered = np.fromiter({(k << 4) | (e.new & 15) for k, evs in self.events.items()
                               for e in evs if e.new is not None and e.t <= now}, np.uint64)
        combo = (keys.astype(np.uint64) << np.uint64(4)) | (cur["state"].astype(np.uint64) & 15)
        groups: dict = {}  # port pair -> by_tuple() of its events
        traced: set[int] = set()
        chains: list[Transition] = []
        for i in np.flatnonzero(np.isin(combo, entered)).tolist():
            k = int(keys[i])
            if k in ambiguous:
                continue
            group = groups.get(k)
            if group is None:
                group = groups[k] = by_tuple(self.events[k], now)
            evs = group.get(socket_tuple(cur[i]))
            if not evs:
                continue
            last = evs[-1]
            if last.new != int(cur["state"][i]):
                continue
            if rows.code[i] == TRACE and rows.since[i] >= last.t:
                continue  # already used
            cookie = int(cur["cookie"][i])
            traced.add(cookie)
            chains += _chain(ns, cookie, int(cur["family"][i]), evs, rows, i)
            rows.since[i], rows.code[i], rows.at_least[i] = last.t, TRACE, False
        if not traced:
            return out
        # the traced chains replace the sampled transitions of their sockets
        # (one pass: filtering ``out`` again per socket was quadratic)
        return [t for t in out if not (t.netns == ns and t.cookie in traced
                                       and t.source == AgeSource.FIRST_SEEN)] + chains

    def _sampled(self, ns, old: Namespace, j: int, new: int, now: float) -> Transition:
        row = old.cols[j]
        return Transition(ns, int(row["cookie"]), int(row["state"]), new, now, AgeSource.FIRST_SEEN,
                          max(now - float(old.since[j]), 0.0), bool(old.at_least[j]),
                          int(row["family"]), *endpoints(row))

    def _gone(self, ns, old: Namespace, j: int, now: float, prev_t: float) -> list[Transition]:
        row = old.cols[j]
        cookie = int(row["cookie"])
        since, low = float(old.since[j]), bool(old.at_least[j])
        # events after it entered its last known state are its own (a new
        # socket on the same 4-tuple within seconds is not plausible)
        tup = socket_tuple(row)
        evs = [e for e in self.events.get(port_key(row), ())
               if max(since, prev_t - self.event_horizon) < e.t <= now
               and (e.family, e.local, e.remote) == tup]
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
                                      int(row["family"]), *endpoints(row)))
            else:
                out.append(Transition(ns, cookie, int(row["state"]) if not out else out[-1].new,
                                      None, now, AgeSource.FIRST_SEEN, max(now - since, 0.0),
                                      low, int(row["family"]), *endpoints(row)))
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


@dataclass
class _RowAges:
    """Per row of one sample (sorted by cookie), what the tracker will keep:
    entry time, its source code and lower-bound flag, first seen, the entry
    time of the state before, and whether a sampled change of the last
    observation may be corrected by a late trace event."""

    since: np.ndarray
    code: np.ndarray
    at_least: np.ndarray
    first_seen: np.ndarray
    prev_since: np.ndarray
    prev_low: np.ndarray
    late: np.ndarray

    @classmethod
    def start(cls, n: int, now: float, fresh: bool) -> "_RowAges":
        """Every row first seen now (only "at least" on a first look)."""
        return cls(np.full(n, now), np.full(n, FIRST_SEEN, np.int8), np.full(n, fresh),
                   np.full(n, now), np.full(n, np.nan), np.zeros(n, bool), np.zeros(n, bool))


def _chain(ns: int, cookie: int, family: int, evs: list, rows: _RowAges,
           i: int) -> list[Transition]:
    """The traced transitions of row ``i`` (events of its 4-tuple, in order)."""
    corrects = bool(rows.late[i])  # the sampled change was written last time
    if corrects or not np.isnan(rows.prev_since[i]):
        p_since, p_low = float(rows.prev_since[i]), bool(rows.prev_low[i])
    else:
        p_since, p_low = float(rows.since[i]), bool(rows.at_least[i])
    chain_from = rows.since[i] if rows.code[i] == TRACE else -np.inf
    if corrects:
        evs = evs[-1:]  # only the change the sample saw
    out = []
    for e in evs:
        if e.t <= chain_from:
            continue
        stayed = None if np.isnan(p_since) else max(e.t - p_since, 0.0)
        out.append(Transition(ns, cookie, e.old, e.new, e.t, AgeSource.TRACE, stayed, p_low,
                              family, e.local, e.remote, corrects))
        p_since, p_low = e.t, False
    return out


def _appearances(ns: int, cur, hit, out: list[Transition], now: float) -> list[Transition]:
    """Rows the previous observation did not know, and no trace explained:
    transitions from nothing, first seen now."""
    known = hit if hit is not None else np.zeros(len(cur), bool)
    traced = {t.cookie for t in out if t.source == AgeSource.TRACE}
    res = []
    for i in np.flatnonzero(~known).tolist():
        c = int(cur["cookie"][i])
        if c not in traced:
            res.append(Transition(ns, c, None, int(cur["state"][i]), now, AgeSource.FIRST_SEEN,
                                  None, False, int(cur["family"][i]), *endpoints(cur[i])))
    return res
