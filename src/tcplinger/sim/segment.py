"""TCP segments as the simulator moves them: header fields that matter for
teardown (sequence and acknowledgement numbers, flags, payload length).

Sequence numbers start at 0 for each side (ISN 0) and are plain integers:
no wraparound in a simulated connection.

>>> seg = Segment("client", "server", seq=1, ack=1, flags=FIN | ACK)
>>> flag_letters(seg.flags), seg.end_seq
('F.', 2)
>>> parse_flags("F"), parse_flags("SA") == SYN | ACK, parse_flags("")
(1, True, 0)
"""

from __future__ import annotations

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_LETTERS = ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "."))


def flag_letters(flags: int) -> str:
    """tcpdump's spelling: ``S`` ``F`` ``R`` ``P`` and ``.`` for ACK."""
    return "".join(ch for bit, ch in _LETTERS if flags & bit)


def parse_flags(text: str) -> int:
    """Flags from letters (``S F R P A`` or ``.`` for ACK), any order."""
    bits = {"S": SYN, "F": FIN, "R": RST, "P": PSH, "A": ACK, ".": ACK}
    out = 0
    for ch in text.upper():
        if ch not in bits:
            raise ValueError(f"unknown TCP flag {ch!r} (use S F R P A)")
        out |= bits[ch]
    return out


class Segment:
    """One segment. ``tag`` says why it was sent (keepalive, retransmission,
    a middlebox's forged keepalive...); ``origin`` is who really built it
    when that is not ``src`` (a middlebox forging a packet)."""

    __slots__ = ("src", "dst", "seq", "ack", "flags", "length", "tag", "origin", "sid", "cause")

    def __init__(self, src: str, dst: str, seq: int, ack: int, flags: int, length: int = 0,
                 tag: str = "", origin: str = "", cause: int | None = None):
        self.src = src
        self.dst = dst
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.length = length
        self.tag = tag
        self.origin = origin or src
        self.sid = -1  # set by the path when sent
        self.cause = cause  # sid of the segment this one answers

    @property
    def end_seq(self) -> int:
        """Sequence space used: payload plus one each for SYN and FIN."""
        return self.seq + self.length + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    def __repr__(self) -> str:
        return (f"Segment({self.src}->{self.dst} {flag_letters(self.flags)} seq={self.seq} "
                f"ack={self.ack} len={self.length}{' ' + self.tag if self.tag else ''})")
