"""Read the TCP segments of a pcap file (what ``tcpdump -w`` writes).

Pure: bytes in, segments out. The format is libpcap's (pcap-savefile(5)):
a 24-byte file header (magic 0xa1b2c3d4 for microsecond, 0xa1b23c4d for
nanosecond timestamps, in the writer's byte order; link type at offset 20),
then per packet a 16-byte header (seconds, fraction, captured length,
original length) and the bytes. The decoding is wire/'s (pcap and pcapng,
every link type it knows); this module turns its columns into the lab's
:class:`Segment` records.

A SYN from 198.18.0.2:40000 to 198.19.0.2:20000 (Ethernet, IPv4, a 20-byte
TCP header), written by hand:

>>> import struct
>>> tcp = struct.pack("!HHIIBBHHH", 40000, 20000, 1000, 0, 5 << 4, 0x02, 64240, 0, 0)
>>> ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
...                  bytes([198, 18, 0, 2]), bytes([198, 19, 0, 2]))
>>> frame = bytes(12) + b"\\x08\\x00" + ip + tcp
>>> blob = struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1)
>>> blob += struct.pack("<IIII", 1700000000, 250000, len(frame), len(frame)) + frame
>>> [seg] = read_segments(blob)
>>> seg.t, seg.src, seg.sport, seg.dst, seg.dport, seg.flags, seg.seq, seg.length
(1700000000.25, '198.18.0.2', 40000, '198.19.0.2', 20000, 'S', 1000, 0)
"""

from __future__ import annotations

from dataclasses import dataclass

_FLAG_LETTERS = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "."))


def flag_letters(bits: int) -> str:
    """tcpdump's letters for TCP flags.

    >>> flag_letters(0x11), flag_letters(0x12), flag_letters(0x04), flag_letters(0x18)
    ('F.', 'S.', 'R', 'P.')
    """
    return "".join(letter for bit, letter in _FLAG_LETTERS if bits & bit)


@dataclass(frozen=True)
class Segment:
    t: float  # capture time (the capturing host's CLOCK_REALTIME)
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    ack: int
    flag_bits: int
    window: int
    length: int  # payload bytes

    @property
    def flags(self) -> str:
        return flag_letters(self.flag_bits)

    def key(self) -> tuple:
        """What identifies this segment on both sides of a router (TTL and
        IP checksum change there; the TCP header does not)."""
        return (self.src, self.sport, self.dst, self.dport, self.seq, self.ack,
                self.flag_bits, self.length)


def read_segments(blob: bytes) -> list[Segment]:
    """Every TCP segment in a capture file's bytes (pcap or pcapng, read by
    wire/, the one reader of the project); a truncated last record (a
    capture still being written) is ignored."""
    import io

    from ..wire.decode import decode, format_addr
    from ..wire.pcapfile import read_blocks

    if not blob:
        return []
    out = []
    for block in read_blocks(io.BytesIO(blob), []):
        p = decode(block.data, block.start, block.caplen, block.linktype, block.ts,
                   block.interface).packets
        for t, sh, sl, sp, dh, dl, dp, seq, ack, fl, win, plen in zip(
                p.ts.tolist(), p.src_hi.tolist(), p.src_lo.tolist(), p.sport.tolist(),
                p.dst_hi.tolist(), p.dst_lo.tolist(), p.dport.tolist(), p.seq.tolist(),
                p.ack.tolist(), p.flags.tolist(), p.win.tolist(), p.plen.tolist()):
            out.append(Segment(t, format_addr(sh, sl), sp, format_addr(dh, dl), dp, seq, ack,
                               fl & 0x3F, win, plen))
    return out
