"""Per-namespace arrays the rules share, computed once per diagnosis.

Rules work on numpy masks and row indices; a :class:`~tcplinger.model.socket.SocketRecord`
is built only for the few rows a finding shows (its capped sample).
"""

from __future__ import annotations

from functools import cached_property
from typing import Iterable, Sequence

import numpy as np

from ..model.owner_map import OwnerMap
from ..model.socket import Age, AgeSource, Owner, UNKNOWN_AGE
from ..model.states import OWNABLE, TcpState
from ..model.table import SocketTable, distinct
from ..track import age as age_mod
from . import process_text, rates
from .finding import OwnerRef, SocketSample
from .inputs import NamespaceInput
from .peers import PeerIndex, address_words, mix64  # noqa: F401 - evidence, ephemeral_ports


class NsContext:
    """One namespace's input plus derived columns."""

    def __init__(self, inp: NamespaceInput, index: int = 0):
        self.inp = inp
        self.index = index
        self.netns = inp.netns
        self.kernel = inp.kernel
        self.table: SocketTable = inp.table
        self.rows = inp.table.rows
        # copies of the two columns every rule tests: a field of the
        # structured rows is a view with a stride of a whole row (78 bytes),
        # which a comparison reads a cache line per row for (300k rows:
        # ~2 ms a pass against ~0.02 ms contiguous; 12+ passes a report)
        self.state = np.ascontiguousarray(self.rows["state"])
        self.inode = np.ascontiguousarray(self.rows["inode"])

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

    def active_close_rate(self) -> rates.Rate | None:
        """Connections closed first here per second, from TcpExt TW +
        TCPTimeWaitOverflow read twice (--interval), else from the watch
        database; None when no rate was sampled (diagnose.rates)."""
        prev = self.inp.previous
        if prev is not None:
            found = rates.from_readings(prev.tcpext, self.kernel.tcpext, self.inp.interval,
                                        end=self.inp.sampled_at)
            if found is not None:
                return found
        return self.inp.rates.get("active_close")

    # ---- masks ---------------------------------------------------------
    def in_state(self, *states: TcpState) -> np.ndarray:
        if len(states) == 1:
            return self.state == int(states[0])
        wanted = np.zeros(256, bool)  # a lookup by state number: np.isin sorts
        wanted[[int(s) for s in states]] = True
        return wanted[self.state]

    def indices(self, mask: np.ndarray) -> np.ndarray:
        return np.flatnonzero(mask)

    @cached_property
    def listen_ports(self) -> frozenset[int]:
        """Local ports with a listener: TIME_WAIT on them is server-side."""
        ports = self.rows["sport"][self.state == int(TcpState.LISTEN)]
        return frozenset(distinct(ports).tolist())

    # ---- ages ----------------------------------------------------------
    @cached_property
    def _ages(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.rows)
        if self.inp.ages is not None:
            secs = np.array([np.nan if a.seconds is None else a.seconds for a in self.inp.ages],
                            dtype=float)
            lower = np.array([a.at_least for a in self.inp.ages], dtype=bool)
            return secs.reshape(n), lower.reshape(n)
        exact, bound = age_mod.age_arrays(self.table, self.kernel)
        unknown = np.isnan(exact)
        lower = unknown & ~np.isnan(bound)
        np.copyto(exact, bound, where=unknown)  # in place: 8 MB less at 1M rows
        return exact, lower

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
            since_close = self.state[i] == int(TcpState.FIN_WAIT2) and self.inode[i] == 0
            return Age(secs, True, AgeSource.SINCE_CLOSE if since_close else AgeSource.LAST_RECV)
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
        idx = np.asarray(idx, dtype=np.int64)
        owners = self.inp.owners or {}
        if not owners or len(idx) == 0:
            return {}, idx
        # from the owner columns: Owners are made for the rows that hold more
        # than one fd and one row of each group only (asking the map for
        # every row's Owners took ~0.05 s of a 10k-socket report, issue 16)
        om = OwnerMap.of(owners)
        start, count = om.runs(self.inode[idx])
        pid_of = np.array([p.pid for p in om.processes] or [-1], np.int64)
        first_pid = np.where(count > 0, pid_of[om.proc[start]] if len(om.proc) else -1, -1)

        def first_owner(k: int) -> Owner:
            return om.owners_at(int(start[k]), int(start[k]) + 1)[0]

        extra_rows: dict[int, list[int]] = {}
        who: dict[int, Owner] = {}
        for k in np.flatnonzero(count > 1).tolist():  # rare: more than one fd or process
            f = om.owners_at(int(start[k]), int(start[k] + count[k]))
            for o in f[1:]:
                if o.pid != f[0].pid and int(idx[k]) not in extra_rows.get(o.pid, ()):
                    extra_rows.setdefault(o.pid, []).append(int(idx[k]))
                    who.setdefault(o.pid, o)
        if not extra_rows and first_pid[0] >= 0 and (first_pid == first_pid[0]).all():
            # one process holds them all (a finding's own rows): its group as
            # the general case below builds it, without np.unique's sorts
            return {int(first_pid[0]): (first_owner(0), idx.copy())}, idx[:0].copy()
        groups: dict[int, tuple[Owner, np.ndarray]] = {}
        owned = first_pid >= 0
        if owned.any():
            pids, first, inverse = np.unique(first_pid[owned], return_index=True,
                                             return_inverse=True)
            owned_idx = idx[owned]
            owned_pos = np.flatnonzero(owned)
            order = np.argsort(inverse.reshape(-1), kind="stable")
            bounds = np.searchsorted(inverse.reshape(-1)[order], np.arange(len(pids) + 1))
            for g, pid in enumerate(pids.tolist()):
                members = owned_idx[order[bounds[g]:bounds[g + 1]]]
                groups[pid] = (first_owner(int(owned_pos[first[g]])), members)
        for pid, extra in extra_rows.items():
            if pid in groups:
                o, members = groups[pid]
                groups[pid] = (o, np.union1d(members, np.array(extra, dtype=np.int64)))
            else:
                groups[pid] = (who[pid], np.array(sorted(extra), dtype=np.int64))
        return groups, idx[~owned]

    def owner_refs(self, idx: np.ndarray, limit: int = 10) -> tuple[OwnerRef, ...]:
        groups, _ = self.by_owner(idx)
        ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1][1]), kv[0]))
        return tuple(process_text.ref(o) for pid, (o, _) in ordered[:limit])

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
    """Every namespace of one diagnosis, for rules that look across them.

    ``brief``: findings of rule_finding.RuleFinding carry their rule,
    severity, namespace, count, owners, title and confidence only (the
    exporter's; engine.diagnose).
    """

    def __init__(self, inputs: Sequence[NamespaceInput], sysctl_files: Iterable = (),
                 brief: bool = False):
        self.contexts = [NsContext(inp, i) for i, inp in enumerate(inputs)]
        self.sysctl_files = tuple(sysctl_files)
        self.brief = brief

    @cached_property
    def _peers(self) -> PeerIndex:
        return PeerIndex(self.contexts)

    def peers(self, ctx: NsContext, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The other end of each of ``rows``, if it is in a namespace being
        looked at: (context index, row) arrays, -1 where not found
        (diagnose/peers.py). Loopback connections match only inside the
        same namespace (each namespace has its own 127.0.0.1)."""
        me = next(i for i, c in enumerate(self.contexts) if c is ctx)
        return self._peers.peers(me, rows)

    def peer_of(self, ctx: NsContext, i: int):
        """(context, row) of the other end of row ``i``, or None."""
        c, r = self.peers(ctx, np.array([i]))
        return None if c[0] < 0 else (self.contexts[int(c[0])], int(r[0]))
