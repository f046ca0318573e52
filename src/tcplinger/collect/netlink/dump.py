"""sock_diag I/O: the netlink socket, the TCP dump and exact lookups.

A netlink socket answers for the network namespace it was created in, not
for the one its user is in later (netlink_create() keeps the creator's
``struct net``). :class:`DiagSocket` therefore opens in the *calling
thread's* namespace: enter the namespace (setns in a worker thread), open
the socket, and it keeps reading that namespace from any thread.

The kernel fills a dump one skb per recvmsg(), each at most 32 KiB
(netlink_dump(), net/netlink/af_netlink.c caps max_recvmsg_len at
SKB_WITH_OVERHEAD(32768)). The datagrams are received back to back into
one preallocated buffer and decoded a batch at a time, so the numpy work
is paid per batch, not per datagram (see :data:`DEFAULT_BUFSIZE`).
"""

from __future__ import annotations

import errno
import mmap
import os
import socket

import numpy as np

from ...model.states import REPORTED, state_mask
from ...model.table import SocketTable
from . import codec, frames, wire

#: Every state ``ss -a`` shows (request sockets included, bound-only
#: sockets of TCP_BOUND_INACTIVE excluded, as ss leaves them out).
ALL = state_mask(REPORTED)

#: Batch buffer. Measured with tests/data/netlink/bench_dump.py on ~940k
#: sockets (Linux 6.18, best of 4, user CPU of the decode): 32 KiB (one
#: datagram a batch) 0.29 s, 256 KiB 0.13 s, 1 MiB 0.09 s, 4 MiB 0.06 s,
#: 16 MiB 0.10 s; kernel time (~0.8 s) is the same for all. A batch of
#: 4 MiB still sits in L3 when it is decoded.
DEFAULT_BUFSIZE = 4 << 20
#: Room a recv needs: one dump skb (<= 32 KiB, see the module docstring).
_MAX_DATAGRAM = 32 << 10
#: The kernel refills one skb per recvmsg() whatever the receive buffer
#: (netlink_recvmsg() calls netlink_dump() once), so its size does not
#: change throughput; it only has to hold more than one 32 KiB skb.
DEFAULT_RCVBUF = 4 << 20
DEFAULT_CAPACITY = 1 << 20

_HDR = frames.HDR
_DONE_LEN = 20  # nlmsghdr + int: NLMSG_DONE without extended-ack TLVs

#: Errors meaning "sock_diag cannot serve this": fall back to /proc.
_UNAVAILABLE = frozenset({errno.ENOENT, errno.EOPNOTSUPP, errno.EPROTONOSUPPORT,
                          errno.EAFNOSUPPORT, errno.EACCES, errno.EPERM})


class DiagError(OSError):
    """sock_diag answered with an error."""


class DiagUnavailable(DiagError):
    """sock_diag cannot be used here (no NETLINK_SOCK_DIAG, no tcp_diag,
    not permitted): read /proc/net/tcp instead."""


def _error(err: int, what: str) -> DiagError:
    cls = DiagUnavailable if err in _UNAVAILABLE else DiagError
    return cls(err, f"{what}: {os.strerror(err)}")


class DiagSocket:
    """AF_NETLINK/NETLINK_SOCK_DIAG socket bound to the current namespace.

    Use it as a context manager and pass it to :func:`dump` and
    :func:`lookup` to reuse its receive buffer across calls.
    """

    def __init__(self, *, bufsize: int = DEFAULT_BUFSIZE, rcvbuf: int = DEFAULT_RCVBUF):
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                 wire.NETLINK_SOCK_DIAG)
        except OSError as exc:
            raise DiagUnavailable(exc.errno, f"cannot open NETLINK_SOCK_DIAG: {exc.strerror}") from exc
        try:
            try:
                # SO_RCVBUFFORCE ignores net.core.rmem_max; root only.
                sock.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.bind((0, 0))
            self.portid: int = sock.getsockname()[0]
        except OSError:
            sock.close()
            raise
        self._sock = sock
        # Anonymous mmap, not bytearray: its pages are zero-filled lazily, so
        # a socket that only sees small namespaces never touches most of it.
        self._buf = mmap.mmap(-1, max(bufsize, _MAX_DATAGRAM))
        self._view = memoryview(self._buf)
        self._u8 = np.frombuffer(self._buf, np.uint8)
        #: Rows to reserve for the next dump (address space only, see
        #: codec.RowSink): a million, or more once a dump was larger.
        self.capacity_hint = DEFAULT_CAPACITY
        # A distinctive seq makes the decoder's seq search (frames.message_starts)
        # hit message headers only. From os.urandom, not the random module
        # (~3 ms of CPU to import at every start, issue 16).
        self._seq = int.from_bytes(os.urandom(4), "little") & 0x7FFF_FFFF | 0x4000_0000
        #: False once the kernel refused a both-families dump (dump_both_into)
        self.both_families = True

    # -- plumbing ---------------------------------------------------------
    def next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0x7FFF_FFFF or 1
        return self._seq

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        if self._u8 is not None:
            self._u8 = None  # drop the exports before unmapping
            try:
                self._view.release()
                self._buf.close()
            except BufferError:
                # A view is still alive (e.g. in the traceback of a decode
                # error): the mapping goes when the last view does.
                pass
        self._sock.close()

    def __enter__(self) -> "DiagSocket":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, request: bytes) -> None:
        self._sock.sendto(request, (0, 0))

    def recv_one(self) -> bytes:
        """One datagram, copied out."""
        n = self._sock.recv_into(self._view, len(self._buf), socket.MSG_TRUNC)
        if n > len(self._buf):
            raise DiagError(errno.EMSGSIZE, f"netlink datagram of {n} bytes truncated")
        return bytes(self._view[:n])

    def exchange(self, request: bytes) -> list[bytes]:
        """Send ``request``; return the raw reply datagrams.

        Reads until NLMSG_DONE or NLMSG_ERROR, or after the first datagram
        of a request that is neither a dump nor asks for an ack. For
        recording fixtures and debugging; :func:`dump` is the fast path.
        """
        flags = _HDR.unpack_from(request)[2]
        self.send(request)
        out = []
        while True:
            data = self.recv_one()
            out.append(data)
            types = [_HDR.unpack_from(data, int(p))[1]
                     for p in frames.message_starts(frames.as_u8(data))]
            if wire.NLMSG_DONE in types or wire.NLMSG_ERROR in types:
                return out
            if not flags & (wire.NLM_F_DUMP | wire.NLM_F_ACK):
                return out

    # -- the dump -----------------------------------------------------------
    def dump_family(self, family: int, states_mask: int, *, tcp_info: bool = False) -> SocketTable:
        """One family's dump."""
        sink = codec.RowSink(self.capacity_hint, tcp_info=tcp_info)
        self.dump_into(sink, family, states_mask, tcp_info=tcp_info)
        return sink.finish()

    def dump_into(self, sink: codec.RowSink, family: int, states_mask: int, *,
                  tcp_info: bool = False) -> None:
        """Append one family's dump to ``sink``."""
        seq = self.next_seq()
        self._receive(sink, codec.encode_dump_request(family, states_mask, tcp_info=tcp_info,
                                                      seq=seq), tcp_info, f"family {family}")

    def dump_both_into(self, sink: codec.RowSink, states_mask: int, *,
                       tcp_info: bool = False) -> None:
        """Append both families' sockets to ``sink``, IPv4 rows first.

        One TCPDIAG_GETSOCK dump walks the kernel's hash tables once for
        both families, where two SOCK_DIAG_BY_FAMILY dumps walk them twice
        (the walk visits every socket of the table, which the namespace
        shares with the host unless it has its own: an AF_INET6 dump of
        an IPv4-only 1M-socket namespace took 0.12 s of system time just
        to skip them all). A kernel that refuses it gets the two dumps.
        The walk interleaves the families; a stable sort puts the rows in
        the order of the two dumps (each family's in walk order).
        """
        start = sink.n
        if self.both_families:
            try:
                self._receive(sink, codec.encode_both_families_request(
                    states_mask, tcp_info=tcp_info, seq=self.next_seq()), tcp_info,
                    "both families")
            except DiagError as exc:
                if sink.n != start or exc.errno not in _COMPAT_REFUSED:
                    raise
                self.both_families = False
            else:
                _ipv4_first(sink, start, tcp_info)
                return
        for family in (socket.AF_INET, socket.AF_INET6):
            self.dump_into(sink, family, states_mask, tcp_info=tcp_info)

    def _receive(self, sink: codec.RowSink, request: bytes, tcp_info: bool, what: str) -> None:
        self.send(request)
        buf, view, recv_into = self._buf, self._view, self._sock.recv_into
        size = len(buf)
        room_needed = min(_MAX_DATAGRAM, size)
        done_tail = (_DONE_LEN, wire.NLMSG_DONE)
        unpack = _HDR.unpack_from
        off = 0
        while True:
            if size - off < room_needed:
                self._decode_batch(off, sink, tcp_info, what)
                off = 0
            n = recv_into(view[off:], size - off, socket.MSG_TRUNC)
            if n > size - off:
                raise DiagError(errno.EMSGSIZE, f"netlink datagram of {n} bytes truncated")
            start, off = off, off + n
            # The dump ends with NLMSG_DONE as the last message of a datagram,
            # or (a refused request) with a lone NLMSG_ERROR.
            if off >= start + _DONE_LEN and unpack(buf, off - _DONE_LEN)[:2] == done_tail:
                pass
            elif n >= 16 and unpack(buf, start)[1] == wire.NLMSG_ERROR:
                pass
            else:
                continue
            done = self._decode_batch(off, sink, tcp_info, what)
            off = 0
            if done:
                break
        self.capacity_hint = max(self.capacity_hint, sink.n + sink.n // 4)

    def _decode_batch(self, nbytes: int, sink: codec.RowSink, tcp_info: bool,
                      what: str) -> bool:
        done, error = codec.decode_into(self._u8, nbytes, sink, tcp_info=tcp_info)
        if error:
            raise _error(error, f"sock_diag dump of {what}")
        return done


#: errno of a kernel without the TCPDIAG_GETSOCK request (no inet_diag
#: compat handler): dump family by family instead.
_COMPAT_REFUSED = frozenset({errno.EINVAL, errno.ENOENT, errno.EOPNOTSUPP})


def _ipv4_first(sink: codec.RowSink, start: int, tcp_info: bool) -> None:
    """Put the rows from ``start`` on in the order of two family dumps:
    IPv4 first, each family in walk order (a stable sort, done only when
    an IPv6 row comes before an IPv4 one)."""
    rows = sink.rows[start:sink.n]
    v6 = rows["family"] == socket.AF_INET6
    if not v6.any() or v6.all() or not (v6[:-1] & ~v6[1:]).any():
        return
    order = np.argsort(v6, kind="stable")
    rows[...] = rows[order]
    if tcp_info and sink.info is not None:
        info = sink.info[start:sink.n]
        info[...] = info[order]


def dump(states_mask: int = ALL, families=(socket.AF_INET, socket.AF_INET6), *,
         tcp_info: bool = False, sock: DiagSocket | None = None) -> SocketTable:
    """All TCP sockets of ``families`` in ``states_mask`` (``1 << state``).

    Both families by default: an AF_INET dump leaves AF_INET6 sockets out
    (and AF_INET6 ones report v4-mapped addresses for IPv4 peers). The
    kernel applies ``states_mask`` itself. Without ``sock`` a socket is
    opened for the call, in the calling thread's namespace.
    """
    own = sock is None
    if own:
        sock = DiagSocket()
    try:
        # One sink for every family: the table is built in place, never concatenated.
        sink = codec.RowSink(sock.capacity_hint, tcp_info=tcp_info)
        if tuple(families) == (socket.AF_INET, socket.AF_INET6):
            sock.dump_both_into(sink, states_mask, tcp_info=tcp_info)
        else:
            for fam in families:
                sock.dump_into(sink, fam, states_mask, tcp_info=tcp_info)
    finally:
        if own:
            sock.close()
    return sink.finish()


def lookup(family: int, src: str, sport: int, dst: str, dport: int,
           cookie: int = wire.NO_COOKIE, *, tcp_info: bool = False,
           sock: DiagSocket | None = None) -> SocketTable:
    """The one socket with local ``src:sport``, remote ``dst:dport`` (and
    ``cookie``, unless NO_COOKIE): a table of 0 or 1 row.

    Works for timewait-type sockets too. Not found (ENOENT) and a cookie
    that no longer matches the 4-tuple both give an empty table (6.18
    answers ENOENT for a wrong cookie too: inet_diag_find_one_icsk(),
    net/ipv4/inet_diag.c, maps the cookie check's ESTALE to ENOENT).

    The kernel finds the socket with inet_lookup(), which falls back to a
    *listener* on ``src:sport`` when no connection matches, so the answer
    is checked against the 4-tuple before it is returned.
    """
    own = sock is None
    if own:
        sock = DiagSocket()
    try:
        req = codec.encode_exact_request(family, src=src, sport=sport, dst=dst, dport=dport,
                                         cookie=cookie, seq=sock.next_seq(), tcp_info=tcp_info)
        sock.send(req)
        chunk = codec.decode_dump(sock.recv_one(), tcp_info=tcp_info)
    finally:
        if own:
            sock.close()
    if chunk.error in (errno.ENOENT, errno.ESTALE):
        return chunk.table.select(slice(0, 0))
    if chunk.error:
        raise _error(chunk.error, "sock_diag lookup")
    rows = chunk.table.rows
    want = (_as_v6(family, _pton(family, src)), sport, _as_v6(family, _pton(family, dst)), dport)
    keep = [i for i, row in enumerate(rows)
            if (_as_v6(int(row["family"]), row["saddr"].tobytes()), int(row["sport"]),
                _as_v6(int(row["family"]), row["daddr"].tobytes()), int(row["dport"])) == want]
    return chunk.table.select(np.asarray(keep, dtype=np.intp))


def _pton(family: int, text: str) -> bytes:
    return socket.inet_pton(family, text)


def _as_v6(family: int, raw: bytes) -> bytes:
    """IPv4 as ::ffff:a.b.c.d, the way dual-stack sockets report it."""
    if family == socket.AF_INET:
        return bytes(10) + b"\xff\xff" + raw[:4]
    return raw[:16]
