"""Per-namespace arrays the rules share, computed once per diagnosis.

Rules work on numpy masks and row indices; a :class:`~tcplinger.model.socket.SocketRecord`
is built only for the few rows a finding shows (its capped sample).
"""

from __future__ import annotations

from functools import cached_property
from typing import Iterable, Sequence

import numpy as np

from ..model.socket import Age, AgeSource, Owner, UNKNOWN_AGE
from ..model.states import TcpState
from ..model.table import SocketTable
from ..track import age as age_mod
from .finding import OwnerRef, SocketSample
from .inputs import NamespaceInput



def address_words(column: np.ndarray) -> np.ndarray:
    """A ``V16`` address column as an (n, 2) uint64 array, for grouping."""
    return np.ascontiguousarray(column).view(np.uint64).reshape(-1, 2)


class NsContext:
    """One namespace's input plus derived columns."""

    def __init__(self, inp: NamespaceInput, index: int = 0):
        self.inp = inp
        self.index = index
        self.netns = inp.netns
        self.kernel = inp.kernel
        self.table: SocketTable = inp.table
        self.rows = inp.table.rows
        self.state = self.rows["state"]
        self.inode = self.rows["inode"]

    # ---- kernel settings and counters --------------------------------
    def sysctl(self, name: str, default=None):
        return self.kernel.sysctls.get(name, default)

    def counter(self, name: str) -> int | None:
        return self.kernel.tcpext.get(name)

    def delta(self, name: str) -> int | None:
        """Counter increase since ``previous`` (None without a previous)."""
        prev = self.inp.previous
        if prev is None or name not in prev.tcpext or name not in self.kernel.tcpext:
            return None
        return self.kernel.tcpext[name] - prev.tcpext[name]

    # ---- masks ---------------------------------------------------------
    def in_state(self, *states: TcpState) -> np.ndarray:
        if len(states) == 1:
            return self.state == int(states[0])
        return np.isin(self.state, [int(s) for s in states])

    def indices(self, mask: np.ndarray) -> np.ndarray:
        return np.flatnonzero(mask)

    @cached_property
    def listen_ports(self) -> frozenset[int]:
        """Local ports with a listener: TIME_WAIT on them is server-side."""
        ports = self.rows["sport"][self.state == int(TcpState.LISTEN)]
        return frozenset(np.unique(ports).tolist())

    # ---- ages ----------------------------------------------------------
    @cached_property
    def _ages(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.rows)
        if self.inp.ages is not None:
            secs = np.array([np.nan if a.seconds is None else a.seconds for a in self.inp.ages],
                            dtype=float)
            lower = np.array([a.at_least for a in self.inp.ages], dtype=bool)
            return secs.reshape(n), lower.reshape(n)
        exact = age_mod.timer_ages(self.table, self.kernel)
        bound = age_mod.lower_bounds(self.table)
        lower = np.isnan(exact) & ~np.isnan(bound)
        secs = np.where(np.isnan(exact), bound, exact)
        return secs, lower

    @property
    def age(self) -> np.ndarray:
        """Seconds in state (NaN: unknown)."""
        return self._ages[0]

    @property
    def age_is_lower_bound(self) -> np.ndarray:
        return self._ages[1]

    def age_of(self, i: int) -> Age:
        if self.inp.ages is not None:
            return self.inp.ages[i]
        secs = float(self.age[i])
        if secs != secs:
            return UNKNOWN_AGE
        if self.age_is_lower_bound[i]:
            return Age(secs, True, AgeSource.LAST_RECV)
        return Age(secs, False, AgeSource.TIMER)

    # ---- owners --------------------------------------------------------
    @property
    def owners_resolved(self) -> bool:
        return self.inp.owners is not None

    def owners_of_row(self, i: int) -> tuple[Owner, ...]:
        if not self.inp.owners:
            return ()
        return self.inp.owners.get(int(self.inode[i]), ())

    def by_owner(self, idx: np.ndarray) -> tuple[dict[int, tuple[Owner, np.ndarray]], np.ndarray]:
        """Rows grouped by owning pid, and the rows no owner was found for.

        A socket shared by several processes (fork, SCM_RIGHTS) counts for
        each of them.
        """
        groups: dict[int, tuple[Owner, list[int]]] = {}
        unowned: list[int] = []
        owners = self.inp.owners or {}
        inodes = self.inode[idx].tolist()
        for i, ino in zip(idx.tolist(), inodes):
            found = owners.get(ino, ())
            if not found:
                unowned.append(i)
                continue
            seen = set()
            for o in found:
                if o.pid in seen:
                    continue
                seen.add(o.pid)
                entry = groups.get(o.pid)
                if entry is None:
                    groups[o.pid] = (o, [i])
                else:
                    entry[1].append(i)
        return ({pid: (o, np.array(rows, dtype=np.int64)) for pid, (o, rows) in groups.items()},
                np.array(unowned, dtype=np.int64))

    def owner_refs(self, idx: np.ndarray, limit: int = 10) -> tuple[OwnerRef, ...]:
        groups, _ = self.by_owner(idx)
        ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1][1]), kv[0]))
        return tuple(OwnerRef(pid, o.comm) for pid, (o, _) in ordered[:limit])

    # ---- the sample a finding shows -------------------------------------
    def sample(self, idx: np.ndarray, limit: int) -> SocketSample:
        """Up to ``limit`` rows of ``idx``, oldest first (unknown ages last)."""
        idx = np.asarray(idx, dtype=np.int64)
        if len(idx) > 0:
            ages = self.age[idx]
            order = np.lexsort((idx, -np.nan_to_num(ages, nan=-1.0)))
            idx_sorted = idx[order][:limit]
        else:
            idx_sorted = idx
        table = self.table.select(idx_sorted)
        owners = {}
        if self.inp.owners:
            for ino in set(self.inode[idx_sorted].tolist()):
                if ino and ino in self.inp.owners:
                    owners[ino] = self.inp.owners[ino]
        return SocketSample(table, tuple(self.age_of(int(i)) for i in idx_sorted),
                            owners, int(len(idx)))


class World:
    """Every namespace of one diagnosis, for rules that look across them."""

    def __init__(self, inputs: Sequence[NamespaceInput], sysctl_files: Iterable = ()):
        self.contexts = [NsContext(inp, i) for i, inp in enumerate(inputs)]
        self.sysctl_files = tuple(sysctl_files)

    @cached_property
    def _peer_index(self) -> dict:
        """(family, local addr, local port, remote addr, remote port) ->
        (context, row) for connected teardown sockets in every namespace."""
        wanted = [int(s) for s in (TcpState.CLOSE_WAIT, TcpState.FIN_WAIT2, TcpState.FIN_WAIT1,
                                   TcpState.LAST_ACK, TcpState.CLOSING, TcpState.ESTABLISHED)]
        index: dict = {}
        for ctx in self.contexts:
            rows = ctx.rows
            sel = np.flatnonzero(np.isin(rows["state"], wanted))
            if len(sel) == 0:
                continue
            fam = rows["family"][sel].tolist()
            sa = rows["saddr"][sel].tolist()
            da = rows["daddr"][sel].tolist()
            sp = rows["sport"][sel].tolist()
            dp = rows["dport"][sel].tolist()
            for k, i in enumerate(sel.tolist()):
                index.setdefault((fam[k], sa[k], sp[k], da[k], dp[k]), []).append((ctx, i))
        return index

    def peer_of(self, ctx: NsContext, i: int):
        """The other end of row ``i`` if it is in a namespace being looked at.

        Loopback connections match only inside the same namespace (each
        namespace has its own 127.0.0.1). Returns (context, row) or None.
        """
        r = ctx.rows[i]
        key = (int(r["family"]), r["daddr"].tobytes(), int(r["dport"]),
               r["saddr"].tobytes(), int(r["sport"]))
        candidates = self._peer_index.get(key, ())
        loop = _is_loopback(int(r["family"]), r["saddr"].tobytes())
        for other, j in candidates:
            if other is ctx and j == i:
                continue
            if loop and other is not ctx:
                continue
            return other, j
        return None


def _is_loopback(family: int, raw: bytes) -> bool:
    if family == 2:
        return raw[0] == 127
    return raw == bytes(15) + b"\x01" or (raw[:12] == bytes(10) + b"\xff\xff" and raw[12] == 127)
