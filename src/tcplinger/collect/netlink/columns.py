"""Vectorised decoding of inet_diag messages into a SocketTable.

Called once per batch of received datagrams (dump.py) or on a whole
buffer (codec.decode_dump). It never builds a Python object per socket;
per block of :data:`BLOCK` messages it does:

1. **Gather.** A strided view puts a :data:`ROW`-byte row (nlmsghdr,
   inet_diag_msg, and the first attribute's header and payload word) at
   every 4-aligned offset of the buffer; fancy-indexing it with the message
   offsets copies all rows at once.
2. **Columns.** A copy plan moves each field from the gathered rows into
   the packed :data:`~tcplinger.model.table.SOCKET_DTYPE` rows of the
   output, merging byte runs that need no conversion (addresses, queues)
   into one copy and byte-swapping the big-endian ports on the way.
3. **SHUTDOWN.** Full sockets put it first (inet_diag_msg_attrs_fill(),
   net/ipv4/inet_diag.c), so it is read straight from the gathered row.
4. **Attribute rounds** only where needed (tcp_info, or a message whose
   first attribute was not SHUTDOWN): round *k* reads the *k*-th attribute
   header of every message still in play, across all of them at once.
"""

from __future__ import annotations

import sys

import numpy as np

from ...model.table import SOCKET_DTYPE, TCP_INFO_DTYPE, SocketTable
from . import wire
from .frames import DecodeError, message_starts
from .wire import (DIAG_REPLY, INET_DIAG_INFO, INET_DIAG_SHUTDOWN, NLMSG_DONE, NLMSG_ERROR,
                   SOCK_DIAG_BY_FAMILY, TCP_INFO_FIELD_END, TCP_INFO_WIRE, TCPDIAG_GETSOCK)

FIXED = DIAG_REPLY.itemsize  # 88: nlmsghdr + inet_diag_msg
#: Bytes gathered per message: nlmsghdr + inet_diag_msg (88) + the first
#: attribute's header and first payload word, where full sockets keep
#: SHUTDOWN (inet_diag_msg_attrs_fill() puts it first).
ROW = FIXED + 8
#: Messages per block: the gathered rows (~800 KB) stay in L2.
BLOCK = 8192
_LITTLE = sys.byteorder == "little"


def _column(arr: np.ndarray, offset: int, dtype) -> np.ndarray:
    """A strided view of bytes ``offset..`` of every row of contiguous ``arr``."""
    return np.ndarray((arr.shape[0],), dtype=dtype, buffer=arr, offset=offset,
                      strides=(arr.strides[0],))


#: SOCKET_DTYPE column -> DIAG_REPLY field it is copied from.
_SOURCE = {
    "family": "family", "state": "state", "timer": "timer", "retrans": "retrans",
    "sport": "sport", "dport": "dport", "expires_ms": "expires", "uid": "uid",
    "inode": "inode", "recv_q": "rqueue", "send_q": "wqueue", "saddr": "src", "daddr": "dst",
}


def _copy_plan():
    """(dst offset, dst dtype, src offset in the gathered row, src dtype).

    Byte runs that need no conversion and lie back to back in both layouts
    are merged into one void copy (family..retrans, saddr+daddr,
    recv_q+send_q), which numpy moves in one strided loop.

    >>> [(dst, str(dt)) for dst, dt, _, _ in _copy_plan()][:3]
    [(0, '|V4'), (6, 'uint16'), (8, 'uint16')]
    """
    plan = []
    for name in SOCKET_DTYPE.names:
        if name not in _SOURCE:
            continue  # timewait, shutdown, cookie: computed in _fill_rows
        dst_dtype, dst_off = SOCKET_DTYPE.fields[name][:2]
        src_dtype, src_off = DIAG_REPLY.fields[_SOURCE[name]][:2]
        plan.append([dst_off, dst_dtype, src_off, src_dtype])
    merged: list[list] = []
    for item in plan:
        prev = merged[-1] if merged else None
        if (prev and _raw(item) and _raw(prev)
                and prev[0] + prev[1].itemsize == item[0]
                and prev[2] + prev[1].itemsize == item[2]):
            prev[1] = prev[3] = np.dtype(f"V{prev[1].itemsize + item[1].itemsize}")
        else:
            merged.append(list(item))
    return [tuple(m) for m in merged]


def _raw(item) -> bool:
    """Same bytes on both sides: no cast, no byte swap."""
    return item[1] == item[3] or (item[1].kind == "V" and item[3].kind == "V")


_PLAN = _copy_plan()
_COOKIE_OFF = SOCKET_DTYPE.fields["cookie"][1]
_SHUT_OFF = SOCKET_DTYPE.fields["shutdown"][1]
_TW_OFF = SOCKET_DTYPE.fields["timewait"][1]


def _grow(arr: np.ndarray, used: int, size: int, *, zeroed: bool = False) -> np.ndarray:
    """A larger copy of a structured array's first ``used`` rows, copied as
    bytes: numpy copies structured arrays field by field, ~10x slower.
    ``zeroed``: the rows after them are zeros (else undefined)."""
    out = (np.zeros if zeroed else np.empty)(size, arr.dtype)
    out.view(np.uint8)[:used * arr.dtype.itemsize] = arr[:used].view(np.uint8).reshape(-1)
    return out


class RowSink:
    """Growable output for decoded rows (and tcp_info), filled block by block.

    ``capacity`` may be generous: ``np.empty`` maps the memory without
    touching it, so rows never written cost address space, not RAM (and no
    page faults). :meth:`finish` hands the rows over without a copy unless
    less than a quarter of the capacity was used.

    tcp_info starts zeroed (``present`` False) and is written only for rows
    that come with it: ``np.zeros`` of a large array is a fresh anonymous
    mapping (calloc), whose pages are the kernel's zero page until written,
    so the tcp_info of rows dumped without it costs no RAM (1M rows of which
    700k had none: 71 MB of tcp_info, 50 MB of it zeroes written by hand).
    """

    def __init__(self, capacity: int = 0, *, tcp_info: bool = False):
        self.n = 0
        self.rows = np.empty(max(capacity, 16), SOCKET_DTYPE)
        self.info = np.zeros(len(self.rows), TCP_INFO_DTYPE) if tcp_info else None

    def reserve(self, k: int):
        """Views of the next ``k`` rows (and info rows), to be filled."""
        need = self.n + k
        if need > len(self.rows):
            size = max(need, 2 * len(self.rows))
            self.rows = _grow(self.rows, self.n, size)
            if self.info is not None:
                self.info = _grow(self.info, self.n, size, zeroed=True)
        start, self.n = self.n, need
        info = None if self.info is None else self.info[start:need]
        return self.rows[start:need], info

    def finish(self) -> SocketTable:
        """The decoded table; the sink is spent afterwards."""
        rows = self.rows[:self.n]
        info = None if self.info is None else self.info[:self.n]
        if 4 * self.n < len(self.rows):
            rows = _grow(rows, self.n, self.n)
            info = None if info is None else _grow(info, self.n, self.n)
        self.rows = self.info = None
        return SocketTable(rows, info)


def _gather(buf: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The first :data:`ROW` bytes of every message, as (n, ROW) uint8.

    A view puts a row at every 4-aligned offset; one fancy index copies
    them. Messages too close to the end of ``buf`` for a full row are
    read from a small zero-padded copy of the tail instead.
    """
    count = (buf.size - ROW) // 4 + 1
    view = np.ndarray((max(count, 0), ROW), np.uint8, buffer=buf, strides=(4, 1))
    idx = starts >> 2
    if not idx.size or idx[-1] < count:
        return view[idx]
    cut = int(np.searchsorted(idx, count))
    tail_from = int(starts[cut])
    tail = np.zeros(buf.size - tail_from + ROW, np.uint8)
    tail[:buf.size - tail_from] = buf[tail_from:]
    tview = np.ndarray(((tail.size - ROW) // 4 + 1, ROW), np.uint8, buffer=tail, strides=(4, 1))
    return np.concatenate([view[idx[:cut]], tview[(starts[cut:] - tail_from) >> 2]])


def decode_into(buf: np.ndarray, nbytes: int, sink: RowSink, *,
                tcp_info: bool = False) -> tuple[bool, int | None]:
    """Decode the messages in ``buf[:nbytes]`` into ``sink``.

    ``buf`` (uint8) may extend past ``nbytes`` (the receive buffer); the
    bytes there are only ever read as padding. Returns (done, errno or None).
    Batches of one dump go into one sink, which becomes one table:

    >>> import struct
    >>> def tw(port, seq=5):  # an 88-byte TIME_WAIT message, as unprivileged callers get it
    ...     return (struct.pack("=IHHII", 88, 20, 2, seq, 0) + bytes([2, 6, 3, 0])
    ...             + struct.pack(">HH", port, 80) + bytes(44) + struct.pack("=I", 1000) + bytes(16))
    >>> done = struct.pack("=IHHIIi", 20, 3, 2, 5, 0, 0)
    >>> room = np.zeros(4096, np.uint8)
    >>> sink = RowSink(16)
    >>> for batch in (tw(1000) + tw(1001), tw(1002) + done):
    ...     room[:len(batch)] = np.frombuffer(batch, np.uint8)
    ...     print(decode_into(room, len(batch), sink))
    (False, None)
    (True, None)
    >>> table = sink.finish()
    >>> table.rows["sport"].tolist(), table.rows["expires_ms"].tolist(), table.rows["timewait"].all()
    ([1000, 1001, 1002], [1000, 1000, 1000], np.True_)
    """
    if nbytes % 4:
        raise DecodeError(f"{nbytes} bytes: netlink messages are 4-byte aligned")
    data = buf[:nbytes]
    starts = message_starts(data)
    halves = data.view("=u2")
    done, error = False, None
    for lo in range(0, starts.size, BLOCK):
        block = starts[lo:lo + BLOCK]
        rows = _gather(data if buf.size == nbytes else buf, block)
        lens = _column(rows, 0, "=u4")
        types = _column(rows, 4, "=u2")
        sock = (types == SOCK_DIAG_BY_FAMILY) | (types == TCPDIAG_GETSOCK)
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
        if lens.min() < FIXED:
            bad = int(block[np.argmin(lens)])
            raise DecodeError(f"inet_diag message at offset {bad} shorter than {FIXED} bytes")
        out, info = sink.reserve(rows.shape[0])
        _fill_rows(out, rows, lens)
        if not tcp_info:
            # A sink with tcp_info also takes dumps made without it (one
            # table for all states, see collect/snapshot.py): their rows
            # keep the sink's zeroes (present False), left untouched.
            info = None
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
    first = ((nla_type == INET_DIAG_SHUTDOWN) & (nla_len >= 5) & (lens >= FIXED + 8)
             & (nla_len <= lens - FIXED))
    _column(out, _SHUT_OFF, "i1")[...] = np.where(first, _column(rows, 92, "i1"), -1)


def _walk_attributes(data, halves, starts, lens, out, info):
    """SHUTDOWN (where the row did not show it first) and INFO, by rounds.

    Round *k* reads the *k*-th attribute header of every message still in
    play. A message leaves when it holds what is wanted, runs out of
    attributes, or has a malformed one (as nla_ok() would stop).
    """
    shutdown = out["shutdown"]
    want_info = info is not None
    if want_info:  # zeroes from the sink: fields a short tcp_info lacks stay 0
        info_off = np.zeros(starts.size, np.int64)
        info_len = np.zeros(starts.size, np.int64)
    pos = starts + FIXED
    end = starts + lens
    need = np.ones(starts.size, bool) if want_info else shutdown < 0
    if want_info:
        need &= ~_info_where_first_is(data, halves, starts, lens, shutdown, info_off, info_len)
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


def _info_where_first_is(data, halves, starts, lens, shutdown, info_off, info_len):
    """INFO (and SHUTDOWN) of the messages laid out like the first one.

    inet_sk_diag_fill() (net/ipv4/inet_diag.c) writes a full socket's
    attributes in one order, so the messages of a dump mostly share the
    first one's layout: its attribute headers are read here once, and a
    message whose headers up to INFO have the same lengths and types at the
    same offsets has INFO at that offset too (its attributes are walked
    exactly as the first one's).  That is one vectorised check per header
    instead of a round per attribute; the others take the rounds.  Returns
    the mask of messages done here.
    """
    done = np.zeros(starts.size, bool)
    if not starts.size:
        return done
    s0, length = int(starts[0]), int(lens[0])
    layout = []  # (offset, nla_len, type) of the first message's headers, up to INFO
    p = FIXED
    while p + 4 <= length:
        nla_len = int(halves[(s0 + p) >> 1])
        kind = int(halves[((s0 + p) >> 1) + 1]) & wire.NLA_TYPE_MASK
        if nla_len < 4 or p + nla_len > length:
            return done
        layout.append((p, nla_len, kind))
        if kind == INET_DIAG_INFO:
            break
        p += (nla_len + 3) & ~3
    else:
        return done
    at, info_nla_len, _ = layout[-1]
    same = lens >= at + info_nla_len
    rows = np.flatnonzero(same)
    base = starts[rows]
    for off, nla_len, kind in layout:
        half = (base + off) >> 1
        same[rows] &= (halves[half] == nla_len) & ((halves[half + 1] & wire.NLA_TYPE_MASK) == kind)
    rows = np.flatnonzero(same)
    base = starts[rows]
    for off, nla_len, kind in layout:
        if kind == INET_DIAG_SHUTDOWN and nla_len >= 5:
            unknown = shutdown[rows] < 0
            shutdown[rows[unknown]] = data[base[unknown] + off + 4].view(np.int8)
            break
    # SHUTDOWN not before INFO in this layout: leave those to the rounds
    rows = rows[shutdown[rows] >= 0]
    info_off[rows] = starts[rows] + at + 4
    info_len[rows] = info_nla_len - 4
    done[rows] = True
    return done


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
