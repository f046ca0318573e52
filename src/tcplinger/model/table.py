"""Columnar socket table: one numpy structured array, one row per socket.

A million sockets decode into ~80 MB here instead of a million Python
objects; filters are boolean masks, counts are ``np.bincount``. Rows become
:class:`~tcplinger.model.socket.SocketRecord` only when shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from .socket import (UNKNOWN_AGE, Age, Endpoint, NetnsRef, Owner, SocketRecord,
                     Timer, TimerKind, format_address)
from .states import AFTER_CLOSE, NOT_OUTGOING

SOCKET_DTYPE = np.dtype([
    ("family", "u1"),
    ("state", "u1"),
    ("timer", "u1"),
    ("retrans", "u1"),
    ("timewait", "?"),  # timewait-type minisocket
    ("shutdown", "i1"),  # -1: not reported (timewait-type, or /proc)
    ("sport", "u2"),
    ("dport", "u2"),
    ("expires_ms", "i8"),
    ("uid", "u4"),
    ("inode", "u8"),
    ("cookie", "u8"),
    ("recv_q", "u4"),
    ("send_q", "u4"),
    ("saddr", "V16"),
    ("daddr", "V16"),
])

#: The tcp_info fields tcplinger reads (struct tcp_info, uapi/linux/tcp.h).
TCP_INFO_FIELDS = (
    ("state", "u1"), ("ca_state", "u1"), ("retransmits", "u1"), ("probes", "u1"),
    ("backoff", "u1"), ("options", "u1"),
    ("rto", "u4"), ("ato", "u4"), ("snd_mss", "u4"), ("rcv_mss", "u4"),
    ("unacked", "u4"), ("sacked", "u4"), ("lost", "u4"), ("retrans", "u4"),
    ("last_data_sent", "u4"), ("last_ack_sent", "u4"), ("last_data_recv", "u4"),
    ("last_ack_recv", "u4"), ("rtt", "u4"), ("rttvar", "u4"), ("snd_cwnd", "u4"),
    ("total_retrans", "u4"),
)
TCP_INFO_DTYPE = np.dtype([("present", "?")] + list(TCP_INFO_FIELDS))


_ORPHAN_STATE = np.zeros(256, bool)
_ORPHAN_STATE[[int(s) for s in AFTER_CLOSE]] = True


def empty(n: int = 0) -> np.ndarray:
    rows = np.zeros(n, dtype=SOCKET_DTYPE)
    rows["shutdown"] = -1
    return rows


@dataclass
class SocketTable:
    """Sockets of one namespace, as columns.

    ``info`` is aligned with ``rows`` when tcp_info was asked for, else None.
    """

    rows: np.ndarray = field(default_factory=empty)
    info: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, mask_or_index) -> "SocketTable":
        info = None if self.info is None else self.info[mask_or_index]
        return SocketTable(self.rows[mask_or_index], info)

    @staticmethod
    def concat(tables: Iterable["SocketTable"]) -> "SocketTable":
        tables = list(tables)
        if not tables:
            return SocketTable()
        if len(tables) == 1:
            return tables[0]
        # Concatenating structured arrays field by field is ~10x slower than
        # copying their bytes (0.39 s against 0.03 s for 1M rows here).
        rows = np.concatenate([t.rows.view(np.uint8).reshape(len(t), SOCKET_DTYPE.itemsize)
                               for t in tables]).view(SOCKET_DTYPE).reshape(-1)
        if all(t.info is None for t in tables):
            return SocketTable(rows, None)
        # Rows without tcp_info get present=False so columns stay aligned;
        # copied as bytes too (np.concatenate of 1M tcp_info rows: 0.5 s).
        size = TCP_INFO_DTYPE.itemsize
        info = np.zeros(len(rows), TCP_INFO_DTYPE)
        out = info.view(np.uint8).reshape(len(rows), size)
        at = 0
        for t in tables:
            if t.info is not None and len(t):
                out[at:at + len(t)] = np.ascontiguousarray(t.info).view(np.uint8).reshape(len(t), size)
            at += len(t)
        return SocketTable(rows, info)

    def state_counts(self) -> dict[int, int]:
        """``{state number: count}`` for states present."""
        counts = np.bincount(self.rows["state"], minlength=16)
        return {i: int(c) for i, c in enumerate(counts) if c}

    def full_orphan_mask(self) -> np.ndarray:
        """Orphans that are still full sockets: what the kernel's orphan
        count and tcp_max_orphans cover (timewait-type sockets count against
        tcp_max_tw_buckets instead)."""
        return self.orphan_mask() & ~self.rows["timewait"]

    def orphan_mask(self) -> np.ndarray:
        """inode 0 in a teardown state (TIME_WAIT included): closed by its
        process, held by the kernel."""
        # a lookup by state number: np.isin sorts (~15 ms at 1M rows)
        return _ORPHAN_STATE[self.rows["state"]] & (self.rows["inode"] == 0)

    def record(self, i: int, *, netns: NetnsRef | None = None,
               owners: tuple[Owner, ...] = (), age: Age = UNKNOWN_AGE,
               address_cache: dict | None = None) -> SocketRecord:
        r = self.rows[i]
        fam = int(r["family"])
        cache = address_cache if address_cache is not None else {}
        saddr = _address(cache, fam, r["saddr"].tobytes())
        daddr = _address(cache, fam, r["daddr"].tobytes())
        shut = int(r["shutdown"])
        info = None
        if self.info is not None and self.info[i]["present"]:
            info = {name: int(self.info[i][name]) for name, _ in TCP_INFO_FIELDS}
        return SocketRecord(
            family=fam, state=int(r["state"]),
            local=Endpoint(saddr, int(r["sport"])),
            remote=Endpoint(daddr, int(r["dport"])),
            timer=Timer(TimerKind(int(r["timer"])) if int(r["timer"]) <= 4 else TimerKind.OFF,
                        int(r["expires_ms"]), int(r["retrans"])),
            uid=int(r["uid"]), inode=int(r["inode"]), cookie=int(r["cookie"]),
            recv_q=int(r["recv_q"]), send_q=int(r["send_q"]),
            timewait_type=bool(r["timewait"]),
            shutdown=None if shut < 0 else shut,
            netns=netns, owners=owners, age=age, tcp_info=info,
        )


def iter_records(table: SocketTable, *, netns: NetnsRef | None = None, owners=None,
                 ages=None, tcp_info: bool = True) -> Iterable[SocketRecord]:
    """All rows as records, from whole columns (``tolist()``) rather than
    row by row: ~20x faster than :meth:`SocketTable.record` in a loop.
    ``owners`` maps inode -> tuple of Owner; ``ages`` is a list of Age;
    ``tcp_info=False`` leaves the tcp_info dicts out (they cost the most)."""
    rows = table.rows
    cols = {name: rows[name].tolist() for name in SOCKET_DTYPE.names}
    owners = owners or {}
    cache: dict = {}
    info = table.info
    present = info["present"].tolist() if info is not None and tcp_info else None
    timer_kinds = {int(k): k for k in TimerKind}
    for i in range(len(rows)):
        fam = cols["family"][i]
        ino = cols["inode"][i]
        shut = cols["shutdown"][i]
        tcp_info = None
        if present is not None and present[i]:
            tcp_info = {name: int(info[name][i]) for name, _ in TCP_INFO_FIELDS}
        yield SocketRecord(
            family=fam, state=cols["state"][i],
            local=Endpoint(_address(cache, fam, cols["saddr"][i]), cols["sport"][i]),
            remote=Endpoint(_address(cache, fam, cols["daddr"][i]), cols["dport"][i]),
            timer=Timer(timer_kinds.get(cols["timer"][i], TimerKind.OFF),
                        cols["expires_ms"][i], cols["retrans"][i]),
            uid=cols["uid"][i], inode=ino, cookie=cols["cookie"][i],
            recv_q=cols["recv_q"][i], send_q=cols["send_q"][i],
            timewait_type=bool(cols["timewait"][i]),
            shutdown=None if shut < 0 else shut, netns=netns,
            owners=owners.get(ino, ()) if ino else (),
            age=ages[i] if ages is not None else UNKNOWN_AGE, tcp_info=tcp_info)


def outgoing_ephemeral(rows, lo: int, hi: int, listen_ports) -> np.ndarray:
    """Which rows hold a local port of ip_local_port_range ``lo``-``hi`` for
    an outgoing connection: not a listener, unconnected or request socket
    (NOT_OUTGOING), and not on a port something listens on (``listen_ports``:
    a server's accepted sockets, whatever port range it listens in). The one
    count of ephemeral-port-exhaustion, the exporter's busiest destinations
    and the watch series (track/series.py).

    >>> from tcplinger.model.table import empty
    >>> r = empty(4); r["state"] = [1, 1, 10, 1]; r["sport"] = [40000, 8080, 40001, 40002]
    >>> outgoing_ephemeral(r, 32768, 60999, [40002]).tolist()
    [True, False, False, False]
    """
    sport = rows["sport"]
    cand = (sport >= lo) & (sport <= hi) & ~member(rows["state"], [int(s) for s in NOT_OUTGOING])
    if len(listen_ports):
        cand &= ~member(sport, np.fromiter(listen_ports, dtype=np.uint16))
    return cand


def address_codes(rows: np.ndarray, column: str) -> tuple[np.ndarray, list[str]]:
    """Addresses of a column (``"saddr"`` or ``"daddr"``) as codes into the
    list of their distinct texts: each distinct (family, address) is
    formatted once (format_address), a host having far fewer distinct
    addresses than sockets.

    >>> rows = empty(3)
    >>> rows["family"] = [2, 2, 10]
    >>> rows["saddr"] = [bytes([10, 0, 0, 2]) + bytes(12), bytes([10, 0, 0, 1]) + bytes(12),
    ...                  bytes(15) + b"\\x01"]
    >>> codes, texts = address_codes(rows, "saddr")
    >>> [texts[c] for c in codes.tolist()]
    ['10.0.0.2', '10.0.0.1', '::1']
    """
    rows = np.ascontiguousarray(rows)
    n = len(rows)
    fam = rows["family"]
    codes = np.empty(n, np.int32)
    texts: list[str] = []
    v4 = fam == 2
    if v4.any():
        # The first 4 bytes of each address as a u32, straight from the
        # rows (a strided view: no copy of the 16-byte column).
        first4 = np.ndarray((n,), np.uint32, buffer=rows, offset=rows.dtype.fields[column][1],
                            strides=(rows.dtype.itemsize,))
        uniq, inv = _factorize(first4 if v4.all() else first4[v4])
        data = uniq.tobytes()
        texts += [format_address(2, data[i:i + 4]) for i in range(0, len(data), 4)]
        codes[v4] = inv
    if not v4.all():
        raw = rows[column]
        for family in np.unique(fam[~v4]).tolist():  # format_address: IPv6 for all others
            sel = fam == family
            uniq, inv = np.unique(raw[sel], return_inverse=True)
            codes[sel] = len(texts) + inv.ravel()
            texts += [format_address(family, u.tobytes()) for u in uniq]
    return codes, texts


def distinct(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)``: the sorted distinct values, by sorting when
    the column is of 32- or 64-bit integers, by a table of every value for
    8- and 16-bit unsigned ones.

    numpy 2.3+ answers a plain ``np.unique()`` with a hash table
    (``_unique_hash``), which for wide integers with many distinct values
    costs 10-20x a sort here (numpy 2.4.6, best of 3): 300k distinct
    uint64 inodes 0.131 s against 0.009 s, 1M 0.77 s against 0.036 s (the
    owner lookup's inode sets at 300k spent 0.4-0.5 s in it). For 8- and
    16-bit unsigned columns (ports, states) the hash was cheaper than a
    sort (1M uint16: 0.039 s against 0.079 s) and a table of the 65,536
    values is cheaper still (300k random uint16: 4 ms against 57 ms); and
    the hash path imports numpy.ma (17 ms of CPU, once). Other kinds keep
    np.unique's rules (NaN).

    >>> distinct(np.array([5, 3, 5, 0, 3], dtype=np.uint64)).tolist()
    [0, 3, 5]
    >>> distinct(np.array([], dtype=np.int64)).dtype, distinct(np.array([7, 7], np.uint16)).tolist()
    (dtype('int64'), [7])
    """
    values = np.asarray(values).ravel()
    if values.dtype.kind == "u" and values.dtype.itemsize <= 2:
        # a table of every value (64 KiB for ports): an O(n) pass, and no
        # call of np.unique, whose hash path imports numpy.ma (17 ms of CPU
        # of a process that has not used it yet)
        seen = np.zeros(1 << (8 * values.dtype.itemsize), dtype=bool)
        seen[values] = True
        return np.flatnonzero(seen).astype(values.dtype)
    if len(values) == 0:  # np.unique's answer (a host with no socket wanted), without numpy.ma
        return values.copy()
    if values.dtype.kind not in "iu" or values.dtype.itemsize < 4:
        return np.unique(values)
    ordered = np.sort(values)
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


#: At most this many choices, :func:`member` compares once per choice.
MEMBER_MAX = 8


def member(values: np.ndarray, choices) -> np.ndarray:
    """``np.isin(values, choices)`` for an integer column and a few integer
    choices (states, a namespace's listening ports): one ``==`` per choice.

    np.isin costs 40-55 us a call on a namespace's 46 rows (numpy 2.4.6:
    iinfo look-ups and its table heuristic; an --all-netns diagnosis of
    150 pods calls it ~1,500 times) and 6-14 ms on 1M uint8 states, where
    four comparisons take 0.3 ms. The choices are compared as Python ints,
    so that a value no row can hold (300 for a uint8 column, -1) matches
    nothing instead of being cast; more than :data:`MEMBER_MAX` choices,
    or other kinds, go to np.isin.

    >>> member(np.array([1, 5, 7, 9], np.uint8), [5, 7, 300, -1]).tolist()
    [False, True, True, False]
    >>> member(np.array([8080, 22], np.uint16), np.array([8080], np.uint16)).tolist()
    [True, False]
    >>> member(np.array([3, 4]), []).tolist()
    [False, False]
    """
    values = np.asarray(values)
    listed = choices.ravel().tolist() if isinstance(choices, np.ndarray) else list(choices)
    if values.dtype.kind not in "iu" or len(listed) > MEMBER_MAX \
            or not all(isinstance(c, (int, np.integer)) for c in listed):
        return np.isin(values, choices)
    out = np.zeros(values.shape, dtype=bool)
    for c in listed:
        out |= values == int(c)
    return out


def median(values: np.ndarray) -> np.floating:
    """``np.median(values)`` of a non-empty 1-D array, the same value,
    without what np.median costs a process that has not used it yet:
    numpy 2.4's median imports numpy.ma (to test for a masked array),
    0.04 s of CPU, a tenth of a 300k report's diagnosis. The middle one
    or two values by ``np.partition``, their mean, NaN when any is NaN.

    >>> float(median(np.array([3.0, 1.0, 2.0]))), float(median(np.array([4, 1, 3, 2])))
    (2.0, 2.5)
    >>> float(median(np.array([1.0, np.nan, 0.5])))
    nan
    """
    values = np.asarray(values).ravel()
    if len(values) == 0:
        raise ValueError("median of no values")
    if values.dtype.kind in "fc" and np.isnan(values).any():
        return values.dtype.type(np.nan)
    half = len(values) // 2
    if len(values) % 2:
        return np.partition(values, half)[half:half + 1].mean()
    return np.partition(values, [half - 1, half])[half - 1:half + 1].mean()


def _factorize(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, index of each key in them).

    np.unique(return_inverse=True) argsorts all keys (0.2-0.3 s for 2M
    here); with few distinct values, sorting them and a binary search per
    key costs less than half of that.
    """
    uniq = distinct(key)
    if len(uniq) <= 1 << 16:
        return uniq, np.searchsorted(uniq, key)
    uniq, inv = np.unique(key, return_inverse=True)
    return uniq, inv.ravel()


def _address(cache: dict, family: int, raw: bytes) -> str:
    key = (family, raw)
    text = cache.get(key)
    if text is None:
        text = cache[key] = format_address(family, raw)
    return text
