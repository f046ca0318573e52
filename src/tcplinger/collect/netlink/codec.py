"""Pure sock_diag encode/decode: bytes in, numpy columns out, no I/O.

The decoder is the hot path of a snapshot (a million sockets are ~110 MB
of replies), so it never builds a Python object per socket:

1. **Message walk.** Every message of one dump reply carries the request's
   ``nlmsg_seq`` and our port id. The walk finds all 4-aligned words equal
   to that seq (one vectorised compare over the buffer), keeps those
   followed by the port id, and then *proves* the candidates are the
   ``nlmsg_len`` chain: the first is at 0, each next one is at
   ``start + NLMSG_ALIGN(len)``, the last ends the buffer. By induction
   that set is exactly the chain. If the proof fails (a message from
   another request, or address bytes that mimic a header) a plain loop
   walks the chain instead: correct, only slower.
2. **Fixed part.** A strided view puts an 88-byte record
   (nlmsghdr + inet_diag_msg, :data:`~.wire.DIAG_REPLY`) at every
   4-aligned offset of the buffer; fancy-indexing it with the message
   offsets gathers all fixed parts in one copy.
3. **Attributes.** Round *k* reads the *k*-th attribute header of every
   message still in play, picks SHUTDOWN (and INFO when asked), and
   advances; messages leave once they hold what is wanted or run out.
   Full sockets put SHUTDOWN first (inet_diag_msg_attrs_fill(),
   net/ipv4/inet_diag.c), so a dump without tcp_info takes one round.

Worked example, a dump request for CLOSE_WAIT sockets and one reply
(a timewait-type socket and the NLMSG_DONE that ends the dump):

>>> req = encode_dump_request(2, 1 << 8, seq=7)
>>> req.hex(" ", 4)
'48000000 14000103 07000000 00000000 02060000 00010000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000'
>>> tw = bytes.fromhex(
...     "58000000 1400 0200 07000000 2a000000"       # nlmsghdr: len 88, type 20, MULTI
...     "02 06 03 00  a4e6 1388"                     # AF_INET TIME_WAIT timer 3, 42214 -> 5000
...     "7f000001" + "00" * 12 + "7f000001" + "00" * 12 +
...     "00000000 01020000 00000000"                 # if, cookie 0x201
...     "b80b0000 00000000 00000000 00000000 00000000"  # expires 3000 ms
...     "14000000 0300 0200 07000000 2a000000 00000000")  # NLMSG_DONE, 0
>>> chunk = decode_dump(tw)
>>> chunk.done, chunk.error, len(chunk.table)
(True, None, 1)
>>> row = chunk.table.rows[0]
>>> int(row["state"]), int(row["sport"]), int(row["dport"]), int(row["cookie"]), bool(row["timewait"])
(6, 42214, 5000, 513, True)
>>> int(row["expires_ms"]), int(row["shutdown"])
(3000, -1)
"""

from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass

import numpy as np

from ...model.table import SOCKET_DTYPE, TCP_INFO_DTYPE, SocketTable
from . import wire
from .wire import (DIAG_REPLY, INET_DIAG_INFO, INET_DIAG_SHUTDOWN, NLMSG_DONE,
                   NLMSG_ERROR, SOCK_DIAG_BY_FAMILY, TCP_INFO_FIELD_END, TCP_INFO_WIRE)

_HDR = struct.Struct("=IHHII")
_ERR = struct.Struct("=i")
_FIXED = DIAG_REPLY.itemsize  # 88


class DecodeError(ValueError):
    """The bytes are not a sequence of whole netlink messages."""


@dataclass(frozen=True, eq=False)
class DumpChunk:
    """What one or more received datagrams decode to.

    ``done`` is True once NLMSG_DONE or NLMSG_ERROR ended the reply;
    ``error`` is the positive errno the kernel reported (NLMSG_ERROR, or a
    negative NLMSG_DONE payload), else None.
    """

    table: SocketTable
    done: bool
    error: int | None


# --- encode --------------------------------------------------------------

def _header(length: int, msg_type: int, flags: int, seq: int) -> bytes:
    return _HDR.pack(length, msg_type, flags, seq & 0xFFFFFFFF, 0)


def encode_dump_request(family: int, states_mask: int, *, tcp_info: bool = False,
                        seq: int = 1) -> bytes:
    """SOCK_DIAG_BY_FAMILY dump of ``family`` TCP sockets in ``states_mask``.

    ``states_mask`` is ``idiag_states`` (``1 << state``); the kernel
    filters by it, so asking for fewer states costs less.

    >>> len(encode_dump_request(10, 0xFFF, tcp_info=True))
    72
    """
    req = np.zeros(1, wire.INET_DIAG_REQ_V2)
    req["family"] = family
    req["protocol"] = wire.IPPROTO_TCP
    req["ext"] = wire.ext_bit(INET_DIAG_INFO) if tcp_info else 0
    req["states"] = states_mask & 0xFFFFFFFF
    body = req.tobytes()
    return _header(16 + len(body), SOCK_DIAG_BY_FAMILY,
                   wire.NLM_F_REQUEST | wire.NLM_F_DUMP, seq) + body


def _address_bytes(family: int, text: str) -> bytes:
    if family == socket.AF_INET:
        return socket.inet_pton(socket.AF_INET, text) + bytes(12)
    if family == socket.AF_INET6:
        return socket.inet_pton(socket.AF_INET6, text)
    raise ValueError(f"not an inet family: {family}")


def encode_exact_request(family: int, *, src: str, sport: int, dst: str, dport: int,
                         cookie: int, msg_type: int = SOCK_DIAG_BY_FAMILY,
                         states_mask: int = 0xFFFFFFFF, seq: int = 1,
                         tcp_info: bool = False) -> bytes:
    """One socket by local ``src:sport``, remote ``dst:dport`` and cookie.

    The same request shape serves an exact lookup (``msg_type`` 20, answered
    by one SOCK_DIAG_BY_FAMILY message or an NLMSG_ERROR) and SOCK_DESTROY
    (21; sent with NLM_F_ACK so that success is answered too, with an
    NLMSG_ERROR carrying 0). ``cookie`` :data:`~.wire.NO_COOKIE` skips the
    cookie check; a wrong cookie is answered with ESTALE
    (sock_diag_check_cookie(), net/core/sock_diag.c).

    >>> req = encode_exact_request(2, src="127.0.0.1", sport=5000, dst="127.0.0.1",
    ...                            dport=40000, cookie=0x1_0000_0002, msg_type=21)
    >>> _HDR.unpack_from(req)[:3], req[24:28].hex(), req[64:72].hex()
    ((72, 21, 5), '13889c40', '0200000001000000')
    """
    req = np.zeros(1, wire.INET_DIAG_REQ_V2)
    req["family"] = family
    req["protocol"] = wire.IPPROTO_TCP
    req["ext"] = wire.ext_bit(INET_DIAG_INFO) if tcp_info else 0
    req["states"] = states_mask & 0xFFFFFFFF
    req["sport"] = sport
    req["dport"] = dport
    req["src"] = np.void(_address_bytes(family, src))
    req["dst"] = np.void(_address_bytes(family, dst))
    req["cookie_lo"] = cookie & 0xFFFFFFFF
    req["cookie_hi"] = (cookie >> 32) & 0xFFFFFFFF
    body = req.tobytes()
    flags = wire.NLM_F_REQUEST
    if msg_type != SOCK_DIAG_BY_FAMILY:
        flags |= wire.NLM_F_ACK
    return _header(16 + len(body), msg_type, flags, seq) + body


# --- message walk --------------------------------------------------------

def _as_u8(data) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


def _scalar_starts(buf: np.ndarray) -> np.ndarray:
    """The nlmsg_len chain, one message at a time (the fallback)."""
    raw = buf.data
    n = buf.size
    out = []
    pos = 0
    while pos < n:
        if n - pos < 16:
            raise DecodeError(f"{n - pos} trailing bytes at offset {pos}")
        length = _HDR.unpack_from(raw, pos)[0]
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
    """Byte offsets of the messages in ``buf`` (uint8), in order.

    >>> two = _header(20, 3, 2, 9) + bytes(4) + _header(16, 1, 0, 9)
    >>> message_starts(_as_u8(two)).tolist()
    [0, 20]
    """
    n = buf.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n < 16 or n % 4:
        return _scalar_starts(buf)
    words = buf.view("=u4")
    # Word i can start a message only if word i+2 is the reply's seq.
    cand = np.flatnonzero(words[2:-1] == words[2])
    if _is_chain(words, cand, n):
        return cand * 4
    cand = cand[words[cand + 3] == words[3]]  # ... and word i+3 our port id
    if _is_chain(words, cand, n):
        return cand * 4
    # Not a single-request chain: walk it the slow way (still exact).
    return _scalar_starts(buf)


# --- decode: columns -------------------------------------------------------

#: Bytes gathered per message: nlmsghdr + inet_diag_msg (88) + the first
#: attribute's header and first payload word, where full sockets keep
#: SHUTDOWN (inet_diag_msg_attrs_fill() puts it first).
_ROW = _FIXED + 8
#: Messages per block: the gathered rows (~800 KB) stay in L2.
_BLOCK = 8192
_LITTLE = sys.byteorder == "little"


def _column(arr: np.ndarray, offset: int, dtype) -> np.ndarray:
    """A strided view of bytes ``offset..`` of every row of contiguous ``arr``."""
    return np.ndarray((arr.shape[0],), dtype=dtype, buffer=arr, offset=offset,
                      strides=(arr.strides[0],))


def _copy_plan():
    """(dst offset, dst dtype, src offset in the gathered row, src dtype).

    Byte runs that need no conversion and lie back to back in both layouts
    are merged into one void copy (saddr+daddr: 32 bytes; recv_q+send_q).
    """
    src = {
        "family": 16, "state": 17, "timer": 18, "retrans": 19,
        "sport": 20, "dport": 22, "saddr": 24, "daddr": 40,
        "expires_ms": 68, "recv_q": 72, "send_q": 76, "uid": 80, "inode": 84,
    }
    plan = []
    for name in SOCKET_DTYPE.names:
        if name not in src:
            continue
        dst_dtype, dst_off = SOCKET_DTYPE.fields[name][:2]
        src_dtype = DIAG_REPLY.fields[{"expires_ms": "expires", "recv_q": "rqueue",
                                       "send_q": "wqueue", "saddr": "src",
                                       "daddr": "dst"}.get(name, name)][0]
        plan.append([dst_off, dst_dtype, src[name], src_dtype])
    merged = []
    for item in plan:
        prev = merged[-1] if merged else None
        raw = item[1] == item[3] or item[1].kind == "V"
        if (prev and raw and (prev[1] == prev[3] or prev[1].kind == "V")
                and prev[0] + prev[1].itemsize == item[0]
                and prev[2] + prev[1].itemsize == item[2]):
            size = prev[1].itemsize + item[1].itemsize
            prev[1] = prev[3] = np.dtype(f"V{size}")
        else:
            merged.append(list(item))
    return [tuple(m) for m in merged]


_PLAN = _copy_plan()
_COOKIE_OFF = SOCKET_DTYPE.fields["cookie"][1]
_SHUT_OFF = SOCKET_DTYPE.fields["shutdown"][1]
_TW_OFF = SOCKET_DTYPE.fields["timewait"][1]


class RowSink:
    """Growable output for decoded rows (and tcp_info), filled block by block.

    ``capacity`` is a hint; ``np.empty`` leaves unused capacity untouched
    (no page is faulted in), so a generous hint costs address space only.
    """

    def __init__(self, capacity: int = 0, *, tcp_info: bool = False):
        self.n = 0
        self.rows = np.empty(max(capacity, 16), SOCKET_DTYPE)
        self.info = np.empty(len(self.rows), TCP_INFO_DTYPE) if tcp_info else None

    def reserve(self, k: int):
        need = self.n + k
        if need > len(self.rows):
            size = max(need, 2 * len(self.rows))
            rows = np.empty(size, SOCKET_DTYPE)
            rows[:self.n] = self.rows[:self.n]
            self.rows = rows
            if self.info is not None:
                info = np.empty(size, TCP_INFO_DTYPE)
                info[:self.n] = self.info[:self.n]
                self.info = info
        start, self.n = self.n, need
        info = None if self.info is None else self.info[start:need]
        return self.rows[start:need], info

    def table(self) -> SocketTable:
        info = None if self.info is None else self.info[:self.n]
        return SocketTable(self.rows[:self.n], info)


def _gather(buf: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The first :data:`_ROW` bytes of every message, as (n, _ROW) uint8.

    A view puts a row at every 4-aligned offset; one fancy index copies
    them. Messages too close to the end of ``buf`` for a full row are
    read from a small zero-padded copy of the tail instead.
    """
    count = (buf.size - _ROW) // 4 + 1
    view = np.ndarray((max(count, 0), _ROW), np.uint8, buffer=buf, strides=(4, 1))
    idx = starts >> 2
    if not idx.size or idx[-1] < count:
        return view[idx]
    cut = int(np.searchsorted(idx, count))
    tail_from = int(starts[cut])
    tail = np.zeros(buf.size - tail_from + _ROW, np.uint8)
    tail[:buf.size - tail_from] = buf[tail_from:]
    tview = np.ndarray(((tail.size - _ROW) // 4 + 1, _ROW), np.uint8, buffer=tail, strides=(4, 1))
    return np.concatenate([view[idx[:cut]], tview[(starts[cut:] - tail_from) >> 2]])


def decode_into(buf: np.ndarray, nbytes: int, sink: RowSink, *,
                tcp_info: bool = False) -> tuple[bool, int | None]:
    """Decode the messages in ``buf[:nbytes]`` into ``sink``.

    ``buf`` (uint8) may extend past ``nbytes``; the bytes there are only
    ever read as padding. Returns (done, errno or None).
    """
    if nbytes % 4:
        raise DecodeError(f"{nbytes} bytes: netlink messages are 4-byte aligned")
    data = buf[:nbytes]
    starts = message_starts(data)
    halves = data.view("=u2")
    done, error = False, None
    for lo in range(0, starts.size, _BLOCK):
        block = starts[lo:lo + _BLOCK]
        rows = _gather(data if buf.size == nbytes else buf, block)
        lens = _column(rows, 0, "=u4")
        types = _column(rows, 4, "=u2")
        sock = types == SOCK_DIAG_BY_FAMILY
        if not sock.all():
            other = np.flatnonzero(~sock)
            for i in other:
                if types[i] in (NLMSG_DONE, NLMSG_ERROR):
                    done = True
                    if lens[i] >= 20:
                        err = -int(_column(rows, 16, "=i4")[i])
                        if err > 0 and error is None:
                            error = err
            keep = np.flatnonzero(sock)
            rows, lens, block = rows[keep], lens[keep], block[keep]
        if not rows.size:
            continue
        if lens.min() < _FIXED:
            bad = int(block[np.argmin(lens)])
            raise DecodeError(f"inet_diag message at offset {bad} shorter than {_FIXED} bytes")
        out, info = sink.reserve(rows.shape[0])
        _fill_rows(out, rows, lens)
        if tcp_info or (out["shutdown"] < 0).any():
            _walk_attributes(data, halves, block, lens.astype(np.int64), out, info)
    return done, error


def _fill_rows(out: np.ndarray, rows: np.ndarray, lens: np.ndarray) -> None:
    for dst_off, dst_dtype, src_off, src_dtype in _PLAN:
        _column(out, dst_off, dst_dtype)[...] = _column(rows, src_off, src_dtype)
    if _LITTLE:
        # idiag_cookie is two host-order u32 halves, low first: on a
        # little-endian host that is exactly a u64.
        _column(out, _COOKIE_OFF, "<u8")[...] = _column(rows, 60, "<u8")
    else:
        lo = _column(rows, 60, "=u4").astype(np.uint64)
        hi = _column(rows, 64, "=u4").astype(np.uint64)
        _column(out, _COOKIE_OFF, "=u8")[...] = lo | (hi << np.uint64(32))
    # Timewait-type minisockets (TIME_WAIT, and orphaned FIN_WAIT2 whose
    # fin timeout is <= 60 s) are reported by the timewait fill function
    # alone, the only one to set idiag_timer = 3; full sockets report
    # 0/1/2/4 (inet_sk_diag_fill(), net/ipv4/inet_diag.c). Attributes do not
    # tell them apart: on 6.18 a CAP_NET_ADMIN caller gets INET_DIAG_MARK for
    # timewait-type sockets too, and request sockets carry no SHUTDOWN either.
    _column(out, _TW_OFF, "?")[...] = _column(rows, 18, "u1") == wire.TIMER_TIMEWAIT
    # Full sockets put SHUTDOWN first: read it straight from the row.
    nla_len = _column(rows, 88, "=u2")
    nla_type = _column(rows, 90, "=u2") & wire.NLA_TYPE_MASK
    first = ((nla_type == INET_DIAG_SHUTDOWN) & (nla_len >= 5) & (lens >= _FIXED + 8)
             & (nla_len <= lens - _FIXED))
    _column(out, _SHUT_OFF, "i1")[...] = np.where(first, _column(rows, 92, "i1"), -1)


def _walk_attributes(data, halves, starts, lens, out, info):
    """SHUTDOWN (where the row did not show it first) and INFO, by rounds.

    Round *k* reads the *k*-th attribute header of every message still in
    play. A message leaves when it holds what is wanted, runs out of
    attributes, or has a malformed one (as nla_ok() would stop).
    """
    shutdown = out["shutdown"]
    want_info = info is not None
    if want_info:
        info.view(np.uint8)[...] = 0
        info_off = np.zeros(starts.size, np.int64)
        info_len = np.zeros(starts.size, np.int64)
    pos = starts + _FIXED
    end = starts + lens
    need = (shutdown < 0)
    if want_info:
        need = need | True
    active = np.flatnonzero(need & (pos + 4 <= end))
    while active.size:
        p = pos[active]
        e = end[active]
        nla_len = halves[p >> 1].astype(np.int64)
        nla_type = halves[(p >> 1) + 1] & wire.NLA_TYPE_MASK
        ok = (nla_len >= 4) & (p + nla_len <= e)
        hit = ok & (nla_type == INET_DIAG_SHUTDOWN) & (nla_len >= 5)
        if hit.any():
            shutdown[active[hit]] = data[p[hit] + 4].view(np.int8)
        finished = shutdown[active] >= 0
        if want_info:
            hit = ok & (nla_type == INET_DIAG_INFO)
            if hit.any():
                info_off[active[hit]] = p[hit] + 4
                info_len[active[hit]] = nla_len[hit] - 4
            finished &= info_len[active] > 0
        nxt = p + ((nla_len + 3) & ~3)
        pos[active] = nxt
        active = active[ok & ~finished & (nxt + 4 <= e)]
    if want_info:
        _decode_info(data, info_off, info_len, info)


def _decode_info(data, info_off, info_len, out):
    have = np.flatnonzero(info_len > 0)
    if not have.size:
        return
    off = info_off[have]
    need = int(off.max()) + TCP_INFO_WIRE.itemsize
    if need > data.size:
        # A short tcp_info at the very end: pad so the 104-byte view fits.
        data = np.concatenate([data, np.zeros(need - data.size, np.uint8)])
    count = (data.size - TCP_INFO_WIRE.itemsize) // 4 + 1
    raw = np.ndarray((count, TCP_INFO_WIRE.itemsize), np.uint8, buffer=data,
                     strides=(4, 1))[off >> 2].view(TCP_INFO_WIRE)[:, 0]
    length = info_len[have]
    out["present"][have] = True
    for name in TCP_INFO_WIRE.names:
        col = raw[name]
        covered = length >= TCP_INFO_FIELD_END[name]
        if not covered.all():
            col = np.where(covered, col, 0)
        out[name][have] = col


def decode_dump(data, *, tcp_info: bool = False) -> DumpChunk:
    """Decode whole reply datagrams (one or several, back to back).

    Sockets come out as a :class:`~tcplinger.model.table.SocketTable`;
    with ``tcp_info`` its ``info`` column set is filled (``present`` False
    for sockets without an INFO attribute, e.g. timewait-type ones).
    """
    buf = _as_u8(data)
    if buf.size % 4:
        # Messages are NLMSG_ALIGNed; a short tail is malformed framing.
        buf = np.concatenate([buf, np.zeros(4 - buf.size % 4, np.uint8)])
    sink = RowSink(buf.size // _FIXED, tcp_info=tcp_info)
    done, error = decode_into(buf, buf.size, sink, tcp_info=tcp_info)
    table = sink.table()
    if table.rows.base is not None and len(table.rows) < len(sink.rows) // 2:
        table = SocketTable(table.rows.copy(), None if table.info is None else table.info.copy())
    return DumpChunk(table, done, error)


def decode_ack(data) -> int:
    """errno of the NLMSG_ERROR in ``data`` (0: success).

    >>> decode_ack(_header(36, 2, 0, 1) + struct.pack("=i", -95) + bytes(16))
    95
    >>> decode_ack(_header(36, 2, 0x100, 1) + struct.pack("=i", 0) + bytes(16))
    0
    """
    buf = _as_u8(data)
    for start in _scalar_starts(buf):
        length, msg_type = _HDR.unpack_from(buf.data, int(start))[:2]
        if msg_type == NLMSG_ERROR:
            if length < 20:
                raise DecodeError("NLMSG_ERROR without an error code")
            return -_ERR.unpack_from(buf.data, int(start) + 16)[0]
    raise DecodeError("no NLMSG_ERROR in the reply")
