"""The columnar fast path of the connection engine: the plain start of a
connection (SYN, SYN-ACK, then in-order ACKs, data and at most one FIN per
side) worked out for a whole block at once with numpy, and handed to the
per-packet engine (connection.py) as the :class:`Connection` it would have
built packet by packet.

Nearly every connection of a busy server starts like this and most end
like this, so the per-packet Python engine only sees what is odd: a
connection first seen mid-stream, a retransmission, a keepalive, a window
probe, a zero window, a RST, a TTL that is not the sender's, data after a
FIN, a bad checksum (when verified), and every packet after the first odd
one. Those go through the
engine as before, from the state the fast path left (``restore``).

A packet belongs to the plain start of its connection (in the block's
group of its 4-tuple, in capture order) when:

* it is the group's first packet, a SYN without ACK, FIN or RST, no
  payload, an open window, on a 4-tuple that is free (or whose connection
  this SYN ends: Zeek's port reuse, checked by the tracker);
* it is the second, a SYN-ACK from the other side acknowledging exactly
  the SYN (ack = ISN + 1), no payload, an open window;
* later: ACK set, no SYN or RST, an open window, the TTL of the sender's
  first packet, a sequence number exactly the sender's next one (nothing
  retransmitted, nothing missing, so neither a keepalive nor a probe), an
  acknowledgement that never goes back and never covers bytes the capture
  did not show (no content gap), a FIN at most once per side and nothing
  but pure ACKs after it, under 1 GiB per side.

Then everything the engine keeps follows from positions and sums: the
history letters are S, h and the first pure ACK, payload and FIN of each
side in packet order (a FIN is logged as F, not D), the endpoint states
are ESTABLISHED or CLOSED (a FIN), sizes come from the sums of payload,
``conn.last`` stops at the second FIN (Zeek stops the duration once both
sides have closed), a FIN is acknowledged by the first packet of the
other side whose ACK reaches its end, and the notable packets are the
SYN, the SYN-ACK and the FINs.

``tests/unit/test_wire_fastpath.py`` runs every capture through both
paths and compares every field of every connection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .observe import _REC
from .restored import Restored, Start
from .zeek import H_ACK, H_DATA, H_FIN, H_SYN, M32
#: Bytes per side the fast path handles (sequence arithmetic stays far
#: from 2^31, where Zeek's signed deltas would turn).
MAX_REL = 1 << 30


@dataclass(frozen=True)
class Plan:
    """What the fast path took from one block: per connection it starts
    (``groups``, the tracker's group numbers), the block index of its SYN
    (``create_at``: the uid is given there, in capture order), of the
    packet that closed it (``queue_at``, -1: not closed) and its columns
    (``cols``); ``rest``: the block indices left to the engine, in order."""

    groups: np.ndarray
    create_at: np.ndarray
    queue_at: np.ndarray
    rest: np.ndarray
    cols: dict


def _excl(x: np.ndarray, starts: np.ndarray, gs: np.ndarray) -> np.ndarray:
    """Sum of ``x`` over the earlier packets of the same group."""
    c = np.cumsum(x, dtype=np.int64) - x
    return c - c[starts][gs]


def _prefix(p, order, gs, starts, counts, o, inactivity_s):
    """Per run, how many leading packets are plain if its first two are a
    plain SYN and SYN-ACK; with the per-packet columns the aggregates need."""
    n = len(order)
    j = np.arange(n) - starts[gs]
    fl, sq, ak, wn, pl = (p.flags[order], p.seq[order], p.ack[order], p.win[order],
                          p.plen[order])
    i0, i1 = starts, np.minimum(starts + 1, n - 1)
    late = j >= 2
    fin = (fl & 1).astype(bool)
    seg = np.where(late, pl + fin, 0)
    seg_o = np.where(o, seg, 0)
    end_o = 1 + _excl(seg_o, starts, gs)
    end_r = 1 + _excl(seg - seg_o, starts, gs)
    isn_o, isn_r = sq[i0][gs], sq[i1][gs]
    own_end = np.where(o, end_o, end_r)
    ack_rel = (ak - np.where(o, isn_r, isn_o)) & M32
    ok = (fl & 0x16 == 0x10) & (wn > 0) & (ak != 0) & (own_end + seg < MAX_REL)
    ok &= ~p.bad_sum[order]
    ok &= ((sq - np.where(o, isn_o, isn_r)) & M32) == own_end
    ok &= ack_rel <= np.where(o, end_r, end_o)
    ttl = p.ttl[order]
    ok &= ttl == np.where(o, ttl[i0][gs], ttl[i1][gs])
    fins_before = _excl(fin & late & o, starts, gs) * o + _excl(fin & late & ~o, starts, gs) * ~o
    ok &= (fins_before == 0) | ((pl == 0) & ~fin)
    base = gs.astype(np.int64) << 33
    for side in (o & late, ~o & (j >= 1)):  # acknowledgements never go back
        v = base + np.where(side, ack_rel, 0)
        ok &= ~side | (v == np.maximum.accumulate(v))
    if inactivity_s is not None:
        ok &= (p.ts[order] - p.ts[order][i0][gs]) <= inactivity_s
    k = np.minimum.reduceat(np.where(ok | ~late, counts[gs], j), starts)
    return k, dict(j=j, fin=fin, seg=seg, ack_rel=ack_rel, late=late)


def _subgroups(p, inv, ng):
    """The block's packets in (group, capture) order, cut into runs that
    each begin at the group's first packet or at a SYN without ACK (a
    4-tuple can carry several connections in one block)."""
    n = len(inv)
    order = np.argsort(inv, kind="stable")
    gs = inv[order]
    counts = np.bincount(inv, minlength=ng)
    jg = np.arange(n) - (np.cumsum(counts) - counts)[gs]
    new = (jg == 0) | (p.flags[order] & 0x17 == 2)
    starts = np.flatnonzero(new)
    sid = np.cumsum(new) - 1
    return order, sid, starts, np.diff(np.append(starts, n)), gs[starts], jg[starts] == 0


def plan(p, low, inv, ng: int, may_start, inactivity_s=None) -> Plan | None:
    """The plain starts of a block (``p``: its Packets; ``low`` and ``inv``:
    the tracker's per-packet side and group; ``ng`` groups);
    ``may_start(g, i)`` says whether packet i, a SYN, may start a new
    connection on group g's 4-tuple as it is before the block. None when
    the block has no plain start."""
    n = len(p)
    order, sid, starts, counts, sg, head = _subgroups(p, inv, ng)
    fl, pl, wn, sq, ak = p.flags, p.plen, p.win, p.seq, p.ack
    f0, f1 = order[starts], order[np.minimum(starts + 1, n - 1)]
    cand = ((counts >= 2) & (fl[f0] & 0x17 == 2) & (pl[f0] == 0) & (wn[f0] > 0)
            & (fl[f1] & 0x17 == 0x12) & (pl[f1] == 0) & (wn[f1] > 0) & (low[f1] != low[f0])
            & (ak[f1] == (sq[f0] + 1) & M32) & ~p.bad_sum[f0] & ~p.bad_sum[f1])
    for s in np.flatnonzero(cand & head).tolist():
        if not may_start(int(sg[s]), int(f0[s])):
            cand[s] = False
    if not cand.any():
        return None
    lw = low[order]
    o = lw == lw[starts][sid]
    k, c = _prefix(p, order, sid, starts, counts, o, inactivity_s)
    # a later run of a 4-tuple starts a connection only when the run before
    # it was plain to its end and closed (then Zeek's IsReuse is sure)
    closed = np.add.reduceat(c["fin"] & (c["j"] < k[sid]), starts) > 0
    later = np.flatnonzero(~head)
    while later.size:
        ok = cand[later - 1] & (k[later - 1] == counts[later - 1]) & closed[later - 1]
        if (cand[later] <= ok).all():
            break
        cand[later] &= ok
    k = np.where(cand, k, 0)
    inpre = c["j"] < k[sid]
    cols = _aggregate(p, order, sid, starts, o, inpre, c, len(starts))
    fast = np.flatnonzero(k >= 2)
    cols = {name: v[fast] for name, v in cols.items()}
    p2 = np.where((cols["fin_o"] < n) & (cols["fin_r"] < n),
                  np.maximum(cols["fin_o"], cols["fin_r"]), -1)
    cols["p2"] = p2
    return Plan(sg[fast], f0[fast], np.where(p2 >= 0, order[np.maximum(p2, 0)], -1),
                np.sort(order[~inpre]),
                {**cols, "t": p.ts[order], "sq": p.seq[order], "ak": p.ack[order],
                 "wn": p.win[order], "pl": p.plen[order], "fl": p.flags[order],
                 "ttl": p.ttl[order], "lw": lw, "ack_rel": c["ack_rel"], "n": n})


def _aggregate(p, order, gs, starts, o, inpre, c, ng) -> dict:
    """Per group: counts, sums and the positions (in group-sorted order;
    ``n`` for none) the restored connection needs."""
    n = len(order)
    idx = np.arange(n)
    late, fin, ack_rel, seg = c["late"], c["fin"], c["ack_rel"], c["seg"]
    pl = p.plen[order]
    po, pr = inpre & o, inpre & ~o

    def first(mask):
        return np.minimum.reduceat(np.where(mask, idx, n), starts)

    def last(mask):
        return np.maximum.reduceat(np.where(mask, idx, -1), starts)

    def total(mask, w=None):
        return np.bincount(gs[mask], None if w is None else w[mask], minlength=ng)

    ipl = p.iplen[order]
    out = {"pk_o": total(po), "pk_r": total(pr),
           "ipb_o": total(po, ipl).astype(np.int64), "ipb_r": total(pr, ipl).astype(np.int64),
           "end_o": 1 + total(po, seg).astype(np.int64),
           "end_r": 1 + total(pr, seg).astype(np.int64),
           "last_o": last(po), "last_r": last(pr), "data_o": last(po & (pl > 0)),
           "data_r": last(pr & (pl > 0)), "ack_o": last(po & late), "ack_r": last(pr),
           "estab_o": first(po & late), "start": starts}
    plain = late & ~fin
    for s, m in (("o", po), ("r", pr)):
        out["A_" + s] = first(m & plain & (pl == 0))
        out["D_" + s] = first(m & plain & (pl > 0))
        out["fin_" + s] = first(m & late & fin)
    # a FIN is acknowledged by the first packet of the other side after it
    # whose ACK reaches its end (acks never pass the end: see _prefix)
    out["fa_o"] = first(pr & (idx > out["fin_o"][gs]) & (ack_rel >= out["end_o"][gs]))
    out["fa_r"] = first(po & late & (idx > out["fin_r"][gs]) & (ack_rel >= out["end_r"][gs]))
    return out


def _at(a: np.ndarray, pos: np.ndarray, n: int, fill=None) -> list:
    """``a`` at each position, ``fill`` where the position is none (n or -1)."""
    ok = (pos >= 0) & (pos < n)
    vals = a[np.where(ok, pos, 0)].tolist()
    return [v if k else fill for v, k in zip(vals, ok.tolist())]


def restore(pl: Plan, keys: list, interfaces: list) -> list[Restored]:
    """The connections of a plan, each as a :class:`~.restored.Restored`
    (uid 0: the tracker numbers them in capture order)."""
    c, n = pl.cols, pl.cols["n"]
    t, sq, wn, ttl, lw = c["t"], c["sq"], c["wn"], c["ttl"], c["lw"]
    i0 = c["start"]
    i1 = i0 + 1
    fo, fr = c["fin_o"], c["fin_r"]
    letters, seen = _letters(c, n)
    starts = map(Start._make, zip(
        t[i1].tolist(), sq[i0].tolist(), sq[i1].tolist(), ttl[i0].tolist(), ttl[i1].tolist(),
        c["pk_o"].tolist(), c["pk_r"].tolist(), c["ipb_o"].tolist(), c["ipb_r"].tolist(),
        c["end_o"].tolist(), c["end_r"].tolist(), _at(c["ack_rel"], c["ack_r"], n),
        _at(c["ack_rel"], c["ack_o"], n, 0), _at(t, c["last_o"], n), _at(t, c["last_r"], n),
        _at(wn, c["last_o"], n), _at(wn, c["last_r"], n), _at(t, c["data_o"], n),
        _at(t, c["data_r"], n), _at(t, c["estab_o"], n), letters, seen,
        _at(t, c["fa_o"], n), _at(t, c["fa_r"], n), _at(t, fo, n), _at(t, fr, n),
        _fin(c, fo, n), _fin(c, fr, n), _at(c["ak"], fo, n), _at(c["ak"], fr, n), _kept(c, i0, i1, fo, fr, n)))
    # conn.last stops at the packet that closed the second side
    last = _at(t, np.where(c["p2"] >= 0, c["p2"], i0 + c["pk_o"] + c["pk_r"] - 1), n)
    make = Restored.make
    return [make(k, f, lo, t0, la, st) for k, f, lo, t0, la, st in zip(
        keys, interfaces, lw[i0].tolist(), t[i0].tolist(), last, starts)]


def _fin(c, pos, n) -> list:
    """Per connection: the sequence number after a side's FIN, or None."""
    return _at((c["sq"] + c["pl"] + 1) & M32, pos, n)


_CODES = (("A_o", "A", H_ACK), ("D_o", "D", H_DATA), ("fin_o", "F", H_FIN),
          ("A_r", "a", H_ACK << 16), ("D_r", "d", H_DATA << 16), ("fin_r", "f", H_FIN << 16))


def _letters(c, n) -> tuple[list, list]:
    """History letters and the seen bits per connection: S, h, then each
    side's first pure ACK, payload and FIN in packet order (worked out once
    per distinct order)."""
    pos = np.stack([c[k] for k, _, _ in _CODES], axis=1)
    rank = np.argsort(pos, axis=1, kind="stable")
    slot = np.where(np.take_along_axis(pos, rank, axis=1) < n, rank, len(_CODES))
    code = (slot * (8 ** np.arange(len(_CODES)))).sum(axis=1)
    _, one, inv = np.unique(code, return_index=True, return_inverse=True)
    table = []
    for row in slot[one].tolist():
        picked = [_CODES[i] for i in row if i < len(_CODES)]
        seen = H_SYN | (H_SYN << 16)
        for _, _, bit in picked:
            seen |= bit
        table.append((("S", "h", *(x[1] for x in picked)), seen))
    rows = [table[i] for i in inv.reshape(-1).tolist()]
    return [r[0] for r in rows], [r[1] for r in rows]


_KEPT = np.dtype([("t", "<f8"), ("low", "?"), ("flags", "u1"), ("seq", "<u4"),
                  ("ack", "<u4"), ("win", "<u2"), ("plen", "<u4"), ("ttl", "u1"),
                  ("tag", "u1"), ("foreign", "?")])
assert _KEPT.itemsize == _REC.size  # observe._REC, packed the same way


def _kept(c, i0, i1, fo, fr, n) -> list:
    """The notable packets (the SYN, the SYN-ACK, the FINs, in packet
    order), packed as observe.Observer keeps them."""
    fins = np.sort(np.stack([fo, fr], axis=1), axis=1)
    pos = np.concatenate([np.stack([i0, i1], axis=1), fins], axis=1).reshape(-1)
    pos = pos[pos < n]
    rec = np.zeros(len(pos), _KEPT)
    for name, col in (("t", "t"), ("low", "lw"), ("flags", "fl"), ("seq", "sq"), ("ack", "ak"),
                      ("win", "wn"), ("plen", "pl"), ("ttl", "ttl")):
        rec[name] = c[col][pos]
    blob = rec.tobytes()
    size = _REC.size
    ends = np.cumsum(2 + (fo < n) + (fr < n)) * size
    return [blob[a:b] for a, b in zip([0, *ends[:-1].tolist()], ends.tolist())]
