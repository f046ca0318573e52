"""Stream a capture through the connection engine: decode each block,
group its packets by connection with numpy, run the per-packet state
machine, and hand every finished connection to the caller as soon as it
is finished, so that memory follows the connections alive at once and not
the size of the file.

A connection is finished (as in Zeek) when both sides are done (FIN both
ways, or a RST) and ``close_delay`` seconds of capture time have passed
since its last packet (Zeek's ``tcp_close_delay``, 5 s), when a SYN starts
a new connection on its 4-tuple, when it has been idle longer than
``inactivity_s`` (None: never; Zeek's ``tcp_inactivity_timeout`` is
300 s), or at the end of the capture.
"""

from __future__ import annotations

from collections import deque
from itertools import repeat
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from . import fastpath
from .connection import Connection
from .decode import SUPPORTED_LINKTYPES, Packets, decode
from .pcapfile import Block, CaptureError, Notice
from .record import ConnRecord, finish
from .restored import Restored
from .zeek import flip_first

CLOSE_DELAY_S = 5.0


@dataclass
class Counts:
    records: int = 0
    tcp: int = 0
    other: int = 0  # not TCP over IP
    cut: int = 0  # TCP headers cut by the snap length
    unsupported: int = 0  # records of link types not understood
    filtered: int = 0  # TCP packets the filter left out
    bad_checksum: int = 0  # verified (checksums=True) and wrong: history C only
    connections: int = 0
    first_t: float | None = None
    last_t: float | None = None
    linktypes: set = field(default_factory=set)
    interfaces: set = field(default_factory=set)  # the file's interface numbers seen
    interface_names: dict = field(default_factory=dict)  # number -> pcapng if_name

    def to_json(self) -> dict:
        return {"records": self.records, "tcp_packets": self.tcp, "other_packets": self.other,
                "cut_by_snaplen": self.cut, "unsupported_link_type": self.unsupported,
                "filtered_out": self.filtered, "bad_checksum": self.bad_checksum,
                "connections": self.connections,
                "first_ts": self.first_t, "last_ts": self.last_t,
                "link_types": sorted(self.linktypes),
                "interfaces": [{"number": n, "name": self.interface_names.get(n)}
                               for n in sorted(self.interfaces)]}


class _Slot:
    """The current connection of one 4-tuple (and interface)."""

    __slots__ = ("conn",)

    def __init__(self):
        self.conn: Connection | None = None


def _flow_ids(p: Packets, by_interface: bool):
    """Per packet: the canonical key's columns, whether the sender is the
    'low' side, and a group number per distinct key in this block."""
    src = (p.src_hi, p.src_lo, p.sport)
    dst = (p.dst_hi, p.dst_lo, p.dport)
    low = (src[0] < dst[0]) | ((src[0] == dst[0]) & (
        (src[1] < dst[1]) | ((src[1] == dst[1]) & (src[2] <= dst[2]))))
    a = [np.where(low, s, d) for s, d in zip(src, dst)]
    b = [np.where(low, d, s) for s, d in zip(src, dst)]
    iface = p.interface if by_interface else np.zeros(len(p), np.int64)
    cols = [a[0], a[1], a[2].astype(np.uint64), b[0], b[1], b[2].astype(np.uint64),
            iface.astype(np.uint64)]
    h = np.zeros(len(p), np.uint64)
    with np.errstate(over="ignore"):
        for c in cols:
            h = (h ^ c) * np.uint64(0x100000001B3) + np.uint64(0x9E3779B97F4A7C15)
            h ^= h >> np.uint64(29)
    uniq, first, inv = np.unique(h, return_index=True, return_inverse=True)
    if any((c != c[first][inv]).any() for c in cols):  # a hash collision: exact grouping
        rows = np.rec.fromarrays(cols)
        uniq, first, inv = np.unique(rows, return_index=True, return_inverse=True)
    return cols, low, first, inv.reshape(-1)


class Tracker:
    """Feed blocks with :meth:`feed`, then :meth:`close`; ``emit`` gets
    every finished :class:`ConnRecord`."""

    def __init__(self, emit: Callable[[ConnRecord], None], *, keep=None,
                 inactivity_s: float | None = None, by_interface: bool = True,
                 end_t: float | None = None, columnar: bool = True, checksums: bool = False):
        self.emit = emit
        self.checksums = checksums  # verify TCP checksums (history C)
        #: False: every packet through the per-packet engine (the reference
        #: the fast path is tested against)
        self.columnar = columnar
        self.keep = keep  # a filter: Packets -> bool mask, or None
        self.inactivity_s = inactivity_s
        self.by_interface = by_interface
        self.end_t = end_t  # the capture's end when known (else its last packet)
        self.slots: dict[tuple, _Slot] = {}
        self.counts = Counts()
        self.uid = 0
        self._sweep_at = None
        self.closing: deque = deque()  # (key, connection) in the order they closed

    def feed(self, block: Block) -> None:
        c = self.counts
        c.records += len(block)
        c.linktypes.update(int(x) for x in np.unique(block.linktype))
        seen = [int(x) for x in np.unique(block.interface)]
        c.interfaces.update(seen)
        c.interface_names.update((n, block.interface_names[n]) for n in seen
                                 if n < len(block.interface_names) and block.interface_names[n])
        dec = decode(block.data, block.start, block.caplen, block.linktype, block.ts,
                     block.interface, self.checksums)
        c.other += dec.other
        c.cut += dec.cut
        c.unsupported += dec.unsupported
        p = dec.packets
        c.tcp += len(p)
        if self.keep is not None and len(p):
            mask = self.keep(p)
            c.filtered += int((~mask).sum())
            p = p.take(mask)
        if self.checksums:
            c.bad_checksum += int(p.bad_sum.sum())
        if not len(p):
            return
        if c.first_t is None:
            c.first_t = float(p.ts[0])
        c.last_t = float(p.ts.max()) if c.last_t is None else max(c.last_t, float(p.ts.max()))
        self._run(p)
        if self._sweep_at is None or c.last_t >= self._sweep_at:
            self._sweep(c.last_t)
            self._sweep_at = c.last_t + 1.0

    def _run(self, p: Packets) -> None:
        cols, low, first, inv = _flow_ids(p, self.by_interface)
        slots = []
        get = self.slots.get
        for key in zip(*(c[first].tolist() for c in cols)):
            slot = get(key)
            if slot is None:
                slot = self.slots[key] = _Slot()
            slots.append((key, slot))
        plan = None
        if self.columnar:
            plan = fastpath.plan(p, low, inv, len(first), lambda g, i: self._may_start(
                slots[g][1].conn, p, low, i), self.inactivity_s)
        if plan is None:
            self._events(p, low, inv, slots, np.arange(len(p)), None, None)
            return
        groups = plan.groups.tolist()
        conns = fastpath.restore(plan, [slots[g][0][:6] for g in groups],
                                 [slots[g][0][6] for g in groups])
        closed = plan.queue_at >= 0
        at = np.concatenate((plan.rest, plan.create_at, plan.queue_at[closed]))
        ref = np.concatenate((np.full(len(plan.rest), -1), np.arange(len(groups)),
                              np.flatnonzero(closed) + len(groups)))
        order = np.argsort(at, kind="stable")
        self._events(p, low, inv, slots, at[order], ref[order], conns)

    def _may_start(self, conn: Connection | None, p: Packets, low, i: int) -> bool:
        """Whether packet ``i`` (a SYN) starts a new connection on a 4-tuple
        that holds ``conn`` (the per-packet rule of :meth:`_events`)."""
        if conn is None:
            return True
        return conn.is_reuse(bool(low[i]), int(p.flags[i]), int(p.seq[i])) or (
            self.inactivity_s is not None and float(p.ts[i]) - conn.last > self.inactivity_s)

    def _events(self, p: Packets, low, inv, slots, at, ref, conns) -> None:
        """Packets ``at`` through the per-packet engine, in capture order;
        with a fast path plan, ``ref`` >= 0 marks where one of its ``conns``
        starts (the uid is given, a connection it ends is finished) or,
        past ``len(conns)``, closes (queued for Zeek's close delay)."""
        nc = len(conns) if conns is not None else 0
        sport, dport = p.sport[at].tolist(), p.dport[at].tolist()
        bad = set(np.flatnonzero(p.bad_sum[at]).tolist()) if self.checksums else ()
        for i, r, g, lw, t, fl, sq, ak, wn, pl, ipl, ttl in zip(
                range(len(at)), ref.tolist() if ref is not None else repeat(-1),
                inv[at].tolist(), low[at].tolist(), p.ts[at].tolist(), p.flags[at].tolist(),
                p.seq[at].tolist(), p.ack[at].tolist(), p.win[at].tolist(), p.plen[at].tolist(),
                p.iplen[at].tolist(), p.ttl[at].tolist()):
            key, slot = slots[g]
            if r >= 0:
                if r < nc:
                    if slot.conn is not None:
                        self._finish(slot.conn)
                    self.uid += 1
                    conn = slot.conn = conns[r]
                    conn.uid = self.uid
                else:
                    conn = conns[r - nc]
                    conn.queued = True
                    self.closing.append((key, conn))
                continue
            conn = slot.conn
            if conn is None or (fl & 2 and conn.is_reuse(lw, fl, sq)) or (
                    self.inactivity_s is not None and t - conn.last > self.inactivity_s):
                if conn is not None:
                    self._finish(conn)
                self.uid += 1
                conn = slot.conn = Connection(key[:6], lw, t, flip_first(fl, sport[i], dport[i]),
                                              self.uid, key[6])
                conn.partial = fl & 0x12 != 2  # not begun by a SYN
            if bad and i in bad:
                conn.corrupt(lw)  # Zeek: the connection exists, the packet is dropped
                continue
            conn.process(lw, t, fl, sq, ak, wn, pl, ipl, ttl)
            if fl & 5 and not conn.queued and conn.close_complete():
                conn.queued = True
                self.closing.append((key, conn))

    def _finish(self, conn: Connection) -> None:
        self.counts.connections += 1
        end = self.counts.last_t or conn.last
        self.emit(conn.record(end) if type(conn) is Restored else finish(conn, end))

    def _sweep(self, now: float) -> None:
        """Finish connections Zeek would have removed by ``now``: closed
        ones from the queue (oldest first), idle ones by a scan."""
        closing = self.closing
        while closing:
            key, conn = closing[0]
            if now - conn.last <= CLOSE_DELAY_S:
                break
            closing.popleft()
            slot = self.slots.get(key)
            if slot is not None and slot.conn is conn:
                self._finish(conn)
                del self.slots[key]
        if self.inactivity_s is not None:
            for key in [k for k, s in self.slots.items()
                        if s.conn is not None and now - s.conn.last > self.inactivity_s]:
                self._finish(self.slots.pop(key).conn)

    def close(self) -> None:
        """The end of the capture: finish everything still open, in start order."""
        if self.end_t is not None:
            self.counts.last_t = max(self.counts.last_t or self.end_t, self.end_t)
        left = sorted((s.conn for s in self.slots.values() if s.conn is not None),
                      key=lambda c: (c.start, c.uid))
        for conn in left:
            self._finish(conn)
        self.slots.clear()


def analyse_stream(blocks: Iterable[Block], emit, notices: list, **opts) -> Counts:
    """Run a whole capture (the blocks of :func:`~.pcapfile.read_blocks`)."""
    tracker = Tracker(emit, **opts)
    for block in blocks:
        tracker.feed(block)
    tracker.close()
    c = tracker.counts
    bad = c.linktypes - SUPPORTED_LINKTYPES
    if bad and c.unsupported == c.records and c.records:
        raise CaptureError("wire.error.linktype", linktype=", ".join(map(str, sorted(bad))))
    if bad:
        notices.append(Notice("wire.notice.linktype_skipped",
                              {"linktype": ", ".join(map(str, sorted(bad))),
                               "records": c.unsupported}))
    if c.cut:
        notices.append(Notice("wire.notice.cut", {"records": c.cut}))
    return c
