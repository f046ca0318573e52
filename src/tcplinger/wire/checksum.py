"""TCP checksums of a block of segments, verified at once with numpy
(RFC 793 section 3.1, RFC 1071; IPv6's pseudo-header: RFC 8200 section
8.1), for Zeek's history letter ``C`` (``tcplinger pcap --checksums``,
what ``zeek -r`` does without ``-C``).

The ones' complement sum of a segment is the sum of its 16-bit big-endian
words: the bytes at an even offset from the segment's start are the high
halves, those at an odd offset the low halves (an odd last byte is padded
with zero, so it is a high half too). With running sums of the block's
bytes at even and at odd positions, every segment's two sums are two
differences each, whatever its length; then the pseudo-header (source,
destination, protocol 6, TCP length) is added and the sum folded to 16
bits. A segment whose checksum field is right sums to 0xFFFF.

A segment the snap length cut cannot be verified and counts as good (as
Zeek: ``caplen >= len``). Captures taken on the sending Linux host carry
unfilled checksums (offload: the NIC or, on veth and loopback, nobody
fills them), which is why verifying is not the default.

A worked example, a SYN from 10.0.0.1:40000 to
10.0.0.2:80 with its checksum filled in, then one byte flipped:

>>> import struct
>>> ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, bytes([10, 0, 0, 1]),
...                  bytes([10, 0, 0, 2]))
>>> tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1000, 0, 5 << 4, 0x02, 64240, 0x0077, 0)
>>> d = np.frombuffer(ip + tcp, np.uint8)
>>> one = dict(l3=np.array([0]), l4=np.array([20]), ip_total=np.array([40]),
...            end=np.array([40]), is4=np.array([True]))
>>> bad(d, **one).tolist()
[False]
>>> bad(np.frombuffer(ip + tcp[:-1] + b"\\x01", np.uint8), **one).tolist()
[True]
"""

from __future__ import annotations

import numpy as np


def _words(d: np.ndarray, at: np.ndarray, count: int) -> np.ndarray:
    """Sum of ``count`` 16-bit big-endian words from each of ``at``."""
    if not len(at):
        return np.zeros(0, np.int64)
    b = d[at[:, None] + np.arange(2 * count)].astype(np.int64).reshape(len(at), count, 2)
    return (b[:, :, 0] * 256 + b[:, :, 1]).sum(axis=1)


def bad(d: np.ndarray, l3, l4, ip_total, end, is4) -> np.ndarray:
    """Per segment (IP header at ``l3``, TCP header at ``l4``, ``ip_total``
    IP bytes, the record ending at ``end``): whether its checksum is wrong.
    Segments not wholly captured are not judged (False)."""
    n = len(l3)
    out = np.zeros(n, bool)
    seg = ip_total - (l4 - l3)  # TCP header and payload
    whole = (seg >= 20) & (l4 + seg <= end)
    idx = np.flatnonzero(whole)
    if not len(idx):
        return out
    s, e = l4[idx], l4[idx] + seg[idx]
    m = (len(d) + 1) // 2
    pair = np.zeros(2 * m, np.uint8)
    pair[:len(d)] = d
    # running sums of the bytes at even and at odd positions (each fits in
    # uint32: 4 Mi bytes of 255 at most per block half)
    pe = np.concatenate(([0], np.cumsum(pair[0::2], dtype=np.uint32))).astype(np.int64)
    po = np.concatenate(([0], np.cumsum(pair[1::2], dtype=np.uint32))).astype(np.int64)
    even = pe[(e + 1) // 2] - pe[(s + 1) // 2]
    odd = po[e // 2] - po[s // 2]
    s_even = s % 2 == 0
    total = np.where(s_even, even, odd) * 256 + np.where(s_even, odd, even)
    v4 = is4[idx]
    pseudo = np.zeros(len(idx), np.int64)
    if v4.any():
        pseudo[v4] = _words(d, l3[idx][v4] + 12, 4)
    if (~v4).any():
        pseudo[~v4] = _words(d, l3[idx][~v4] + 8, 16)
    ln = seg[idx]
    total += pseudo + 6 + (ln >> 16) + (ln & 0xFFFF)
    for _ in range(3):
        total = (total & 0xFFFF) + (total >> 16)
    out[idx] = total != 0xFFFF
    return out
