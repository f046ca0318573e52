"""Zeek's TCP endpoint state machine, history letters and conn_state,
rebuilt from Zeek's documentation of conn.log and the behaviour of its
TCP analyzer (src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc,
src/analyzer/protocol/tcp/TCP_Endpoint.cc, scripts/base/protocols/conn/
main.zeek; read, not copied), so that a conn_state and a history from
tcplinger can be checked line by line against ``zeek -C -r FILE``.

Endpoint states (Zeek's TCP_ENDPOINT_*): INACTIVE, SYN_SENT,
SYN_ACK_SENT, PARTIAL (seen, no SYN), ESTABLISHED, CLOSED (sent a FIN),
RESET (sent a RST).

History letters, upper case for the originator: S a SYN without ACK,
H a SYN-ACK, A a pure ACK, D payload, F FIN, R RST, T retransmitted
payload, W a zero window, G a content gap, I FIN+RST together, Q SYN+FIN
or SYN+RST, ^ the roles were flipped, C a bad checksum (only when
checksums are verified, ``--checksums``: as ``zeek -r`` without ``-C``;
captures taken on a Linux host carry offloaded, unfilled checksums; the
packet is then counted for nothing else, as in Zeek's TCPAnalyzer::
DeliverPacket). A, D, I and Q are logged once per direction; S/H, F and R
again whenever the sequence number differs from the last packet of the
same kind (a retransmission with the same number is not logged again); T,
W, G, C are logged at the 1st, 10th, 100th, 1000th... occurrence.

>>> s = conn_state(Endpoint.CLOSED, Endpoint.CLOSED, "ShADadFf", 10, 20)
>>> s, conn_state(Endpoint.SYN_SENT, Endpoint.INACTIVE, "S", 0, 0)
('SF', 'S0')
"""

from __future__ import annotations

import re

M32 = 0xFFFFFFFF
#: Zeek's TOO_LARGE_SEQ_DELTA: a jump larger than this is not believed.
TOO_LARGE_SEQ_DELTA = 1048576
FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16

H_SYN, H_FIN, H_RST, H_FINRST, H_MULTI, H_DATA, H_ACK = 1, 2, 4, 8, 16, 32, 64

#: The TCP ports Zeek's base protocol scripts register (Zeek 8), its
#: ``likely_server_ports``: a connection first seen mid-stream from one of
#: them is flipped so that the port's side is the responder.
LIKELY_SERVER_PORTS = frozenset({
    21, 22, 25, 53, 79, 80, 81, 88, 135, 139, 143, 389, 443, 445, 465, 502, 514, 563, 585,
    587, 614, 631, 636, 989, 990, 992, 993, 995, 1080, 1434, 1883, 2811, 3128, 3268, 3306,
    3389, 5222, 5223, 5269, 5432, 6379, 6666, 6667, 6668, 6669, 8000, 8080, 8888, 20000})


def seq_delta(a: int, b: int) -> int:
    """a - b in 32-bit sequence space, signed.

    >>> seq_delta(5, 0xFFFFFFFF), seq_delta(0xFFFFFFFF, 5)
    (6, -6)
    """
    return ((a - b + 0x80000000) & M32) - 0x80000000


class Endpoint:
    """One side's state as Zeek keeps it, plus the counters conn.log shows.

    Sequence positions ``start``, ``last`` and ``acked`` are unwrapped
    integers (they grow past 2^32), so sizes stay right on long transfers.
    """

    INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
    NAMES = ("INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED",
             "RESET")

    __slots__ = ("is_orig", "state", "prev_state", "start", "last", "acked", "fin_cnt",
                 "rst_cnt", "last_syn", "last_fin", "last_rst", "rxmt_cnt", "rxmt_thresh",
                 "win0_cnt", "win0_thresh", "gap_cnt", "gap_thresh", "chk_cnt", "chk_thresh",
                 "did_close", "pkts",
                 "ip_bytes", "rs", "trim", "blocks", "fin_seq", "obs")

    def __init__(self, is_orig: bool):
        self.is_orig = is_orig
        self.state = self.prev_state = Endpoint.INACTIVE
        self.start = self.last = self.acked = 0
        self.fin_cnt = self.rst_cnt = 0
        self.last_syn = self.last_fin = self.last_rst = -1
        self.rxmt_cnt = self.win0_cnt = self.gap_cnt = self.chk_cnt = 0
        self.rxmt_thresh = self.win0_thresh = self.gap_thresh = self.chk_thresh = 1
        self.did_close = False
        self.pkts = self.ip_bytes = 0
        # the reassembler's bookkeeping (wire/reassembly.py)
        self.rs = self.trim = 1
        self.blocks = None
        self.fin_seq = 0  # the sequence number after its FIN
        self.obs = None  # what wire/observe.py learns of this side

    def set_state(self, state: int) -> None:
        if state != self.state:
            self.prev_state = self.state
            self.state = state

    def init_seq(self, start: int, last: int) -> None:
        self.start = start
        self.acked = start
        self.last = start + ((last - start) & M32)
        self.rs = self.trim = start + 1
        self.blocks = None

    def size(self, peer: "Endpoint") -> int:
        """Payload bytes sent, from sequence numbers (Zeek's ``Size()``)."""
        if (self.prev_state == Endpoint.SYN_SENT and self.state == Endpoint.RESET
                and peer.state == Endpoint.INACTIVE and self.acked > self.start + 1):
            return 0
        size = max(self.last, self.acked) - self.start
        if size > 0:
            size -= 1
        if self.fin_cnt and size > 0:
            size -= 1
        return max(size, 0)


class History:
    """The history string and the once-per-direction letters seen."""

    __slots__ = ("letters", "seen")

    def __init__(self):
        self.letters: list[str] = []
        self.seen = 0

    def check(self, ep: Endpoint, mask: int, code: str) -> bool:
        """Log ``code`` the first time; True when it had been seen before."""
        if not ep.is_orig:
            mask <<= 16
            code = code.lower()
        if self.seen & mask:
            return True
        self.seen |= mask
        self.letters.append(code)
        return False

    def add(self, ep: Endpoint, code: str) -> None:
        self.letters.append(code if ep.is_orig else code.lower())

    def scaled(self, ep: Endpoint, code: str, attr: str) -> None:
        """T, W, G, C: at the 1st, 10th, 100th... occurrence."""
        cnt = getattr(ep, attr + "_cnt") + 1
        setattr(ep, attr + "_cnt", cnt)
        thresh = getattr(ep, attr + "_thresh")
        if cnt == thresh:
            self.add(ep, code)
            setattr(ep, attr + "_thresh", thresh * 10)

    def text(self) -> str:
        return "".join(self.letters)


_RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*")


def conn_state(os_: int, rs: int, history: str, orig_size: int, resp_size: int) -> str:
    """Zeek's conn_state from the two endpoint states (main.zeek's
    ``conn_state()``), e.g. a SYN answered by a RST:

    >>> E = Endpoint
    >>> conn_state(E.SYN_SENT, E.RESET, "Sr", 0, 0), conn_state(E.CLOSED, E.ESTABLISHED, "ShAF", 0, 0)
    ('REJ', 'S2')
    """
    E = Endpoint
    o_inactive = os_ in (E.INACTIVE, E.PARTIAL)
    r_inactive = rs in (E.INACTIVE, E.PARTIAL)
    if rs == E.RESET:
        if os_ in (E.SYN_SENT, E.SYN_ACK_SENT) or (
                os_ == E.RESET and orig_size == 0 and resp_size == 0):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if os_ == E.RESET:
        if r_inactive:
            return "RSTOS0" if _RSTOS0.fullmatch(history) else "OTH"
        return "RSTO"
    if rs == E.CLOSED and os_ == E.CLOSED:
        return "SF"
    if os_ == E.CLOSED:
        return "SH" if r_inactive else "S2"
    if rs == E.CLOSED:
        return "SHR" if o_inactive else "S3"
    if os_ == E.SYN_SENT and rs == E.INACTIVE:
        return "S0"
    if os_ == E.ESTABLISHED and rs == E.ESTABLISHED:
        return "S1"
    return "OTH"


def flip_first(flags: int, sport: int, dport: int) -> bool:
    """Whether a connection whose first packet is this one (sent from
    ``sport`` to ``dport``) is flipped: only partial starts (no SYN, or a
    SYN-ACK) from a likely server port (Zeek's ``WantConnection``).

    >>> flip_first(ACK, 80, 40000), flip_first(SYN | ACK, 80, 40000), flip_first(SYN, 80, 40000)
    (True, True, False)
    >>> flip_first(ACK, 80, 443), flip_first(ACK, 443, 80)
    (True, False)
    """
    if flags & SYN and not flags & ACK:
        return False
    if sport in LIKELY_SERVER_PORTS:
        if dport in LIKELY_SERVER_PORTS:
            return not flags & SYN and sport < dport
        return True
    return False
