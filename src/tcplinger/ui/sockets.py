"""The ``ls`` table."""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator

import numpy as np

from ..model.owner_map import OwnerMap
from ..model.socket import Age, AgeSource, SocketRecord, TimerKind
from ..model.states import BY_STATE, TcpState, name as state_name
from ..model.table import address_codes
from ..track import age as age_mod
from .table import duration, render_blocks


def age_text(rec: SocketRecord) -> str:
    a = rec.age
    if a.seconds is None:
        return "?"
    return ("≥" if a.at_least else "") + duration(a.seconds) + f" ({a.source.value})"


def timer_text(rec: SocketRecord) -> str:
    t = rec.timer
    if t.kind == TimerKind.OFF:
        return "-"
    return f"{t.kind.name.lower()},{t.expires_ms / 1000:.1f}s,{t.retransmits}"


def owner_text(rec: SocketRecord, resolved: bool, msg) -> str:
    if rec.inode == 0:
        return msg("ls.no_owner_tw") if rec.state == TcpState.TIME_WAIT else msg("ls.no_owner_orphan")
    if not resolved:
        return ""
    if not rec.owners:
        return msg("ls.owner_unknown")
    return ",".join(f"{o.comm}/{o.pid}:{o.fd}" for o in rec.owners)


def render(view, msg, *, width: int = 200) -> list[str]:
    """The lines of :func:`lines`, as a list."""
    return list(lines(view, msg, width=width))


def lines(view, msg, *, width: int = 200) -> Iterator[str]:
    """The table of ``view``'s sockets, built a column at a time from the
    numpy columns (no SocketRecord per row): the same text as
    :func:`age_text`, :func:`timer_text` and :func:`owner_text` give for
    records, ~10x faster at 200k rows.  The cells are made BLOCK rows at a
    time and the lines yielded as they are joined (ui/table.render_blocks),
    so that a 200k-row table never exists as 200k lines or 1.6M cells."""
    multi = len(view.parts) > 1
    headers = [msg("col.state"), msg("col.recvq"), msg("col.sendq"), msg("col.local"),
               msg("col.remote"), msg("col.timer"), msg("col.age"), msg("col.owner")]
    if multi:
        headers.insert(0, msg("col.netns"))

    def blocks():
        for part in view.parts:
            cells = _Cells(part, view.owners_resolved, msg)
            n = len(part.table)
            label = part.ns.netns.label() if multi else None
            for lo in range(0, n, BLOCK):
                cols = cells.block(lo, min(n, lo + BLOCK))
                if multi:
                    cols.insert(0, [label] * len(cols[0]))
                yield cols

    align = ("l" if multi else "") + "lrrlllll"
    with _gc_paused():
        yield from render_blocks(headers, blocks(), align=align, max_width=width)
    yield (msg("ls.footer", n=view.total) +
           ("" if view.owners_resolved else " " + msg("ls.hint_owners")))


#: Rows whose cells are made at a time.
BLOCK = 2048

_STATE_WORD = [BY_STATE[TcpState(s)].ss_name if s in BY_STATE else state_name(s) for s in range(256)]
_TIMER_WORD = {int(k): k.name.lower() for k in TimerKind if k != TimerKind.OFF}


class _Cells:
    """State, Recv-Q, Send-Q, local, remote, timer, age, owner of one
    namespace's rows, as lists of str, a block of rows at a time.  Repeated
    texts (states, small queue lengths, ages to the second) are one shared
    str each."""

    def __init__(self, part, resolved: bool, msg):
        self.rows = rows = part.table.rows
        self.local = _Endpoints(rows, "saddr", "sport")
        self.remote = _Endpoints(rows, "daddr", "dport")
        self.ages = _Ages(part)
        self.owners = _OwnerWords(part.owners, resolved, msg)

    def block(self, lo: int, hi: int) -> list[list[str]]:
        rows = self.rows[lo:hi]
        state = rows["state"].tolist()
        words = _TIMER_WORD
        timer = [f"{words[k]},{e / 1000:.1f}s,{r}" if k in words else "-" for k, e, r in
                 zip(rows["timer"].tolist(), rows["expires_ms"].tolist(),
                     rows["retrans"].tolist())]
        return [[_STATE_WORD[s] for s in state], _numbers(rows["recv_q"]),
                _numbers(rows["send_q"]), self.local.texts(lo, hi), self.remote.texts(lo, hi),
                timer, self.ages.texts(lo, hi),
                self.owners.texts(state, rows["inode"])]


_SMALL = [str(i) for i in range(4096)]


def _numbers(column) -> list[str]:
    small = _SMALL
    return [small[v] if v < 4096 else str(v) for v in column.tolist()]


class _Endpoints:
    """``Endpoint.__str__`` of rows: [v6]:port, v4:port (each distinct
    address formatted once)."""

    def __init__(self, rows, address: str, port: str):
        self.codes, texts = address_codes(rows, address)
        self.addresses = [f"[{t}]" if ":" in t else t for t in texts]
        self.ports = rows[port]

    def texts(self, lo: int, hi: int) -> list[str]:
        addresses = self.addresses
        return [f"{addresses[c]}:{p}" for c, p in zip(self.codes[lo:hi].tolist(),
                                                       self.ports[lo:hi].tolist())]


class _Ages:
    """:func:`age_text` of rows' ages, from the age arrays."""

    def __init__(self, part):
        self.tracked = None
        if getattr(part, "tracked", None) is not None:  # ages merged with a watch database
            self.tracked = [_age_words(a) for a in part.ages()]
            return
        self.exact, self.bound = part.age_arrays()
        known_exact = ~np.isnan(self.exact)
        since_close = age_mod.since_close_mask(part.table)
        lower = ~known_exact & ~np.isnan(self.bound)
        self.kinds = ((False, AgeSource.TIMER, known_exact),
                      (True, AgeSource.LAST_RECV, lower & ~since_close),
                      (True, AgeSource.SINCE_CLOSE, lower & since_close))
        self.memo: dict = {}

    def texts(self, lo: int, hi: int) -> list[str]:
        if self.tracked is not None:
            return self.tracked[lo:hi]
        out = ["?"] * (hi - lo)
        memo = self.memo
        for at_least, source, sel in self.kinds:
            values = self.bound if at_least else self.exact
            idx = np.flatnonzero(sel[lo:hi])
            for i, sec in zip(idx.tolist(), values[lo:hi][idx].tolist()):
                key = (source, int(sec) if sec >= 10 else sec)  # duration() shows whole seconds from 10 s
                text = memo.get(key)
                if text is None:
                    text = memo[key] = _age_words(Age(sec, at_least, source))
                out[i] = text
        return out


def _age_words(age) -> str:
    if age.seconds is None:
        return "?"
    return ("≥" if age.at_least else "") + duration(age.seconds) + f" ({age.source.value})"


class _OwnerWords:
    """:func:`owner_text` of rows, from the owner map's columns
    (model/owner_map.py): each process's ``comm/pid:`` made once."""

    def __init__(self, owners, resolved: bool, msg):
        self.tw, self.orphan = msg("ls.no_owner_tw"), msg("ls.no_owner_orphan")
        self.unknown = msg("ls.owner_unknown")
        self.resolved = resolved
        self.map = OwnerMap.of(owners) if resolved else None
        if self.map is not None:
            self.heads = [f"{p.comm}/{p.pid}:" for p in self.map.processes]

    def texts(self, state: list[int], inode: np.ndarray) -> list[str]:
        tw, orphan, time_wait = self.tw, self.orphan, int(TcpState.TIME_WAIT)
        if not self.resolved:
            return [("" if ino else tw if s == time_wait else orphan)
                    for s, ino in zip(state, inode.tolist())]
        m, heads = self.map, self.heads
        start, count = m.runs(inode)
        if len(m.inode):
            proc, fd = m.proc[start].tolist(), m.fd[start].tolist()
        else:
            proc = fd = [0] * len(inode)
        out = []
        for s, ino, n, p, f, at in zip(state, inode.tolist(), count.tolist(), proc, fd,
                                       start.tolist()):
            if ino == 0:
                out.append(tw if s == time_wait else orphan)
            elif n == 1:
                out.append(heads[p] + str(f))
            elif n == 0:
                out.append(self.unknown)
            else:
                out.append(",".join(heads[q] + str(g) for q, g in
                                    zip(m.proc[at:at + n].tolist(), m.fd[at:at + n].tolist())))
        return out


@contextlib.contextmanager
def _gc_paused():
    """No cyclic garbage collection while hundreds of thousands of strings
    and lists are made (none of them in a cycle): the collector would run
    every 700 allocations and walk the young ones, half the time here."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
