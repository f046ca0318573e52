"""The /proc/net/tcp{,6} fallback collector.

Used when sock_diag is unavailable, or when a namespace cannot be entered
but a process in it can be read (``/proc/PID/net``). It gives less than
sock_diag: no cookie (``cookie`` stays 0, so identity over time falls back
to the 4-tuple), no shutdown state (``shutdown`` stays -1), no tcp_info.

Format (net/ipv4/tcp_ipv4.c ``get_tcp4_sock``, ``get_timewait4_sock``,
``get_openreq4``; net/ipv6/tcp_ipv6.c ``get_tcp6_sock`` & co.), one row per
socket after a header line::

    sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
    6: 02004D0A:8C37 01004D0A:1F40 01 00000000:000003E8 00:00000000 00000000     0        0 253958 1 ...

* addresses are the in-memory (network order) words printed with ``%08X``
  as *host-order u32s*: on little-endian ``10.77.0.2`` is ``02004D0A``.
  IPv6 prints its four ``s6_addr32`` words the same way, so each 8-digit
  group is byte-swapped on its own (``fd77::2`` is
  ``000077FD000000000000000002000000``). Ports are ``ntohs()``-ed: plain hex.
* ``st`` is the kernel state number (model.states.TcpState). Request
  sockets print SYN_RECV (3) where sock_diag says NEW_SYN_RECV (12).
* ``tx_queue`` is ``write_seq - snd_una`` and ``rx_queue`` is
  ``rcv_nxt - copied_seq`` (for LISTEN: the accept backlog): they are ss's
  Send-Q and Recv-Q, in that (reversed) order. For LISTEN, sock_diag's
  Send-Q is the maximum backlog; /proc prints 0 there. A CLOSE_WAIT shows
  a recv_q of 1 with nothing to read: the peer's FIN takes a sequence
  number (sock_diag says the same).
* ``tr`` is the timer kind (model.socket.TimerKind); ``get_tcp4_sock``
  prints 0, 1, 2 or 4, only ``get_timewait4_sock`` prints 3, so ``tr == 3``
  marks a timewait-type socket (TIME_WAIT, or an orphan FIN_WAIT2 handed to
  one; inode 0, uid 0, queues 0). ``tm->when`` is the time left in clock
  ticks (``jiffies_delta_to_clock_t``, USER_HZ = 100 here, clamped at 0).
* ``retrnsmt`` is ``icsk_retransmits`` and ``timeout`` is
  ``icsk_probes_out``. sock_diag's ``idiag_retrans`` (ss's third timer
  number) is the first for the retransmit timer and the second for the
  keepalive and zero-window probe timers (inet_sk_diag_fill in
  net/ipv4/inet_diag.c), so ``retrans`` here follows the same rule.
* ``uid`` is ``from_kuid_munged`` for the reader's user namespace;
  ``inode`` 0 means no file holds the socket (orphans, timewait-type
  sockets, and connections still in a listener's accept queue).

The file is not a consistent snapshot: the kernel walks its hash tables
across several read() calls, so a socket that changes bucket meanwhile can
be listed twice or missed (sock_diag has the same property per dump).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import numpy as np

from ..model.table import SOCKET_DTYPE, SocketTable, empty

#: Ticks per second of ``tm->when`` (USER_HZ, the unit of clock_t).
USER_HZ = os.sysconf("SC_CLK_TCK")

_TIMEWAIT_TIMER = 3
_PROBES_OUT_TIMERS = (2, 4)  # keepalive, zero-window probe

# ASCII -> nibble; 255 marks a character that is not a hex digit.
_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789ABCDEF"):
    _NIBBLE[_c] = _i
    _NIBBLE[bytes([_c]).lower()[0]] = _i


class ProcFormatError(ValueError):
    """The text is not what get_tcp4_sock/get_tcp6_sock print."""


def parse_proc_net_tcp(text: str, family: int, *, byteorder: str = sys.byteorder,
                       user_hz: int = USER_HZ) -> SocketTable:
    r"""Decode the text of /proc/net/tcp (``family=AF_INET``) or tcp6.

    ``byteorder`` is the byte order of the host that printed the text
    (recordings from a little-endian machine stay readable elsewhere).

    Real rows from this kernel (tests/data/proc/netns-mix): an ESTABLISHED
    client with 1000 unread bytes, and an orphan FIN_WAIT2 that became a
    timewait-type socket (timer 3, inode 0) with 59.4 s left:

    >>> text = '''  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
    ...    6: 02004D0A:8C37 01004D0A:1F40 01 00000000:000003E8 00:00000000 00000000     0        0 253958 1 00000000fa1e7196 20 4 33 11 -1
    ...   10: 02004D0A:CEC5 01004D0A:1F40 05 00000000:00000000 03:00001734 00000000     0        0 0 3 00000000a398eac3
    ... '''
    >>> t = parse_proc_net_tcp(text, socket.AF_INET, byteorder="little", user_hz=100)
    >>> r = t.record(0)
    >>> r.state_name, str(r.local), str(r.remote), r.recv_q, r.send_q, r.inode
    ('ESTABLISHED', '10.77.0.2:35895', '10.77.0.1:8000', 1000, 0, 253958)
    >>> r = t.record(1)
    >>> r.state_name, r.timer.kind.name, r.timer.expires_ms, r.timewait_type, r.orphan
    ('FIN_WAIT2', 'TIMEWAIT', 59400, True, True)
    >>> r.cookie, r.shutdown   # /proc has neither
    (0, None)

    IPv6: a TIME_WAIT, and the server side of an IPv4 client accepted by a
    dual-stack listener (v4-mapped addresses):

    >>> text6 = '''  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
    ...   13: 000077FD000000000000000002000000:C453 000077FD000000000000000001000000:1FA4 06 00000000:00000000 03:0000173D 00000000     0        0 0 3 00000000be0e6105
    ...    4: 0000000000000000FFFF000001004D0A:1FA6 0000000000000000FFFF000002004D0A:B82F 01 00000000:00000000 00:00000000 00000000     0        0 253993 1 00000000e6930498 20 0 0 10 -1
    ... '''
    >>> t = parse_proc_net_tcp(text6, socket.AF_INET6, byteorder="little", user_hz=100)
    >>> [(t.record(i).state_name, str(t.record(i).local), str(t.record(i).remote))
    ...  for i in range(2)]
    [('TIME_WAIT', '[fd77::2]:50259', '[fd77::1]:8100'), ('ESTABLISHED', '[::ffff:10.77.0.1]:8102', '[::ffff:10.77.0.2]:47151')]
    >>> t.record(0).timer.expires_ms
    59490
    """
    return _parse(text.encode("ascii"), family, byteorder, user_hz)


def read_sockets(proc_net: Path) -> SocketTable:
    """Every TCP socket listed under ``proc_net`` (tcp, then tcp6).

    ``proc_net`` is ``Path("/proc/net")`` (the namespace of the *process*),
    ``Path("/proc/thread-self/net")`` (the calling thread's, after setns),
    ``Path("/proc/PID/net")`` or a recorded tree. A missing ``tcp6`` means
    IPv6 is disabled and is not an error; a missing ``tcp`` is.
    """
    tables = [_parse(_read(proc_net / "tcp"), socket.AF_INET, sys.byteorder, USER_HZ)]
    try:
        data6 = _read(proc_net / "tcp6")
    except FileNotFoundError:
        pass
    else:
        tables.append(_parse(data6, socket.AF_INET6, sys.byteorder, USER_HZ))
    return SocketTable.concat(tables)


def _read(path: Path) -> bytes:
    # Big reads: seq_file fills what it is asked for, so fewer syscalls
    # and fewer chances to see a socket twice.
    with open(path, "rb", buffering=0) as f:
        chunks = []
        while chunk := f.read(1 << 20):
            chunks.append(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------
# Decoding works on the bytes with numpy, no Python object per field: a
# million rows take about 1.9 s of CPU (IPv4, 150 MB) and 2.7 s (IPv6,
# 176 MB) here, where str.split() on the lines alone takes 3.7-5 s.

_CHUNK = 8 << 20  # bytes decoded at a time, cut at a newline: bounds memory
_COLON = ord(":")


def _parse(data: bytes, family: int, byteorder: str, user_hz: int) -> SocketTable:
    if family not in (socket.AF_INET, socket.AF_INET6):
        raise ValueError(f"family must be AF_INET or AF_INET6, not {family}")
    parts = []
    pos = 0
    while pos < len(data):
        cut = data.rfind(b"\n", pos, pos + _CHUNK) + 1 if pos + _CHUNK < len(data) else 0
        end = cut if cut > pos else len(data)
        parts.append(_parse_chunk(data[pos:end], family, byteorder, user_hz))
        pos = end
    if not parts:
        return SocketTable(empty(0))
    return SocketTable(np.concatenate(parts))


def _parse_chunk(chunk: bytes, family: int, byteorder: str, user_hz: int) -> np.ndarray:
    buf = np.frombuffer(chunk, dtype=np.uint8)
    addr_chars = 8 if family == socket.AF_INET else 32
    starts, ends = _data_tokens(buf)
    n = len(starts)
    rows = empty(n)
    if n == 0:
        return rows

    rows["family"] = family
    for k, col_addr, col_port in ((1, "saddr", "sport"), (2, "daddr", "dport")):
        s, e = starts[:, k], ends[:, k]
        if ((e - s) != addr_chars + 5).any() or (buf[s + addr_chars] != _COLON).any():
            raise ProcFormatError(f"address column {k}: expected {addr_chars} hex digits:port")
        rows[col_addr] = _address_bytes(buf, s, addr_chars, byteorder).view("V16").ravel()
        rows[col_port] = _number(buf, s + addr_chars + 1, e, 16)
    rows["state"] = _number(buf, starts[:, 3], ends[:, 3], 16)
    send_q, recv_q = _pair(buf, starts[:, 4], ends[:, 4])  # tx_queue:rx_queue
    rows["send_q"], rows["recv_q"] = send_q, recv_q
    kind, when = _pair(buf, starts[:, 5], ends[:, 5])  # tr:tm->when
    rows["timer"] = kind
    rows["expires_ms"] = when.astype(np.int64) * 1000 // user_hz
    rows["timewait"] = kind == _TIMEWAIT_TIMER
    retrnsmt = _number(buf, starts[:, 6], ends[:, 6], 16)
    probes_out = _number(buf, starts[:, 8], ends[:, 8], 10)  # the "timeout" column
    rows["retrans"] = np.where(np.isin(kind, _PROBES_OUT_TIMERS), probes_out, retrnsmt)
    rows["uid"] = _number(buf, starts[:, 7], ends[:, 7], 10)
    rows["inode"] = _number(buf, starts[:, 9], ends[:, 9], 10)
    # cookie: not in /proc (left 0); shutdown: not in /proc (left -1).
    return rows


def _data_tokens(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of the first 10 tokens of each data row.

    Returns two (rows, 10) arrays. Header rows (first token ``sl``) and
    blank lines are skipped; any other row must start with ``N:`` and have
    at least 10 tokens.
    """
    space = buf <= 32  # blank, tab, newline
    word = ~space
    starts = np.flatnonzero(word & np.concatenate(([True], space[:-1])))
    ends = np.flatnonzero(word & np.concatenate((space[1:], [True]))) + 1
    if len(starts) == 0:
        return np.zeros((0, 10), np.int64), np.zeros((0, 10), np.int64)
    line = np.searchsorted(np.flatnonzero(buf == 10), starts)
    first = np.flatnonzero(np.concatenate(([True], line[1:] != line[:-1])))
    count = np.diff(np.append(first, len(starts)))
    fs, fe = starts[first], ends[first]
    second = buf[np.minimum(fs + 1, len(buf) - 1)]
    header = ((fe - fs) == 2) & (buf[fs] == ord("s")) & (second == ord("l"))
    data = ~header
    bad = data & ((buf[fe - 1] != _COLON) | (count < 10))
    if bad.any():
        i = int(first[np.flatnonzero(bad)[0]])
        line_start = int(starts[i])
        text = bytes(buf[line_start:line_start + 80]).split(b"\n")[0]
        raise ProcFormatError(f"not a /proc/net/tcp row: {text!r}")
    idx = first[data][:, None] + np.arange(10)
    return starts[idx], ends[idx]


def _number(buf: np.ndarray, s: np.ndarray, e: np.ndarray, base: int) -> np.ndarray:
    """Unsigned numbers written buf[s:e], one per row (s, e: int arrays)."""
    width = e - s
    if (width <= 0).any():
        raise ProcFormatError("empty number")
    cols = np.arange(int(width.max()))
    fixed = bool((width == width[0]).all())  # the usual case: no masking
    if fixed:
        digits = _NIBBLE[buf[s[:, None] + cols]]
        bad = digits >= base
    else:
        inside = cols < width[:, None]
        digits = _NIBBLE[buf[np.where(inside, s[:, None] + cols, 0)]]
        bad = (digits >= base) & inside
    if bad.any():
        raise ProcFormatError("expected " + ("hexadecimal" if base == 16 else "decimal")
                              + " digits")
    value = np.zeros(len(s), dtype=np.uint64)
    b = np.uint64(base)
    for j in range(len(cols)):
        step = value * b + digits[:, j]
        value = step if fixed else np.where(inside[:, j], step, value)
    return value


def _pair(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``HEX:HEX`` tokens (``tx_queue:rx_queue``, ``tr:tm->when``)."""
    cols = np.arange(int((e - s).max()))
    idx = np.minimum(s[:, None] + cols, e[:, None] - 1)
    is_colon = buf[idx] == _COLON
    if not is_colon.any(axis=1).all():
        raise ProcFormatError("expected HEX:HEX")
    colon = s + is_colon.argmax(axis=1)
    return _number(buf, s, colon, 16), _number(buf, colon + 1, e, 16)


def _address_bytes(buf: np.ndarray, s: np.ndarray, chars: int, byteorder: str) -> np.ndarray:
    """8 or 32 hex digits at ``s`` -> (n, 16) network-order address bytes.

    Each 8-digit group is one u32 printed in host order; writing it back
    in that order gives the bytes as they sit in ``struct in6_addr``.
    """
    n = len(s)
    words = np.stack([_number(buf, s + i, s + i + 8, 16) for i in range(0, chars, 8)], axis=1)
    dtype = "<u4" if byteorder == "little" else ">u4"
    raw = words.astype(dtype).view(np.uint8).reshape(n, chars // 2)
    out = np.zeros((n, 16), dtype=np.uint8)
    out[:, :raw.shape[1]] = raw
    return out


assert SOCKET_DTYPE["saddr"].itemsize == 16  # _address_bytes fills V16 columns
