"""Per-namespace arrays the rules share, computed once per diagnosis.

Rules work on numpy masks and row indices; a :class:`~tcplinger.model.socket.SocketRecord`
is built only for the few rows a finding shows (its capped sample).
"""

from __future__ import annotations

from functools import cached_property
from typing import Iterable, Sequence

import numpy as np

from ..model.socket import Age, AgeSource, Owner, UNKNOWN_AGE
from ..model.states import OWNABLE, TcpState
from ..model.table import SocketTable
from ..track import age as age_mod
from . import process_text, rates
from .finding import OwnerRef, SocketSample
from .inputs import NamespaceInput



#: Established sockets in scope up to which they are candidates for "the
#: other end" (hashing and sorting a million keys costs ~0.3 s here).
PEER_ESTABLISHED_MAX = 200_000
#: From this many namespaces on, :meth:`World.peers` searches one index of
#: them all instead of each namespace's: 150 pods made 300 lookups of 150
#: searches each (1.8 s of a 3 s scrape).
MERGED_PEERS_MIN = 8


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
        exact, bound = age_mod.age_arrays(self.table, self.kernel)
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
        if not owners:
            return {}, idx
        found = [owners.get(i) for i in self.inode[idx].tolist()]
        first_pid = np.fromiter((f[0].pid if f else -1 for f in found), dtype=np.int64,
                                count=len(found))
        extra_rows: dict[int, list[int]] = {}
        who: dict[int, Owner] = {}
        for k, f in enumerate(found):
            if f and len(f) > 1:  # rare: more than one fd or process
                for o in f[1:]:
                    if o.pid != f[0].pid and int(idx[k]) not in extra_rows.get(o.pid, ()):
                        extra_rows.setdefault(o.pid, []).append(int(idx[k]))
                        who.setdefault(o.pid, o)
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
                groups[pid] = (found[owned_pos[first[g]]][0], members)
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
    """Every namespace of one diagnosis, for rules that look across them."""

    def __init__(self, inputs: Sequence[NamespaceInput], sysctl_files: Iterable = ()):
        self.contexts = [NsContext(inp, i) for i, inp in enumerate(inputs)]
        self.sysctl_files = tuple(sysctl_files)

    @cached_property
    def _peer_index(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per namespace: hashed connection keys of its connected sockets,
        sorted, and the rows they belong to (for :meth:`peers`)."""
        teardown = sorted(int(s) for s in OWNABLE)
        est = sum(int(np.count_nonzero(c.state == int(TcpState.ESTABLISHED)))
                  for c in self.contexts)
        # ESTABLISHED peers (of a FIN_WAIT1 behind a zero window) are worth
        # indexing only while there are not too many of them.
        wanted = teardown + ([int(TcpState.ESTABLISHED)] if est <= PEER_ESTABLISHED_MAX else [])
        out = []
        for ctx in self.contexts:
            sel = np.flatnonzero(np.isin(ctx.rows["state"], wanted))
            keys = connection_hash(ctx.rows[sel])
            order = np.argsort(keys, kind="stable")
            out.append((keys[order], sel[order]))
        return out

    def peers(self, ctx: NsContext, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The other end of each of ``rows``, if it is in a namespace being
        looked at: (context index, row) arrays, -1 where not found.

        Loopback connections match only inside the same namespace (each
        namespace has its own 127.0.0.1).
        """
        rows = np.asarray(rows, dtype=np.int64)
        found_ctx = np.full(len(rows), -1, dtype=np.int64)
        found_row = np.full(len(rows), -1, dtype=np.int64)
        if len(rows) == 0:
            return found_ctx, found_row
        q = ctx.rows[rows]
        want = connection_hash(q, reverse=True)
        loop = loopback_mask(q)
        if len(self.contexts) >= MERGED_PEERS_MIN:
            self._peers_merged(ctx, rows, q, want, loop, found_ctx, found_row)
            return found_ctx, found_row
        for k, (keys, where) in enumerate(self._peer_index):
            if len(keys) == 0:
                continue
            pos = np.searchsorted(keys, want)
            pos = np.minimum(pos, len(keys) - 1)
            hit = (keys[pos] == want) & (found_ctx < 0)
            if self.contexts[k] is not ctx:
                hit &= ~loop
            if not hit.any():
                continue
            cand = where[pos[hit]]
            other = self.contexts[k].rows[cand]
            mine = q[hit]
            exact = ((other["family"] == mine["family"]) & (other["sport"] == mine["dport"])
                     & (other["dport"] == mine["sport"])
                     & (other["saddr"] == mine["daddr"]) & (other["daddr"] == mine["saddr"]))
            if self.contexts[k] is ctx:
                exact &= cand != rows[hit]
            idx = np.flatnonzero(hit)[exact]
            found_ctx[idx] = k
            found_row[idx] = cand[exact]
        return found_ctx, found_row

    @cached_property
    def _merged_peer_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every namespace's peer index in one: keys, context, row, sorted
        by (key, context), keeping of each (key, context) only the entry a
        search of that context's own index finds first (searchsorted,
        side left; lexsort is stable)."""
        index = self._peer_index
        keys = np.concatenate([k for k, _ in index])
        ctx = np.concatenate([np.full(len(k), i, np.int64) for i, (k, _) in enumerate(index)])
        rows = np.concatenate([w.astype(np.int64) for _, w in index])
        order = np.lexsort((ctx, keys))
        keys, ctx, rows = keys[order], ctx[order], rows[order]
        first = np.ones(len(keys), bool)
        first[1:] = (keys[1:] != keys[:-1]) | (ctx[1:] != ctx[:-1])
        return keys[first], ctx[first], rows[first]

    def _peers_merged(self, ctx, rows, q, want, loop, found_ctx, found_row) -> None:
        """:meth:`peers` through the merged index, with the same answer:
        of the contexts holding the key, in their order, the first whose
        candidate is the exact other end (loopback only in ``ctx``)."""
        me = next(i for i, c in enumerate(self.contexts) if c is ctx)
        keys, kctx, krow = self._merged_peer_index
        lo = np.searchsorted(keys, want, "left")
        n = np.searchsorted(keys, want, "right") - lo
        if not n.any():
            return
        q_of = np.repeat(np.arange(len(rows)), n)
        pos = np.arange(int(n.sum())) + np.repeat(lo - (np.cumsum(n) - n), n)
        k, cand = kctx[pos], krow[pos]
        ok = (k == me) | ~loop[q_of]
        exact = np.zeros(len(pos), bool)
        for c in np.unique(k[ok]).tolist():
            sel = np.flatnonzero(ok & (k == c))
            other, mine = self.contexts[c].rows[cand[sel]], q[q_of[sel]]
            e = ((other["family"] == mine["family"]) & (other["sport"] == mine["dport"])
                 & (other["dport"] == mine["sport"])
                 & (other["saddr"] == mine["daddr"]) & (other["daddr"] == mine["saddr"]))
            if c == me:
                e &= cand[sel] != rows[q_of[sel]]
            exact[sel] = e
        good = np.flatnonzero(exact)
        hit, first = np.unique(q_of[good], return_index=True)
        found_ctx[hit] = k[good[first]]
        found_row[hit] = cand[good[first]]

    def peer_of(self, ctx: NsContext, i: int):
        """(context, row) of the other end of row ``i``, or None."""
        c, r = self.peers(ctx, np.array([i]))
        return None if c[0] < 0 else (self.contexts[int(c[0])], int(r[0]))


def mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, vectorised (uint64 arithmetic wraps)."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def connection_hash(rows: np.ndarray, reverse: bool = False) -> np.ndarray:
    """A 64-bit key per row of (family, local, remote); ``reverse`` swaps
    local and remote, giving the key of the other end. Equal keys are
    checked column by column before being believed."""
    sa, da = address_words(rows["saddr"]), address_words(rows["daddr"])
    sp, dp = rows["sport"].astype(np.uint64), rows["dport"].astype(np.uint64)
    if reverse:
        sa, da, sp, dp = da, sa, dp, sp
    with np.errstate(over="ignore"):
        h = mix64(rows["family"].astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15))
        for col in (sa[:, 0], sa[:, 1], da[:, 0], da[:, 1], (sp << np.uint64(16)) | dp):
            h = mix64(h ^ col)
    return h


def loopback_mask(rows: np.ndarray) -> np.ndarray:
    """Rows whose local address is loopback (127/8, ::1, ::ffff:127/104)."""
    raw = np.ascontiguousarray(rows["saddr"]).view(np.uint8).reshape(-1, 16)
    v4 = (rows["family"] == 2) & (raw[:, 0] == 127)
    one = np.zeros(16, np.uint8)
    one[15] = 1
    v6 = (rows["family"] == 10) & np.all(raw == one, axis=1)
    mapped = (rows["family"] == 10) & np.all(raw[:, :10] == 0, axis=1) & \
        (raw[:, 10] == 0xFF) & (raw[:, 11] == 0xFF) & (raw[:, 12] == 127)
    return v4 | v6 | mapped
