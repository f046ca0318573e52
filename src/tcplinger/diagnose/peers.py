"""The other end of a connection, in any namespace being looked at.

A :class:`PeerIndex` is built once per diagnosis (``World.peers``): per
namespace, the hashed connection keys of its connected sockets, sorted.
A socket's other end is the row whose key is the socket's key with local
and remote swapped, checked column by column; loopback connections match
only inside their own namespace (each namespace has its own 127.0.0.1).

From :data:`MERGED_PEERS_MIN` namespaces on, every namespace's index is
merged into one, and the other ends of every teardown socket of every
namespace are found in one columnar pass, the first time any is asked
for: a node with 150 pods asked 300 times (a close-wait-leak and a
half-closed-fin-wait-2 finding per pod), each a dozen small numpy
operations (0.53 s of a 2.2 s diagnosis under cProfile). Each way gives
the same answer, row for row (tests/unit/test_peers.py).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from ..model.states import OWNABLE, TcpState
from ..model.table import member

#: Established sockets in scope up to which they are candidates for "the
#: other end" (hashing and sorting a million keys costs ~0.3 s here).
PEER_ESTABLISHED_MAX = 200_000
#: From this many namespaces on, one index of them all is searched instead
#: of each namespace's: 150 pods made 300 lookups of 150 searches each
#: (1.8 s of a 3 s scrape).
MERGED_PEERS_MIN = 8
#: Not yet looked up (in :attr:`PeerIndex._batched`); -1 is "not found".
_UNASKED = -2


def address_words(column: np.ndarray) -> np.ndarray:
    """A ``V16`` address column as an (n, 2) uint64 array, for grouping."""
    return np.ascontiguousarray(column).view(np.uint64).reshape(-1, 2)


def mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, vectorised (uint64 arithmetic wraps); a new
    array, transformed in place after its first step (half the temporaries)."""
    h = h ^ (h >> np.uint64(30))
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


def column(rows: np.ndarray, name: str, idx: np.ndarray | None = None) -> np.ndarray:
    """A column of ``rows``, of the rows ``idx`` only when given: gathering
    the columns a computation reads costs a fraction of copying whole
    rows (``rows[idx]``: 78 bytes a row, 39 MB for 500k of them)."""
    return rows[name] if idx is None else rows[name][idx]


def connection_hash(rows: np.ndarray, reverse: bool = False,
                    idx: np.ndarray | None = None) -> np.ndarray:
    """A 64-bit key per row (of ``idx``, when given) of (family, local,
    remote); ``reverse`` swaps local and remote, giving the key of the
    other end. Equal keys are checked column by column before being
    believed."""
    local, remote = ("daddr", "saddr") if reverse else ("saddr", "daddr")
    sp = column(rows, "sport", idx).astype(np.uint64)
    dp = column(rows, "dport", idx).astype(np.uint64)
    if reverse:
        sp, dp = dp, sp
    sp <<= np.uint64(16)
    sp |= dp
    del dp
    with np.errstate(over="ignore"):
        h = mix64(column(rows, "family", idx).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15))
        for name in (local, remote):  # one address column at a time: less memory
            words = address_words(column(rows, name, idx))
            for k in (0, 1):
                h ^= words[:, k]
                h = mix64(h)
            del words
        h ^= sp
        return mix64(h)


def loopback_mask(rows: np.ndarray) -> np.ndarray:
    """Rows whose local address is loopback (127/8, ::1, ::ffff:127/104)."""
    raw = np.ascontiguousarray(rows["saddr"]).view(np.uint8).reshape(-1, 16)
    v4 = (rows["family"] == 2) & (raw[:, 0] == 127)
    one = np.zeros(16, np.uint8)
    one[15] = 1
    v6 = (rows["family"] == 10) & np.all(raw == one, axis=1)
    mapped = (rows["family"] == 10) & np.all(raw[:, :10] == 0, axis=1) & \
        (raw[:, 10] == 0xFF) & (raw[:, 11] == 0xFF) & (raw[:, 12] == 127)
    return v4 | v6 | mapped


def _sorted(keys: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``keys`` sorted and ``rows`` in their order; among equal keys the
    rows stay in their order (a stable sort), which a search relies on (it
    takes the first). An unstable sort gives the same order when no two
    keys are equal, which is nearly always (equal keys: the same
    connection listed twice): half the time of a stable one (300k keys:
    19 against 34 ms), checked, and the stable one only then."""
    order = np.argsort(keys)
    ordered = keys[order]
    if len(ordered) > 1 and (ordered[1:] == ordered[:-1]).any():
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
    return ordered, rows[order]


def _is_other_end(other: np.ndarray, mine: np.ndarray) -> np.ndarray:
    return ((other["family"] == mine["family"]) & (other["sport"] == mine["dport"])
            & (other["dport"] == mine["sport"])
            & (other["saddr"] == mine["daddr"]) & (other["daddr"] == mine["saddr"]))


class PeerIndex:
    """The connected sockets of ``contexts`` (objects with ``rows`` and
    ``state``, World's NsContexts), indexed by connection key."""

    def __init__(self, contexts):
        self.contexts = contexts

    @cached_property
    def _per_namespace(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per namespace: hashed connection keys of its connected sockets,
        sorted, and the rows they belong to."""
        teardown = sorted(int(s) for s in OWNABLE)
        est = sum(int(np.count_nonzero(c.state == int(TcpState.ESTABLISHED)))
                  for c in self.contexts)
        # ESTABLISHED peers (of a FIN_WAIT1 behind a zero window) are worth
        # indexing only while there are not too many of them.
        wanted = teardown + ([int(TcpState.ESTABLISHED)] if est <= PEER_ESTABLISHED_MAX else [])
        lookup = np.zeros(256, bool)  # by state number: np.isin sorts
        lookup[wanted] = True
        out = []
        for ctx in self.contexts:
            sel = np.flatnonzero(lookup[ctx.state])
            keys = connection_hash(ctx.rows, idx=sel)
            out.append(_sorted(keys, sel))
        return out

    def peers(self, me: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The other end of each of context ``me``'s ``rows``: (context
        index, row) arrays, -1 where not found."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(self.contexts) >= MERGED_PEERS_MIN and len(rows):
            found_ctx, found_row = self._batched[me]
            c, r = found_ctx[rows], found_row[rows]
            if not (c == _UNASKED).any():
                return c, r
        return self._search(me, rows)

    def _search(self, me: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found_ctx = np.full(len(rows), -1, dtype=np.int64)
        found_row = np.full(len(rows), -1, dtype=np.int64)
        if len(rows) == 0:
            return found_ctx, found_row
        q = self.contexts[me].rows[rows]
        if len(self.contexts) >= MERGED_PEERS_MIN:
            mine = np.full(len(rows), me, dtype=np.int64)
            self._merged_search(mine, rows, q, found_ctx, found_row)
            return found_ctx, found_row
        want = connection_hash(q, reverse=True)
        loop = loopback_mask(q)
        for k, (keys, where) in enumerate(self._per_namespace):
            if len(keys) == 0:
                continue
            pos = np.searchsorted(keys, want)
            pos = np.minimum(pos, len(keys) - 1)
            hit = (keys[pos] == want) & (found_ctx < 0)
            if k != me:
                hit &= ~loop
            if not hit.any():
                continue
            cand = where[pos[hit]]
            exact = _is_other_end(self.contexts[k].rows[cand], q[hit])
            if k == me:
                exact &= cand != rows[hit]
            idx = np.flatnonzero(hit)[exact]
            found_ctx[idx] = k
            found_row[idx] = cand[exact]
        return found_ctx, found_row

    @cached_property
    def _merged(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every namespace's index in one: keys, context, row, sorted by
        (key, context), keeping of each (key, context) only the entry a
        search of that context's own index finds first (searchsorted,
        side left; lexsort is stable); and the indexed rows themselves,
        by context then position in its index (for the column checks)."""
        index = self._per_namespace
        keys = np.concatenate([k for k, _ in index])
        ctx = np.concatenate([np.full(len(k), i, np.int64) for i, (k, _) in enumerate(index)])
        rows = np.concatenate([w.astype(np.int64) for _, w in index])
        where = np.arange(len(keys), dtype=np.int64)
        records = np.concatenate([c.rows[w] for c, (_, w) in zip(self.contexts, index)])
        order = np.lexsort((ctx, keys))
        keys, ctx, rows, where = keys[order], ctx[order], rows[order], where[order]
        first = np.ones(len(keys), bool)
        first[1:] = (keys[1:] != keys[:-1]) | (ctx[1:] != ctx[:-1])
        return keys[first], ctx[first], rows[first], records[where[first]]

    def _merged_search(self, me: np.ndarray, rows: np.ndarray, q: np.ndarray,
                       found_ctx: np.ndarray, found_row: np.ndarray) -> None:
        """Queries ``rows`` (records ``q``) of contexts ``me`` through the
        merged index: of the contexts holding the key, in their order, the
        first whose candidate is the exact other end (loopback only in the
        query's own context)."""
        keys, kctx, krow, krec = self._merged
        want = connection_hash(q, reverse=True)
        loop = loopback_mask(q)
        lo = np.searchsorted(keys, want, "left")
        n = np.searchsorted(keys, want, "right") - lo
        if not n.any():
            return
        q_of = np.repeat(np.arange(len(rows)), n)
        pos = np.arange(int(n.sum())) + np.repeat(lo - (np.cumsum(n) - n), n)
        k, cand = kctx[pos], krow[pos]
        exact = (k == me[q_of]) | ~loop[q_of]
        exact &= _is_other_end(krec[pos], q[q_of])
        exact &= (k != me[q_of]) | (cand != rows[q_of])
        good = np.flatnonzero(exact)
        hit, first = np.unique(q_of[good], return_index=True)
        found_ctx[hit] = k[good[first]]
        found_row[hit] = cand[good[first]]

    @cached_property
    def _batched(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per context, (context, row) of the other end of each of its rows,
        for every teardown row of every context at once (:data:`_UNASKED`
        for the other rows, which :meth:`peers` searches when asked)."""
        teardown = [int(s) for s in OWNABLE]
        sel = [np.flatnonzero(member(c.state, teardown)) for c in self.contexts]
        me = np.concatenate([np.full(len(s), i, np.int64) for i, s in enumerate(sel)])
        rows = np.concatenate(sel).astype(np.int64)
        q = np.concatenate([c.rows[s] for c, s in zip(self.contexts, sel)])
        found_ctx = np.full(len(rows), -1, dtype=np.int64)
        found_row = np.full(len(rows), -1, dtype=np.int64)
        if len(rows):
            self._merged_search(me, rows, q, found_ctx, found_row)
        out, start = [], 0
        for c, s in zip(self.contexts, sel):
            fc = np.full(len(c.rows), _UNASKED, dtype=np.int64)
            fr = np.full(len(c.rows), _UNASKED, dtype=np.int64)
            fc[s], fr[s] = found_ctx[start:start + len(s)], found_row[start:start + len(s)]
            out.append((fc, fr))
            start += len(s)
        return out
