"""What the packets of one connection prove about each endpoint beyond
Zeek's summary: when each side sent its SYN, FIN and RST and when the
other side acknowledged them, keepalives and who answered them, window
probes, zero windows, and packets whose IP TTL is not the sender's (made
by a middlebox on the path, not by the endpoint's stack).

Packet kinds, as Wireshark's TCP analysis names them:

* keepalive: no SYN/FIN/RST, 0 or 1 byte, sequence number one below the
  next one the sender would use (Linux ``tcp_xmit_probe_skb()`` sends
  ``snd_una - 1`` with no data; other stacks add one garbage byte);
* window probe: the same shape while the receiver's last window was 0
  (Linux probes a zero window with exactly that packet), or one byte of
  new data sent into a zero window;
* keepalive-ack: a pure ACK answering a keepalive of the other side;
* retransmission: a FIN or SYN sent again with the same sequence number.

Only notable packets are kept (control, tagged, foreign, zero window), at
most :data:`KEEP` per connection (the first half and the last half).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .zeek import ACK, FIN, M32, RST, SYN, seq_delta

#: Notable packets kept per connection.
KEEP = 64
#: A pure ACK this soon after the other side's keepalive answers it (a
#: stack answers at once; later ACKs are ordinary traffic).
KA_ANSWER_S = 2.0


@dataclass(frozen=True)
class WirePacket:
    """One packet as evidence: time, who sent it (``orig``/``resp``), TCP
    fields and why it matters (``tag``)."""

    t: float
    sender: str
    flags: int
    seq: int
    ack: int
    win: int
    length: int
    ttl: int
    tag: str = ""
    foreign: bool = False

    @property
    def flag_text(self) -> str:
        """tcpdump's letters: ``S`` SYN, ``F`` FIN, ``R`` RST, ``P`` PSH, ``.`` ACK.

        >>> WirePacket(0, "orig", 0x11, 0, 0, 0, 0, 64).flag_text
        'F.'
        """
        return "".join(c for bit, c in ((1, "F"), (2, "S"), (4, "R"), (8, "P"), (16, "."))
                       if self.flags & bit)


def materialise(raw: tuple, orig_low: bool) -> WirePacket:
    """A kept packet as a record (``raw[1]``: sent by the low side)."""
    t, low, flags, seq, ack, win, plen, ttl, tag, foreign = raw
    return WirePacket(t, "orig" if low == orig_low else "resp", flags, seq, ack, win, plen,
                      ttl, tag, foreign)


class Side:
    """One endpoint's observed facts (times are capture times)."""

    __slots__ = ("ttl", "syn_t", "synack_t", "estab_t", "fin_t", "fin_end", "fin_sent",
                 "fin_acked_t", "peer_fin_acked_t", "fin_ack", "rst_t", "rst_foreign", "window",
                 "zero_t", "zero_open", "ka", "ka_answered", "ka_foreign", "ka_pending",
                 "ka_unanswered", "probes", "foreign", "last_t", "data_t")

    def __init__(self):
        self.ttl = None
        self.syn_t = self.synack_t = self.estab_t = None
        self.fin_t = self.fin_end = self.fin_acked_t = self.peer_fin_acked_t = None
        self.fin_sent = 0
        self.fin_ack = None  # the ACK field of its first FIN (or None: no ACK bit)
        self.rst_t = None
        self.rst_foreign = False
        self.window = None
        self.zero_t = None
        self.zero_open = False
        self.ka = self.ka_answered = self.ka_foreign = self.ka_unanswered = self.probes = 0
        self.ka_pending = None
        self.foreign = 0
        self.last_t = self.data_t = None


#: A kept packet, packed (a capture holds tens of thousands of connections
#: within Zeek's close delay; Python objects for each of their packets
#: would cost kilobytes per connection): time, sent by the low side,
#: flags, seq, ack, window, payload length, TTL, tag, foreign.
_REC = struct.Struct("<d?BIIHIBB?")
TAGS = ("", "keepalive", "keepalive-ack", "window-probe", "retransmission", "reset",
        "zero-window", "window-open")
_TAG = {t: i for i, t in enumerate(TAGS)}


def unpack(raw: bytes) -> list[tuple]:
    """The kept packets' fields, in order (see :data:`_REC`)."""
    return [r[:8] + (TAGS[r[8]], r[9]) for r in _REC.iter_unpack(raw)]


class Observer:
    __slots__ = ("conn", "head", "tail", "seen")

    def __init__(self, conn):
        self.conn = conn
        self.head = bytearray()
        self.tail = None  # bytearray of the last KEEP // 2, once the head is full
        self.seen = 0

    def _keep(self, t, low, flags, seq, ack, win, plen, ttl, tag, foreign) -> None:
        self.seen += 1
        rec = _REC.pack(t, low, flags, seq, ack, win, plen, ttl, _TAG[tag], foreign)
        if len(self.head) < KEEP // 2 * _REC.size:
            self.head += rec
            return
        if self.tail is None:
            self.tail = bytearray()
        elif len(self.tail) >= KEEP // 2 * _REC.size:
            del self.tail[:_REC.size]
        self.tail += rec

    def raw(self) -> bytes:
        return bytes(self.head) + bytes(self.tail or b"")


    def before(self, ep, peer, t, flags, seq, ack, win, plen, ttl) -> None:
        """Classify a packet before Zeek's bookkeeping moves ``ep.last``."""
        side = ep.obs
        if side is None:
            side = ep.obs = Side()
            side.ttl = ttl
        other = peer.obs
        foreign = ttl != side.ttl
        tag = ""
        ctl = flags & (SYN | FIN | RST)
        if not ctl:
            if plen <= 1 and seq == (ep.last - 1) & M32:
                zero = other is not None and other.window == 0
                tag = "window-probe" if zero else "keepalive"
            elif plen == 1 and other is not None and other.window == 0 and seq == ep.last & M32:
                tag = "window-probe"
            elif (other is not None and other.ka_pending is not None and plen == 0
                  and flags & ACK and t - other.ka_pending <= KA_ANSWER_S):
                tag = "keepalive-ack"
        elif flags & SYN:
            if flags & ACK:
                tag = "retransmission" if side.synack_t is not None else ""
                side.synack_t = side.synack_t if side.synack_t is not None else t
            else:
                tag = "retransmission" if side.syn_t is not None else ""
                side.syn_t = side.syn_t if side.syn_t is not None else t
        if flags & FIN and not flags & RST:
            end = (seq + plen + 1) & M32
            if side.fin_end is None:
                side.fin_end, side.fin_t = end, t
                side.fin_ack = ack if flags & ACK else None
            elif end == side.fin_end:
                tag = "retransmission"
            side.fin_sent += 1
        if flags & RST:
            tag = "reset"
            if side.rst_t is None:
                side.rst_t, side.rst_foreign = t, foreign
        if tag == "keepalive":
            side.ka += 1
            side.ka_foreign += foreign
            if side.ka_pending is not None:
                side.ka_unanswered += 1
            side.ka_pending = t
        elif tag == "window-probe":
            side.probes += 1
        elif tag == "keepalive-ack":
            other.ka_answered += 1
            other.ka_pending = None
        if plen and tag not in ("keepalive", "window-probe"):
            side.data_t = t
        side.foreign += foreign
        zero_news = False
        if not flags & RST:
            if win == 0 and not side.zero_open:
                side.zero_open, zero_news = True, True
                if side.zero_t is None:
                    side.zero_t = t
            elif win and side.zero_open:
                side.zero_open, zero_news = False, True
            side.window = win
        side.last_t = t
        if tag or ctl or foreign or zero_news:
            if tag == "" and zero_news:
                tag = "zero-window" if win == 0 else "window-open"
            self._keep(t, ep.is_orig == self.conn.orig_low, flags, seq, ack, win, plen, ttl,
                       tag, foreign)

    def after(self, ep, peer, t, flags, seq, ack, plen) -> None:
        """Acknowledgements: of the other side's SYN-ACK and FIN."""
        if not flags & ACK or flags & RST:
            return
        side, other = ep.obs, peer.obs
        if other is None:
            return
        if side.estab_t is None and other.synack_t is not None and not flags & SYN:
            side.estab_t = t  # the originator acknowledged the SYN-ACK
        if (other.fin_end is not None and other.fin_acked_t is None
                and seq_delta(ack, other.fin_end) >= 0):
            other.fin_acked_t = t
            side.peer_fin_acked_t = t
