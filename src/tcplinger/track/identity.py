"""Which row is which socket: the tracked columns of one namespace, kept
sorted by cookie, and the matching of a sample's rows against them by
cookie and 4-tuple (a reused cookie with another 4-tuple is another
socket). Numpy columns throughout: one observation of 100k sockets is a few
``searchsorted`` calls, not 100k dict look-ups."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.socket import format_address
from .events import StateEvent

COLS = ("cookie", "state", "family", "sport", "dport", "saddr", "daddr")


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
class Namespace:
    """Tracked sockets of one namespace, sorted by cookie."""

    cols: np.ndarray  # SOCKET_DTYPE subset (COLS)
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


def sorted_columns(rows, order: np.ndarray | None = None) -> np.ndarray:
    """The :data:`COLS` of a sample's rows, sorted by cookie (``order``:
    the stable argsort of their cookies, when the caller has it)."""
    if order is None:
        order = np.argsort(rows["cookie"], kind="stable")
    whole = _opaque(rows).take(order).view(rows.dtype)  # one gather, not one per field
    cur = np.empty(len(rows), [(c, rows.dtype[c]) for c in COLS])
    for c in COLS:
        cur[c] = whole[c]
    return cur


class DumpOrders:
    """The cookie order of each namespace's last sample: the kernel walks
    its socket hash the same way every time, so a steady namespace's dump
    comes in the same order and its stable argsort (3 ms for the 30k rows
    between full dumps, 100k-socket bench) is the last one."""

    def __init__(self) -> None:
        self._last: dict = {}  # netns -> (cookies in dump order, their argsort)

    def order(self, ns: int, rows) -> np.ndarray:
        cookies = rows["cookie"]
        last = self._last.get(ns)
        if last is not None and np.array_equal(last[0], cookies):
            return last[1]
        order = np.argsort(cookies, kind="stable")
        self._last[ns] = (np.array(cookies), order)
        return order

    def forget(self, ns: int) -> None:
        self._last.pop(ns, None)


def port_keys(rows) -> np.ndarray:
    return (rows["sport"].astype(np.uint32) << 16) | rows["dport"].astype(np.uint32)


def port_key(row) -> int:
    return (int(row["sport"]) << 16) | int(row["dport"])


def endpoints(row):
    fam = int(row["family"])
    return ((format_address(fam, row["saddr"].tobytes()), int(row["sport"])),
            (format_address(fam, row["daddr"].tobytes()), int(row["dport"])))


def same_tuple(ev: StateEvent, row) -> bool:
    return (ev.family, ev.local, ev.remote) == socket_tuple(row)


def socket_tuple(row) -> tuple:
    """``(family, local, remote)``: a row's socket as its trace events name it."""
    return (int(row["family"]), *endpoints(row))


def by_tuple(events, now: float) -> dict:
    """Events up to ``now`` by :func:`socket_tuple`, each list in the order
    given: rows sharing a port pair (every namespace's events come in
    under it) then cost one look-up each, not a comparison per event with
    their addresses formatted again (a host of 1M sockets of the same
    address plan in another namespace: seconds a sample)."""
    out: dict = {}
    for e in events:
        if e.t <= now:
            out.setdefault((e.family, e.local, e.remote), []).append(e)
    return out


def match(known: "Namespace", rows: np.ndarray, row_hash: np.ndarray | None = None):
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


def state_bits(states) -> np.ndarray:
    """A bool per state number (0..255): True for the states in ``states``.

    >>> np.flatnonzero(state_bits([4, 8])).tolist()
    [4, 8]
    """
    bits = np.zeros(256, bool)
    bits[[int(s) for s in states]] = True
    return bits


def unseen_rows(old: "Namespace", mask: np.ndarray | None) -> np.ndarray:
    """Known sockets this observation could not see: their state was not
    dumped, and no dump of their state missed them yet (one that did is
    gone or moved to a dumped state, where the table would show it)."""
    if mask is None:
        return np.zeros(len(old.cols), bool)
    return ~mask[old.cols["state"]] & (old.missed == 0)


def concat(st: Namespace, old: Namespace, keep: np.ndarray,
           unseen: np.ndarray | None = None) -> Namespace:
    """``st`` and the rows of ``old`` flagged in ``keep`` (both sorted by
    cookie) as one :class:`Namespace` sorted by cookie; ``unseen`` (per
    kept row) were not looked for, so no miss is counted for them."""
    kept = np.flatnonzero(keep)
    missed = old.missed[kept] + 1
    if unseen is not None:
        missed[unseen] -= 1  # not looked for: not a miss
    # Both sides are sorted by cookie: merge by position instead of sorting
    # the concatenation (70k ESTABLISHED rows kept every sample between
    # full dumps: 18 ms of argsort and gathers, 100k-socket bench). Ties
    # put the current row first, as a stable sort of [st, old] would.
    n_new, n_kept = len(st.cols), len(kept)
    at = np.searchsorted(st.cookies, old.cookies[kept], side="right") + np.arange(n_kept)
    mine = np.ones(n_new + n_kept, bool)
    mine[at] = False
    # Integer positions, and the 46-byte records moved as one opaque field:
    # a boolean mask is scanned again for every column, and numpy copies a
    # structured array field by field (9 columns of 100k rows: 16 ms -> 3 ms)
    new_at = np.flatnonzero(mine)

    def merge(a, b, gathered=False):
        out = np.empty(n_new + n_kept, a.dtype)
        o, a = _opaque(out), _opaque(a)
        o[new_at] = a
        o[at] = _opaque(b) if gathered else _opaque(b).take(kept)
        return out
    return Namespace(merge(st.cols, old.cols), merge(st.hash, old.hash),
                     merge(st.since, old.since), merge(st.code, old.code),
                     merge(st.at_least, old.at_least), merge(st.first_seen, old.first_seen),
                     merge(st.missed, missed, gathered=True),
                     merge(st.prev_since, old.prev_since),
                     merge(st.prev_at_least, old.prev_at_least), st.last_obs, st.last_mask)


def update_in_place(st: Namespace, old: Namespace, idx: np.ndarray, hit: np.ndarray,
                    gone: np.ndarray, keep: np.ndarray, unseen: np.ndarray) -> Namespace | None:
    """:func:`concat` of ``st`` and ``old``'s ``keep`` rows without moving
    the kept ones, when the result has ``old``'s rows in ``old``'s order:
    every row of ``st`` is a known socket (``hit``, at ``idx``), no two the
    same one, every known socket missing from ``st`` is kept, and no cookie
    twice (ties would put ``st``'s row first). Then ``st``'s rows are
    written over theirs in ``old``'s arrays (changed in place: the tracker
    owns them) and the misses of the kept ones counted; else None.

    Between full dumps (watch, 100k sockets) the 70k ESTABLISHED rows are
    kept and the 30k dumped ones are the last sample's: the merge moved
    all 100k rows of nine columns every sample (~10 ms) for none of the
    kept ones changing.
    """
    n, n_new = len(old.cols), len(st.cols)
    if not hit.all():
        return None
    n_kept = int(np.count_nonzero(keep))
    if n_kept + n_new != n or n_kept != int(np.count_nonzero(gone)):
        return None  # a row twice, or a known socket dropped
    c = old.cookies
    if n > 1 and not (c[1:] > c[:-1]).all():
        return None
    # (the hashes are equal: a hit is one)
    for a, b in ((old.cols, st.cols), (old.since, st.since),
                 (old.code, st.code), (old.at_least, st.at_least),
                 (old.first_seen, st.first_seen), (old.missed, st.missed),
                 (old.prev_since, st.prev_since), (old.prev_at_least, st.prev_at_least)):
        _opaque(a)[idx] = _opaque(b)
    old.missed[keep & ~unseen] += 1  # not looked for (unseen): not a miss
    out = Namespace(old.cols, old.hash, old.since, old.code, old.at_least, old.first_seen,
                    old.missed, old.prev_since, old.prev_at_least, st.last_obs, st.last_mask)
    out.__dict__["_cookies"] = c  # the same cookies in the same order
    return out


def unchanged(old: Namespace, cur: np.ndarray, cur_hash: np.ndarray, mask: np.ndarray,
              now: float) -> Namespace | None:
    """``old`` as it stands, observed at ``now``, when a sample between full
    dumps changes nothing in it (else None): the states dumped are those of
    ``old``'s own observation, every row of ``cur`` (sorted by cookie, no
    cookie twice) is a known socket (cookie and 4-tuple) in its known
    state, every known socket of a dumped state is among them, and no
    known socket was missed before. Then the carry-over writes every value
    over itself, and every other known socket is in a state not dumped and
    stays without a miss: no transition, nothing to write.

    A steady host between full dumps (100k sockets, 30k dumped): the
    carry-over, the in-place update and the unseen rows cost ~4 ms of the
    tracker's 7 a sample for this answer."""
    if old.last_mask is None or not np.array_equal(old.last_mask, mask) or old.missed.any():
        return None
    n = len(cur)
    if n != _dumped(old, mask):
        return None
    c = cur["cookie"]
    if n > 1 and not (c[1:] > c[:-1]).all():
        return None
    idx, hit = match(old, cur, cur_hash)
    if not hit.all() or not np.array_equal(old.cols["state"][idx], cur["state"]):
        return None
    out = Namespace(old.cols, old.hash, old.since, old.code, old.at_least, old.first_seen,
                    old.missed, old.prev_since, old.prev_at_least, now, old.last_mask)
    out.__dict__["_cookies"] = old.cookies
    out.__dict__["_dumped"] = old.__dict__["_dumped"]  # the same states (set by _dumped)
    return out


def _dumped(old: Namespace, mask: np.ndarray) -> int:
    """How many of ``old``'s sockets are in a state of ``mask``; kept with
    ``old`` (its states do not change while :func:`unchanged` hands it on)."""
    key = mask.tobytes()
    kept = old.__dict__.get("_dumped")
    if kept is None or kept[0] != key:
        kept = old.__dict__["_dumped"] = (key, int(np.count_nonzero(mask[old.cols["state"]])))
    return kept[1]


def _opaque(a: np.ndarray) -> np.ndarray:
    """A structured array as one opaque field per row (copied whole)."""
    return a.view(np.dtype((np.void, a.dtype.itemsize))) if a.dtype.names else a


def live_changes(pc, ps, pt, cookie, state, since):
    """Rows of a namespace's live ages to write again (bool per row of
    ``cookie``: new, or another state or entry time than last written)
    and the cookies written before and gone; both cookie columns sorted.

    >>> c = np.array([3, 5, 9], np.uint64)
    >>> changed, gone = live_changes(c, np.array([8, 8, 6]), np.array([1.0, 2.0, 3.0]),
    ...                              np.array([5, 7, 9], np.uint64), np.array([9, 8, 6]),
    ...                              np.array([2.0, 4.0, 3.0]))
    >>> changed.tolist(), gone.tolist()
    ([True, True, False], [3])
    """
    unique = len(pc) < 2 or bool((pc[1:] != pc[:-1]).all())
    if unique and len(pc) == len(cookie) and np.array_equal(pc, cookie):
        # the same sockets as last time, row for row (a steady host: no search)
        return (ps != state) | (pt != since), pc[:0]
    idx = np.minimum(np.searchsorted(pc, cookie), max(len(pc) - 1, 0))
    if len(pc):
        known = pc[idx] == cookie
        same = known & (ps[idx] == state) & (pt[idx] == since)
    else:
        known = same = np.zeros(len(cookie), bool)
    if not unique:  # a cookie twice: each copy
        return ~same, pc[~np.isin(pc, cookie)]
    stays = np.zeros(len(pc), bool)  # the look-up found every kept one (isin: a sort of both)
    stays[idx[known]] = True
    return ~same, pc[~stays]
