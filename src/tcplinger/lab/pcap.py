"""Read the TCP segments of a pcap file (what ``tcpdump -w`` writes).

Pure: bytes in, segments out. The format is libpcap's (pcap-savefile(5)):
a 24-byte file header (magic 0xa1b2c3d4 for microsecond, 0xa1b23c4d for
nanosecond timestamps, in the writer's byte order; link type at offset 20),
then per packet a 16-byte header (seconds, fraction, captured length,
original length) and the bytes. Ethernet (link type 1) and Linux cooked
captures (113, ``-i any``) are understood; IPv4 and IPv6, TCP only.

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

import ipaddress
import struct
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


def _ip_segment(t: float, data: bytes, off: int) -> Segment | None:
    version = data[off] >> 4
    if version == 4:
        ihl = (data[off] & 0x0F) * 4
        total = struct.unpack_from("!H", data, off + 2)[0]
        if data[off + 9] != 6:
            return None
        src = str(ipaddress.IPv4Address(data[off + 12:off + 16]))
        dst = str(ipaddress.IPv4Address(data[off + 16:off + 20]))
        tcp_off, ip_end = off + ihl, off + total
    elif version == 6:
        if data[off + 6] != 6:  # extension headers are not followed
            return None
        plen = struct.unpack_from("!H", data, off + 4)[0]
        src = str(ipaddress.IPv6Address(data[off + 8:off + 24]))
        dst = str(ipaddress.IPv6Address(data[off + 24:off + 40]))
        tcp_off, ip_end = off + 40, off + 40 + plen
    else:
        return None
    if len(data) < tcp_off + 20:
        return None
    sport, dport, seq, ack, doff, flags, window = struct.unpack_from("!HHIIBBH", data, tcp_off)
    hdr = (doff >> 4) * 4
    # The IP length, not the captured length: a short snaplen still tells
    # the payload size.
    length = max(0, ip_end - tcp_off - hdr)
    return Segment(t, src, sport, dst, dport, seq, ack, flags, window, length)


def read_segments(blob: bytes) -> list[Segment]:
    """Every TCP segment in a pcap file's bytes; a truncated last record
    (a capture still being written) is ignored."""
    if len(blob) < 24:
        return []
    magic_le = struct.unpack_from("<I", blob)[0]
    if magic_le in (0xA1B2C3D4, 0xA1B23C4D):
        endian = "<"
    elif struct.unpack_from(">I", blob)[0] in (0xA1B2C3D4, 0xA1B23C4D):
        endian = ">"
    else:
        raise ValueError("not a pcap file (pcapng is not supported: use tcpdump -w)")
    magic = struct.unpack_from(endian + "I", blob)[0]
    scale = 1e-9 if magic == 0xA1B23C4D else 1e-6
    linktype = struct.unpack_from(endian + "I", blob, 20)[0] & 0xFFFF
    out = []
    off = 24
    rec = struct.Struct(endian + "IIII")
    while off + 16 <= len(blob):
        sec, frac, caplen, _orig = rec.unpack_from(blob, off)
        off += 16
        if off + caplen > len(blob):
            break
        data = blob[off:off + caplen]
        off += caplen
        t = sec + frac * scale
        if linktype == 1:  # Ethernet, maybe one 802.1Q tag
            ethertype = struct.unpack_from("!H", data, 12)[0]
            l3 = 14
            if ethertype == 0x8100:
                ethertype = struct.unpack_from("!H", data, 16)[0]
                l3 = 18
        elif linktype == 113:  # Linux cooked (SLL)
            ethertype = struct.unpack_from("!H", data, 14)[0]
            l3 = 16
        elif linktype in (101, 12):  # raw IP
            ethertype = 0x0800 if data[0] >> 4 == 4 else 0x86DD
            l3 = 0
        else:
            continue
        if ethertype not in (0x0800, 0x86DD) or len(data) < l3 + 20:
            continue
        seg = _ip_segment(t, data, l3)
        if seg is not None:
            out.append(seg)
    return out
