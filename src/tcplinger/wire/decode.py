"""Link, IP and TCP headers of a block of records, decoded at once with
numpy (one gather per field for the whole block, no per-packet Python).

Link types (https://www.tcpdump.org/linktypes.html): 1 Ethernet, with any
number up to three of 802.1Q/802.1ad/QinQ tags (0x8100, 0x88a8, 0x9100)
and an MPLS label stack (0x8847/0x8848; the payload's IP version is read
from its first nibble); 113 Linux cooked (SLL, ``tcpdump -i any``:
protocol at offset 14, 16-byte header); 276 SLL2 (protocol at offset 0,
20-byte header); 101, 12 and 14 raw IP; 228 IPv4; 229 IPv6; 0 and 108
BSD loopback (a 4-byte address family). IPv6 extension headers (hop-by-hop
0, routing 43, fragment 44, AH 51, destination options 60) are skipped.
IPv4 fragments after the first carry no TCP header and are ignored.

A TCP segment's payload size comes from the IP length, not from the
captured length, so a short snaplen still counts bytes right; a record
too short to hold the TCP header is counted as ``cut``. An IP length of
0 (TSO on the capturing host) falls back to the captured length.

>>> import struct
>>> tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1000, 0, 5 << 4, 0x02, 64240, 0, 0)
>>> ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, bytes([10, 0, 0, 1]),
...                  bytes([10, 0, 0, 2]))
>>> frame = bytes(12) + b"\\x81\\x00\\x00\\x05" + b"\\x08\\x00" + ip + tcp  # one VLAN tag
>>> data = np.frombuffer(frame + bytes(128), np.uint8)
>>> p = decode(data, np.array([0]), np.array([len(frame)]), np.array([1]), np.array([1.5])).packets
>>> p.sport.tolist(), p.dport.tolist(), p.flags.tolist(), p.plen.tolist(), p.ttl.tolist()
([40000], [80], [2], [0], [64])
>>> format_addr(int(p.src_hi[0]), int(p.src_lo[0]))
'10.0.0.1'
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import checksum

SUPPORTED_LINKTYPES = frozenset({0, 1, 12, 14, 101, 108, 113, 228, 229, 276})
#: tcpdump.org's LINKTYPE_ names (link-layer header types), as shown to users
LINKTYPE_NAMES = {0: "NULL", 1: "ETHERNET", 12: "RAW", 14: "RAW", 101: "RAW", 108: "LOOP",
                  113: "LINUX_SLL", 228: "IPV4", 229: "IPV6", 276: "LINUX_SLL2"}
_VLAN = (0x8100, 0x88A8, 0x9100)
_MPLS = (0x8847, 0x8848)
_V4MAPPED = 0xFFFF << 32


@dataclass(frozen=True)
class Packets:
    """TCP segments of one block (only the records that hold one)."""

    ts: np.ndarray  # float64
    family: np.ndarray  # 4 or 6
    src_hi: np.ndarray  # uint64: IPv6 address halves; IPv4 as ::ffff:a.b.c.d
    src_lo: np.ndarray
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    sport: np.ndarray  # int64
    dport: np.ndarray
    seq: np.ndarray  # int64 (u32 values)
    ack: np.ndarray
    flags: np.ndarray  # int64: FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32, ECE 64, CWR 128
    win: np.ndarray
    plen: np.ndarray  # payload bytes
    iplen: np.ndarray  # IP bytes (Zeek's *_ip_bytes)
    ttl: np.ndarray  # IPv4 TTL or IPv6 hop limit
    interface: np.ndarray
    #: the TCP checksum is wrong (only when verified: decode(checksums=True))
    bad_sum: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, mask) -> "Packets":
        return Packets(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


@dataclass(frozen=True)
class Decoded:
    packets: Packets
    other: int  # records that are not TCP over IP (ARP, UDP, ...)
    cut: int  # TCP/IP records whose headers the snap length cut
    unsupported: int  # records of a link type not understood


def _u8(d, i):
    return d[i].astype(np.int64)


def _be(d, i, width: int, dtype: str) -> np.ndarray:
    """Big-endian integers of ``width`` bytes at each of ``i``: one gather of
    the bytes, viewed in network order (a gather per byte costs 3x more)."""
    return d[np.asarray(i)[:, None] + np.arange(width)].view(dtype).reshape(-1)


def _be16(d, i):
    return _be(d, i, 2, ">u2").astype(np.int64)


def _be32(d, i):
    return _be(d, i, 4, ">u4").astype(np.int64)


def _be64(d, i):
    return _be(d, i, 8, ">u8").astype(np.uint64)


def _link(d, start, caplen, linktype):
    """Offset of the IP header and its ethertype (0x0800/0x86DD, else other)."""
    n = len(start)
    l3 = start.copy()
    et = np.zeros(n, np.int64)
    eth = linktype == 1
    if eth.any():
        et[eth] = _be16(d, start[eth] + 12)
        l3[eth] = start[eth] + 14
        for _ in range(3):
            tag = eth & np.isin(et, _VLAN)
            if not tag.any():
                break
            et[tag] = _be16(d, l3[tag] + 2)
            l3[tag] += 4
        mpls = eth & np.isin(et, _MPLS)
        for _ in range(8):
            if not mpls.any():
                break
            bottom = (d[l3[mpls] + 2] & 1).astype(bool)
            l3[mpls] += 4
            done = np.zeros(n, bool)
            done[np.flatnonzero(mpls)[bottom]] = True
            et[done] = -1  # decided by the version nibble below
            mpls &= ~done
        et[mpls] = 0  # a label stack longer than 8: give up
    sll = linktype == 113
    et[sll] = _be16(d, start[sll] + 14)
    l3[sll] = start[sll] + 16
    sll2 = linktype == 276
    et[sll2] = _be16(d, start[sll2])
    l3[sll2] = start[sll2] + 20
    loop = (linktype == 0) | (linktype == 108)
    if loop.any():
        fam = d[start[loop]].astype(np.int64) | d[start[loop] + 3]  # either byte order
        et[loop] = np.where(fam == 2, 0x0800, np.where(np.isin(fam, (24, 28, 30)), 0x86DD, 0))
        l3[loop] = start[loop] + 4
    raw = np.isin(linktype, (12, 14, 101, 228, 229))
    et[raw] = -1
    guess = et == -1
    if guess.any():
        ver = d[l3[guess]] >> 4
        et[guess] = np.where(ver == 4, 0x0800, np.where(ver == 6, 0x86DD, 0))
    et[l3 > start + caplen] = 0
    return l3, et


def _ipv6_chain(d, l4, nxt, end):
    """Skip IPv6 extension headers (at most four of them)."""
    for _ in range(4):
        ext = np.isin(nxt, (0, 43, 60, 44, 51)) & (l4 + 8 <= end)
        if not ext.any():
            break
        hlen = np.where(nxt == 44, 8, np.where(nxt == 51, (_u8(d, l4 + 1) + 2) * 4,
                                              (_u8(d, l4 + 1) + 1) * 8))
        new_nxt = _u8(d, l4)
        nxt = np.where(ext, new_nxt, nxt)
        l4 = np.where(ext, l4 + hlen, l4)
    return l4, nxt


def decode(d: np.ndarray, start, caplen, linktype, ts, interface=None,
           checksums: bool = False) -> Decoded:
    """Decode a block. With arrays from :class:`~.pcapfile.Block`; returns
    :class:`Decoded`; ``checksums``: verify TCP checksums (wire/checksum.py)."""
    return _decode(d, start, caplen, linktype, ts,
                   np.zeros(len(start), np.int64) if interface is None else interface,
                   checksums)


def _decode(d, start, caplen, linktype, ts, interface, checksums) -> Decoded:
    supported = np.isin(linktype, list(SUPPORTED_LINKTYPES))
    unsupported = int((~supported).sum())
    end = start + caplen
    l3, et = _link(d, start, caplen, linktype)
    et[~supported] = 0
    v4 = (et == 0x0800) & (l3 + 20 <= end) & ((d[np.minimum(l3, len(d) - 1)] >> 4) == 4)
    v6 = (et == 0x86DD) & (l3 + 40 <= end) & ((d[np.minimum(l3, len(d) - 1)] >> 4) == 6)
    l3c = np.where(v4 | v6, l3, 0)  # harmless index where not IP
    ihl = (_u8(d, l3c) & 0x0F) * 4
    proto4 = _u8(d, l3c + 9)
    frag = _be16(d, l3c + 6) & 0x1FFF
    total4 = _be16(d, l3c + 2)
    v4 &= (ihl >= 20) & (frag == 0)
    l4 = np.where(v4, l3c + ihl, l3c + 40)
    nxt = np.where(v6, _u8(d, l3c + 6), proto4)
    if v6.any():
        l4v6, nxtv6 = _ipv6_chain(d, l4[v6], nxt[v6], end[v6])
        l4[v6], nxt[v6] = l4v6, nxtv6
    ip_total = np.where(v4, total4, _be16(d, l3c + 4) + 40)
    ip_total = np.where((v6 & (ip_total == 40)) | (v4 & (total4 == 0)), end - l3c,
                        ip_total)  # a length of 0: TSO on the capturing host
    tcp = (v4 | v6) & (nxt == 6)
    whole = tcp & (l4 + 20 <= end)
    cut = int((tcp & ~whole).sum())
    other = int(len(start) - unsupported - tcp.sum())
    idx = np.flatnonzero(whole)
    l3w, l4w = l3c[idx], l4[idx]
    is4 = v4[idx]
    src_hi, src_lo, dst_hi, dst_lo = _addresses(d, l3w, is4)
    doff = (_u8(d, l4w + 12) >> 4) * 4
    payload = ip_total[idx] - (l4w - l3w) - doff
    pk = Packets(ts[idx], np.where(is4, 4, 6), src_hi, src_lo, dst_hi, dst_lo,
                 _be16(d, l4w), _be16(d, l4w + 2), _be32(d, l4w + 4), _be32(d, l4w + 8),
                 _u8(d, l4w + 13), _be16(d, l4w + 14), np.maximum(payload, 0),
                 ip_total[idx], np.where(is4, _u8(d, l3w + 8), _u8(d, l3w + 7)),
                 interface[idx],
                 checksum.bad(d, l3w, l4w, ip_total[idx], end[idx], is4) if checksums
                 else np.zeros(len(idx), bool))
    return Decoded(pk, other, cut, unsupported)


def _addresses(d, l3, is4):
    """Source and destination as (hi, lo) uint64 halves; IPv4 as ::ffff:a.b.c.d."""
    n = len(l3)
    v4 = _be(d, l3 + 12, 8, ">u4").reshape(n, 2).astype(np.uint64) | np.uint64(_V4MAPPED)
    out = [np.zeros(n, np.uint64), v4[:, 0].copy(), np.zeros(n, np.uint64), v4[:, 1].copy()]
    v6 = np.flatnonzero(~is4)
    if len(v6):  # only IPv6 packets pay for the 16-byte addresses
        a = _be(d, l3[v6] + 8, 32, ">u8").reshape(len(v6), 4)
        for k in range(4):
            out[k][v6] = a[:, k]
    return out


@lru_cache(maxsize=4096)
def format_addr(hi: int, lo: int) -> str:
    """An address from its two halves (IPv4 is held as ::ffff:a.b.c.d).

    >>> format_addr(0, (0xFFFF << 32) | 0x7F000001), format_addr(0, 1)
    ('127.0.0.1', '::1')
    """
    if hi == 0 and lo >> 32 == 0xFFFF:
        return str(ipaddress.IPv4Address(lo & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address((hi << 64) | lo))


def parse_addr(text: str) -> tuple[int, int]:
    """The two halves of an address, as :func:`format_addr` reads them.

    >>> parse_addr("127.0.0.1") == (0, (0xFFFF << 32) | 0x7F000001)
    True
    """
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return 0, _V4MAPPED | int(ip)
    v = int(ip)
    return v >> 64, v & 0xFFFFFFFFFFFFFFFF
