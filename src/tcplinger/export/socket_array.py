"""The ``ls --json`` socket objects of a whole table, as bytes: each block
of :data:`BLOCK` rows is one numpy matrix of bytes, a fixed-width record
per row (the per-row writer of export/jsonout.py gives the same objects; a
unit test checks every row parses to exactly ``SocketRecord.to_json()``).
JSON allows whitespace around values, so numbers and strings are
right-aligned in their columns with spaces before them (``"port":   100``);
nothing inside a string changes. Digits are computed a column at a time,
addresses are formatted once per distinct address, and constant parts
(keys, the namespace, unknown ages, empty owner lists) are copied from a
template row. Rows the matrix cannot express (a negative timer, an age
outside 0..1e12 s) go through the per-row writer. At 1M sockets this takes
~0.6 s of CPU and ~60 MB instead of ~6 s and ~900 MB (docs/performance.md).

Example of the fast writer (two sockets, the namespace left out):

>>> import io
>>> from tcplinger.model.table import empty
>>> rows = empty(2)
>>> rows["family"] = 2; rows["state"] = [10, 1]; rows["sport"] = [80, 41234]
>>> rows["saddr"] = [bytes([127, 0, 0, 1]) + bytes(12)] * 2; rows["inode"] = [5, 12345]
>>> out = io.BytesIO()
>>> SocketArray(out.write).add(SocketTable(rows))
>>> print(out.getvalue().decode())  # doctest: +NORMALIZE_WHITESPACE
{"state": "LISTEN", "family": "ipv4", "local": {"address": "127.0.0.1", "port": 80},
 "remote": {"address": "0.0.0.0", "port": 0}, "cookie": 0, "inode": 5, "uid": 0,
 "orphan": false, "timewait_type": false, "timer": {"kind": "off", "expires_ms": 0,
 "retransmits": 0}, "recv_q": 0, "send_q": 0, "shutdown": null, "netns": null,
 "owners": [], "age": {"seconds": null, "at_least": false, "source": "unknown"}},
{"state": "ESTABLISHED", "family": "ipv4", "local": {"address": "127.0.0.1", "port": 41234},
 "remote": {"address": "0.0.0.0", "port": 0}, "cookie": 0, "inode": 12345, "uid": 0,
 "orphan": false, "timewait_type": false, "timer": {"kind": "off", "expires_ms": 0,
 "retransmits": 0}, "recv_q": 0, "send_q": 0, "shutdown": null, "netns": null,
 "owners": [], "age": {"seconds": null, "at_least": false, "source": "unknown"}}
"""

from __future__ import annotations

import json
from typing import Callable

import numpy as np

from ..model.socket import AgeSource
from ..model.states import AFTER_CLOSE
from ..model.table import TCP_INFO_FIELDS, SocketTable, address_codes, distinct
from ..model.owner_map import OwnerMap
from .age_columns import BlockAges
from .jsonout import BOOL_JSON, STATE_JSON, TIMER_JSON, socket_objects
from .owner_json import OwnerJson

#: Rows per matrix. 32k rows of ~600 bytes (with tcp_info) keep a block
#: near 20 MB; larger blocks were no faster here.
BLOCK = 1 << 14

_SPACE = 32
_SEP = b",\n"  # before every object but the first of the array
_ORPHAN_STATES = np.array(sorted(int(s) for s in AFTER_CLOSE))


class _Vocab:
    """Strings as rows of a (len, width) byte matrix, right-aligned (ASCII),
    to be picked by code a whole column at a time."""

    def __init__(self, strings: list[str]):
        self.width = max((len(s) for s in strings), default=0)
        self.lens = np.array([len(s) for s in strings], np.int64)
        self.matrix = np.frombuffer("".join(s.rjust(self.width) for s in strings)
                                    .encode("ascii"), np.uint8).reshape(len(strings), self.width)

    def pick(self, codes: np.ndarray) -> np.ndarray:
        """(len(codes), w): the strings of ``codes``, w the widest of them."""
        codes = np.asarray(codes, np.intp)
        w = int(self.lens[codes].max()) if codes.size else 0
        return self.matrix[:, self.width - w:][codes]


_STATE_V = _Vocab(STATE_JSON)
_TIMER_V = _Vocab(TIMER_JSON)
_BOOL_V = _Vocab(list(BOOL_JSON))
_FAMILY_V = _Vocab(['"ipv4"', '"ipv6"'])
_SOURCE_V = _Vocab([json.dumps(s.value) for s in
                    (AgeSource.UNKNOWN, AgeSource.TIMER, AgeSource.LAST_RECV,
                     AgeSource.TRACE, AgeSource.FIRST_SEEN,
                     AgeSource.SINCE_CLOSE)])  # track.events.SOURCE_CODES


def _digits(values: np.ndarray) -> np.ndarray:
    """Non-negative integers as right-aligned decimal digits, (n, width).

    Digit positions are computed a row of the transposed matrix at a time,
    in 32-bit arithmetic when the values fit (64-bit division is the slow
    part here).

    >>> _digits(np.array([7, 1234, 0])).tobytes()
    b'   71234   0'
    """
    v = np.asarray(values)
    top = int(v.max()) if v.size else 0
    width = len(str(top))
    x = v.astype(np.uint32 if top < 2**32 else np.uint64)
    digits = np.empty((width, v.size), np.uint8)
    q = np.empty_like(x)
    r = np.empty_like(x)
    for j in range(width - 1, -1, -1):
        np.floor_divide(x, 10, out=q)
        np.multiply(q, 10, out=r)
        np.subtract(x, r, out=r)
        digits[j] = r
        x, q = q, x
    digits += ord("0")
    for j in range(width - 1):  # leading zeros -> spaces
        digits[j][v < 10 ** (width - 1 - j)] = _SPACE
    return digits.T


class _Record:
    """A row layout: literal bytes and (n, w) field matrices, in order."""

    def __init__(self, n: int):
        self.n = n
        self.parts: list = []

    def lit(self, text: str | bytes) -> None:
        data = text.encode("ascii") if isinstance(text, str) else text
        if self.parts and isinstance(self.parts[-1], bytes):
            self.parts[-1] += data
        else:
            self.parts.append(data)

    def field(self, matrix: np.ndarray) -> None:
        self.parts.append(matrix)

    def build(self) -> np.ndarray:
        widths = [len(p) if isinstance(p, bytes) else p.shape[1] for p in self.parts]
        template = np.frombuffer(b"".join(p if isinstance(p, bytes) else bytes(w)
                                          for p, w in zip(self.parts, widths)), np.uint8)
        out = np.empty((self.n, template.size), np.uint8)
        out[:] = template
        at = 0
        for part, w in zip(self.parts, widths):
            if not isinstance(part, bytes):
                out[:, at:at + w] = part
            at += w
        return out


class _Addresses:
    """saddr/daddr of a table as codes into vocabularies of quoted addresses
    (model.table.address_codes: each distinct address formatted once)."""

    def __init__(self, rows: np.ndarray):
        codes, texts = address_codes(rows, "saddr")
        self.source, self.source_vocab = codes, _Vocab(['"' + t + '"' for t in texts])
        codes, texts = address_codes(rows, "daddr")
        self.dest, self.dest_vocab = codes, _Vocab(['"' + t + '"' for t in texts])


class SocketArray:
    """Writes the socket objects of ``ls --json`` as bytes: ``obj,\\nobj``...

    ``write`` takes bytes-like objects.  The caller writes the brackets
    around; :meth:`add` may be called once per namespace.
    """

    def __init__(self, write: Callable[[bytes], object], *, block: int = BLOCK):
        self._write = write
        self._block = block
        self._first = True

    def add(self, table: SocketTable, *, netns=None, owners=None, ages=None) -> None:
        """The rows of one table; ``ages`` is None or the (exact, lower
        bound) arrays of track.age.age_arrays()."""
        n = len(table)
        if n == 0:
            return
        ctx = _Context(table, netns, owners, ages)
        for lo in range(0, n, self._block):
            self._emit(ctx.block(lo, min(lo + self._block, n)))

    def _emit(self, chunks: list) -> None:
        if self._first and chunks:
            chunks[0] = memoryview(chunks[0])[len(_SEP):]
            self._first = False
        if len(chunks) == 1:
            self._write(chunks[0])
        elif chunks:
            self._write(b"".join(chunks))


class _Context:
    """What the blocks of one table share."""

    def __init__(self, table: SocketTable, netns, owners, ages):
        self.table = table
        self.rows = rows = table.rows
        self.netns = json.dumps(netns.to_json()) if netns is not None else "null"
        self.netns_ref = netns
        # the owner map's columns, never its per-inode index (export/owner_json.py)
        self.owners = OwnerJson(OwnerMap.of(owners)) if owners else None
        self.addresses = _Addresses(rows)
        n = len(rows)
        tracked = None
        if ages is None:
            exact = bound = np.full(n, np.nan)
        elif len(ages) == 3:
            # tracked ages (track.events.TrackedAges.as_tuple()): seconds,
            # at_least, source codes 0..5 (_SOURCE_V order)
            tracked = ages
            secs = np.where(ages[2] == 0, np.nan, ages[0])
            exact = np.where(ages[1], np.nan, secs)
            bound = np.where(ages[1], secs, np.nan)
        else:
            exact, bound = ages
        self.exact, self.bound = exact, bound
        self.tracked = tracked
        self.present = (table.info["present"] if table.info is not None
                        else np.zeros(n, bool))
        self._ages: BlockAges | None = None

    def _ages_of(self, lo: int, hi: int) -> BlockAges:
        """The age columns of rows lo..hi (export/age_columns.py)."""
        a = self._ages
        if a is None or (a.lo, a.hi) != (lo, hi):
            a = self._ages = BlockAges(self.rows, self.exact, self.bound, self.tracked, lo, hi)
        return a

    def block(self, lo: int, hi: int) -> list:
        """The bytes of rows lo..hi, in order, as a list of chunks."""
        kind = np.where(self.present[lo:hi], 1, 0).astype(np.uint8)
        kind[self._ages_of(lo, hi).per_row] = 2
        groups = {}
        kinds_here = distinct(kind).tolist()  # not np.unique: it imports numpy.ma
        for k in kinds_here:
            # a slice when one kind fills the block: views, not copies
            idx = slice(lo, hi) if len(kinds_here) == 1 else lo + np.flatnonzero(kind == k)
            groups[k] = self._per_row(idx) if k == 2 else self._matrix(idx, info=k == 1)
        if len(groups) == 1:
            (only,) = groups.values()
            return [b"".join(only) if isinstance(only, list) else only.reshape(-1)]
        # Runs of one kind, in row order; each group's rows are consecutive.
        starts = np.flatnonzero(np.diff(kind)) + 1
        bounds = [0] + starts.tolist() + [hi - lo]
        used = dict.fromkeys(groups, 0)
        chunks = []
        kinds = kind.tolist()
        for a, b in zip(bounds, bounds[1:]):
            k = kinds[a]
            g, p = groups[k], used[k]
            chunks.append(b"".join(g[p:p + b - a]) if k == 2 else g[p:p + b - a].reshape(-1))
            used[k] = p + b - a
        return chunks

    def _per_row(self, idx) -> list[bytes]:
        sub = self.table.select(idx)
        if self.tracked is not None:
            ages = tuple(np.asarray(a)[idx] for a in self.tracked)
        else:
            ages = (self.exact[idx], self.bound[idx])
        owners = self.owners.of(sub.rows["inode"]) if self.owners is not None else {}
        return [_SEP + s.encode("ascii") for s in
                socket_objects(sub, netns=self.netns_ref, owners=owners, ages=ages)]

    def _matrix(self, idx, *, info: bool) -> np.ndarray:
        """The rows ``idx`` (an index array or a slice) as an (n, width) matrix."""
        r = self.rows[idx]
        n = len(r)
        rec = _Record(n)
        addr = self.addresses
        rec.lit(b',\n{"state": ')
        rec.field(_STATE_V.pick(r["state"]))
        rec.lit(', "family": ')
        rec.field(_FAMILY_V.pick(r["family"] == 10))
        rec.lit(', "local": {"address": ')
        rec.field(addr.source_vocab.pick(addr.source[idx]))
        rec.lit(', "port": ')
        rec.field(_digits(r["sport"]))
        rec.lit('}, "remote": {"address": ')
        rec.field(addr.dest_vocab.pick(addr.dest[idx]))
        rec.lit(', "port": ')
        rec.field(_digits(r["dport"]))
        inode = r["inode"]
        for key, col in (("cookie", r["cookie"]), ("inode", inode), ("uid", r["uid"])):
            rec.lit(f'}}, "{key}": ' if key == "cookie" else f', "{key}": ')
            rec.field(_digits(col))
        orphan = (inode == 0) & np.isin(r["state"], _ORPHAN_STATES)
        rec.lit(', "orphan": ')
        rec.field(_BOOL_V.pick(orphan))
        rec.lit(', "timewait_type": ')
        rec.field(_BOOL_V.pick(r["timewait"]))
        rec.lit(', "timer": {"kind": ')
        rec.field(_TIMER_V.pick(r["timer"]))
        rec.lit(', "expires_ms": ')
        rec.field(_digits(r["expires_ms"]))
        rec.lit(', "retransmits": ')
        rec.field(_digits(r["retrans"]))
        rec.lit('}, "recv_q": ')
        rec.field(_digits(r["recv_q"]))
        rec.lit(', "send_q": ')
        rec.field(_digits(r["send_q"]))
        rec.lit(', "shutdown": ')
        rec.field(_nullable(r["shutdown"].astype(np.int64), r["shutdown"] < 0))
        rec.lit(f', "netns": {self.netns}, "owners": ')
        strings, has_owners = self.owners.texts(inode) if self.owners is not None else ((), False)
        if has_owners:
            rec.field(_Vocab(strings).matrix)
        else:
            rec.lit("[]")
        self._age(rec, idx, n)
        if info:
            inf = self.table.info[idx]
            for i, (name, _) in enumerate(TCP_INFO_FIELDS):
                rec.lit(f', "{name}": ' if i else ', "tcp_info": {' + f'"{name}": ')
                rec.field(_digits(inf[name]))
            rec.lit("}")
        rec.lit("}")
        return rec.build()

    def _age(self, rec: _Record, idx, n: int) -> None:
        ages = self._ages
        local = ages.local(idx)
        known = ages.known[local]
        if not known.any():
            rec.lit(', "age": {"seconds": null, "at_least": false, "source": "unknown"}')
            return
        millis = ages.millis[local]
        whole = _digits(millis // 1000)
        frac = _digits(millis % 1000 + 1000)[:, 1:].copy()  # three digits, zeros kept
        # repr() drops trailing zeros but keeps one digit: 4.2, 59.0, 0.001
        zero = frac == ord("0")
        frac[:, 2][zero[:, 2]] = _SPACE
        frac[:, 1][zero[:, 1] & zero[:, 2]] = _SPACE
        number = np.concatenate([whole, np.full((n, 1), ord("."), np.uint8), frac], axis=1)
        null = np.full(number.shape[1], _SPACE, np.uint8)
        null[-4:] = np.frombuffer(b"null", np.uint8)
        number[~known] = null
        rec.lit(', "age": {"seconds": ')
        rec.field(number)
        rec.lit(', "at_least": ')
        rec.field(_BOOL_V.pick(ages.at_least[local]))
        rec.lit(', "source": ')
        rec.field(_SOURCE_V.pick(ages.source[local]))
        rec.lit("}")


def _nullable(values: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Digits, or ``null`` where ``null`` is set."""
    digits = _digits(np.where(null, 0, values))
    if not null.any():
        return digits
    if digits.shape[1] < 4:
        digits = np.concatenate([np.full((len(values), 4 - digits.shape[1]), _SPACE, np.uint8),
                                 digits], axis=1)
    else:
        digits = digits.copy()
    text = np.full(digits.shape[1], _SPACE, np.uint8)
    text[-4:] = np.frombuffer(b"null", np.uint8)
    digits[null] = text
    return digits
