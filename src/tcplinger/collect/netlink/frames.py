"""Netlink framing: where the messages in a buffer of datagrams start.

Every message of one sock_diag reply carries the request's ``nlmsg_seq``
and our port id. :func:`message_starts` finds every 4-aligned word equal
to that seq (one vectorised compare over the buffer) and then *proves*
that the candidates are the ``nlmsg_len`` chain: the first is at 0, each
next one at ``start + NLMSG_ALIGN(len)``, the last ends the buffer. By
induction that set is exactly the chain. Words that merely look like a
header (an address or attribute holding the seq) break the proof; then the
port id narrows the candidates, and if that fails too a plain loop walks
the chain: always exact, only slower.

>>> import struct
>>> hdr = struct.Struct("=IHHII")
>>> two = hdr.pack(20, 3, 2, 9, 0) + bytes(4) + hdr.pack(16, 1, 0, 9, 0)
>>> message_starts(as_u8(two)).tolist(), scalar_starts(as_u8(two)).tolist()
([0, 20], [0, 20])
"""

from __future__ import annotations

import struct

import numpy as np

HDR = struct.Struct("=IHHII")  # struct nlmsghdr, host order


class DecodeError(ValueError):
    """The bytes are not a sequence of whole netlink messages."""


def as_u8(data) -> np.ndarray:
    """A read-only uint8 view of bytes, bytearray or memoryview."""
    return np.frombuffer(data, dtype=np.uint8)


def scalar_starts(buf: np.ndarray) -> np.ndarray:
    """The nlmsg_len chain, one message at a time (the fallback)."""
    raw = buf.data
    n = buf.size
    out = []
    pos = 0
    while pos < n:
        if n - pos < 16:
            raise DecodeError(f"{n - pos} trailing bytes at offset {pos}")
        length = HDR.unpack_from(raw, pos)[0]
        if length < 16 or pos + length > n:
            raise DecodeError(f"nlmsg_len {length} at offset {pos} overruns {n} bytes")
        out.append(pos)
        pos += (length + 3) & ~3
    return np.asarray(out, dtype=np.int64)


def _is_chain(words: np.ndarray, cand: np.ndarray, nbytes: int) -> bool:
    if not cand.size or cand[0] != 0:
        return False
    lens = words[cand].astype(np.int64)
    if lens.min() < 16:
        return False
    nexts = cand + ((lens + 3) >> 2)
    return bool(nexts[-1] * 4 == nbytes and (cand[1:] == nexts[:-1]).all())


def message_starts(buf: np.ndarray) -> np.ndarray:
    """Byte offsets of the messages in ``buf`` (uint8), in order."""
    n = buf.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n < 16 or n % 4:
        return scalar_starts(buf)
    words = buf.view("=u4")
    # Word i can start a message only if word i+2 is the reply's seq.
    cand = np.flatnonzero(words[2:-1] == words[2])
    if _is_chain(words, cand, n):
        return cand * 4
    cand = cand[words[cand + 3] == words[3]]  # ... and word i+3 our port id
    if _is_chain(words, cand, n):
        return cand * 4
    # Not a single-request chain: walk it the slow way (still exact).
    return scalar_starts(buf)
