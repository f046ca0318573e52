"""A connection whose packets so far were all plain (wire/fastpath.py),
held as the facts the fast path computed (a :class:`Start`) instead of the
engine's objects: most connections are finished without another packet,
and their record is made from these facts directly. When another packet
(or a SYN asking whether the 4-tuple is reused) comes, the connection
becomes the engine's :class:`~.connection.Connection`, with exactly the
state the engine would have built packet by packet (:meth:`Restored.materialise`).

Times are capture times; ``isn_*`` the initial sequence numbers;
``end_*`` and ``acked_*`` positions relative to them (the SYN is 1);
``fin_*`` None when that side sent no FIN.
"""

from __future__ import annotations

from typing import NamedTuple

from .connection import Connection
from .decode import format_addr
from .observe import _REC, Observer, Side
from .record import ConnRecord, make_record
from .zeek import M32, Endpoint, History

E = Endpoint


class Start(NamedTuple):
    """The plain start of one connection, as the fast path saw it."""

    t1: float  # the SYN-ACK
    isn_o: int
    isn_r: int
    ttl_o: int
    ttl_r: int
    pkts_o: int
    pkts_r: int
    ip_bytes_o: int
    ip_bytes_r: int
    end_o: int
    end_r: int
    acked_o: int  # highest ACK from the responder (relative to isn_o)
    acked_r: int
    last_o: float
    last_r: float
    win_o: int
    win_r: int
    data_o: float | None
    data_r: float | None
    estab_o: float | None
    letters: tuple
    seen: int  # History.seen
    fin_acked_o: float | None
    fin_acked_r: float | None
    fin_t_o: float | None  # its FIN (None: none yet)
    fin_t_r: float | None
    fin_end_o: int | None  # the sequence number after the FIN
    fin_end_r: int | None
    fin_ack_o: int | None  # the FIN's ACK field
    fin_ack_r: int | None
    kept: bytes  # the notable packets, packed as observe.Observer keeps them


def _side(ttl, syn_t, synack_t, estab_t, win, last_t, data_t, fin_t, fin_end, fin_ack,
          fin_acked_t, peer_fin_acked_t) -> Side:
    side = Side()
    side.ttl, side.syn_t, side.synack_t, side.estab_t = ttl, syn_t, synack_t, estab_t
    side.window, side.last_t, side.data_t = win, last_t, data_t
    side.peer_fin_acked_t = peer_fin_acked_t
    if fin_t is not None:
        side.fin_t, side.fin_end, side.fin_ack = fin_t, fin_end, fin_ack
        side.fin_sent, side.fin_acked_t = 1, fin_acked_t
    return side


def _size(end: int, fin_t) -> int:
    """Endpoint.size() of a plain side: the payload between SYN and FIN."""
    size = end - 1
    if fin_t is not None and size > 0:
        size -= 1
    return max(size, 0)


class Restored(Connection):
    """A :class:`Connection` not built yet; ``obs`` holds its :class:`Start`
    until :meth:`materialise` (the class then becomes Connection)."""

    __slots__ = ()

    @classmethod
    def make(cls, key, interface, low: bool, t0: float, last: float, start: Start):
        conn = object.__new__(cls)
        conn.key, conn.interface, conn.orig_low = key, interface, low
        conn.start = conn.first = t0
        conn.last, conn.flipped, conn.queued, conn.uid = last, False, False, 0
        conn.partial = False
        conn.obs = start
        return conn

    def sides(self) -> tuple[Side, Side]:
        s = self.obs
        return (_side(s.ttl_o, self.start, None, s.estab_o, s.win_o, s.last_o, s.data_o,
                      s.fin_t_o, s.fin_end_o, s.fin_ack_o, s.fin_acked_o, s.fin_acked_r),
                _side(s.ttl_r, None, s.t1, None, s.win_r, s.last_r, s.data_r, s.fin_t_r,
                      s.fin_end_r, s.fin_ack_r, s.fin_acked_r, s.fin_acked_o))

    def materialise(self) -> Connection:
        s: Start = self.obs
        so, sr = self.sides()
        self.orig, self.resp = Endpoint(True), Endpoint(False)
        for ep, side, isn, end, acked, pkts, ipb, fin_end, pre in (
                (self.orig, so, s.isn_o, s.end_o, s.acked_o, s.pkts_o, s.ip_bytes_o, s.fin_end_o,
                 E.SYN_SENT),
                (self.resp, sr, s.isn_r, s.end_r, s.acked_r, s.pkts_r, s.ip_bytes_r, s.fin_end_r,
                 E.INACTIVE)):
            ep.obs = side
            ep.start, ep.last, ep.acked, ep.last_syn = isn, isn + end, isn + acked, isn
            ep.pkts, ep.ip_bytes = pkts, ipb
            # no hole: all data arrived in order (the FIN is no data)
            ep.rs = ep.last - (fin_end is not None)
            ep.trim = max(isn + 1, min(ep.acked, ep.rs))
            if fin_end is None:
                ep.state, ep.prev_state = E.ESTABLISHED, pre
            else:  # Endpoint.last_fin is the FIN's seq + payload, without the FIN
                ep.state, ep.prev_state = E.CLOSED, E.ESTABLISHED
                ep.fin_cnt, ep.did_close, ep.last_fin = 1, True, (fin_end - 1) & M32
                ep.fin_seq = ep.last
        self.hist = History()
        self.hist.letters, self.hist.seen = list(s.letters), s.seen
        obs = Observer(self)
        obs.head, obs.seen = bytearray(s.kept), len(s.kept) // _REC.size
        self.obs = obs
        self.__class__ = Connection
        return self

    # ---- the engine's questions: answered by the engine once built ------------
    def is_reuse(self, low: bool, flags: int, seq: int) -> bool:
        if self.obs.fin_t_o is not None or self.obs.fin_t_r is not None:
            return True  # a side closed: any SYN starts anew (Connection.is_reuse)
        return self.materialise().is_reuse(low, flags, seq)

    def process(self, *packet) -> None:
        self.materialise().process(*packet)

    def corrupt(self, low: bool) -> None:
        self.materialise().corrupt(low)

    def close_complete(self) -> bool:
        return self.materialise().close_complete()

    def state(self) -> str:
        s = self.obs
        return ("SF" if s.fin_t_r is not None else "S2") if s.fin_t_o is not None else (
            "S3" if s.fin_t_r is not None else "S1")

    def record(self, capture_end: float) -> ConnRecord:
        """What record.finish() makes of the built connection."""
        s: Start = self.obs
        so, sr = self.sides()
        key = self.key
        lo, hi = (format_addr(key[0], key[1]), key[2]), (format_addr(key[3], key[4]), key[5])
        orig, resp = (lo, hi) if self.orig_low else (hi, lo)
        last_t = max(s.last_o, s.last_r, self.last)
        return make_record(
            f"C{self.uid}", self.start, orig[0], orig[1], resp[0], resp[1],
            self.last - self.start, _size(s.end_o, s.fin_t_o), _size(s.end_r, s.fin_t_r),
            self.state(), "".join(s.letters), s.pkts_o, s.ip_bytes_o, s.pkts_r, s.ip_bytes_r,
            last_t, self.first, max(capture_end, last_t), self.interface, so, sr, s.kept,
            len(s.kept) // _REC.size, self.orig_low)
