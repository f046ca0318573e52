"""Pure sock_diag encode/decode: bytes in, numpy columns out, no I/O.

Decoding is the hot path of a snapshot (a million sockets are ~110 MB of
replies); it is vectorised with numpy and never builds a Python object
per socket: :mod:`.frames` finds the messages, :mod:`.columns` turns them
into a :class:`~tcplinger.model.table.SocketTable`.

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
from dataclasses import dataclass

import numpy as np

from ...model.table import SocketTable
from . import wire
from .columns import FIXED, RowSink, decode_into
from .frames import HDR as _HDR
from .frames import DecodeError, as_u8, message_starts, scalar_starts
from .wire import INET_DIAG_INFO, NLMSG_ERROR, SOCK_DIAG_BY_FAMILY, TCPDIAG_GETSOCK

__all__ = ["DecodeError", "DumpChunk", "RowSink", "decode_ack", "decode_dump", "decode_into",
           "encode_both_families_request", "encode_dump_request", "encode_exact_request", "message_starts"]

_ERR = struct.Struct("=i")


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


def encode_both_families_request(states_mask: int, *, tcp_info: bool = False,
                                 seq: int = 1) -> bytes:
    """TCPDIAG_GETSOCK dump of the TCP sockets of both families in
    ``states_mask``: one walk of the kernel's hash tables instead of one per
    family (the kernel turns it into an AF_UNSPEC inet_diag dump,
    inet_diag_dump_compat() in net/ipv4/inet_diag.c). The replies are the
    same inet_diag messages, of type TCPDIAG_GETSOCK; a socket's family is
    in its own message.

    >>> req = encode_both_families_request(1 << 8, tcp_info=True, seq=7)
    >>> req[:16].hex(" ", 4)  # nlmsghdr: 76 bytes, type 18, REQUEST|DUMP, seq 7
    '4c000000 12000103 07000000 00000000'
    >>> req[16:20].hex(), req[20:68] == bytes(48), req[68:].hex(" ", 4)  # family 0, ext INFO; sockid; states, dbs
    ('00000002', True, '00010000 00000000')
    """
    req = np.zeros(1, wire.INET_DIAG_REQ)
    req["ext"] = wire.ext_bit(INET_DIAG_INFO) if tcp_info else 0
    req["states"] = states_mask & 0xFFFFFFFF
    body = req.tobytes()
    return _header(16 + len(body), TCPDIAG_GETSOCK,
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


# --- decode --------------------------------------------------------------

def decode_dump(data, *, tcp_info: bool = False) -> DumpChunk:
    """Decode whole reply datagrams (one or several, back to back).

    Sockets come out as a :class:`~tcplinger.model.table.SocketTable`;
    with ``tcp_info`` its ``info`` column set is filled (``present`` False
    for sockets without an INFO attribute, e.g. timewait-type ones).
    """
    buf = as_u8(data)
    if buf.size % 4:
        # Messages are NLMSG_ALIGNed; a short tail is malformed framing.
        buf = np.concatenate([buf, np.zeros(4 - buf.size % 4, np.uint8)])
    sink = RowSink(buf.size // FIXED, tcp_info=tcp_info)
    done, error = decode_into(buf, buf.size, sink, tcp_info=tcp_info)
    return DumpChunk(sink.finish(), done, error)


def decode_ack(data) -> int:
    """errno of the NLMSG_ERROR in ``data`` (0: success).

    >>> decode_ack(_header(36, 2, 0, 1) + struct.pack("=i", -95) + bytes(16))
    95
    >>> decode_ack(_header(36, 2, 0x100, 1) + struct.pack("=i", 0) + bytes(16))
    0
    """
    buf = as_u8(data)
    for start in scalar_starts(buf):
        length, msg_type = _HDR.unpack_from(buf.data, int(start))[:2]
        if msg_type == NLMSG_ERROR:
            if length < 20:
                raise DecodeError("NLMSG_ERROR without an error code")
            return -_ERR.unpack_from(buf.data, int(start) + 16)[0]
    raise DecodeError("no NLMSG_ERROR in the reply")
