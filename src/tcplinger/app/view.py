"""The sockets of a scope as the front ends see them: one snapshot, filtered,
with owners (by the one policy, collect/owners.py) and ages (from the
snapshot, or merged with a fresh watch database: app/watchdb.py) attached
to the rows that are shown."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..collect import files as files_mod
from ..collect import snapshot as snap_mod
from ..collect.owners import Attribution, OwnerPolicy
from ..collect.roots import Roots
from ..collect.snapshot import Scope
from ..model.snapshot import NetnsSnapshot, Snapshot
from ..model.socket import Age, Owner, SocketRecord
from ..model.states import OWNABLE, TcpState
from ..model.table import SocketTable, distinct, iter_records
from ..track import age as age_mod

#: tcp_info is fetched for these states only: their age lower bound and
#: retransmission counters matter, and there are few of them on a healthy
#: host (a million ESTABLISHED sockets would add 280 MB of tcp_info).
INFO_STATES = OWNABLE


@dataclass(frozen=True)
class Filters:
    """What ``ls`` (and ``kill`` before its own criteria) keeps of a snapshot."""

    states: frozenset[TcpState] | None = None
    port: int | None = None
    sport: int | None = None
    dport: int | None = None
    pid: int | None = None


@dataclass
class NsView:
    ns: NetnsSnapshot
    table: SocketTable
    owners: Mapping[int, tuple[Owner, ...]] | None = None  # None: not resolved (an OwnerMap)
    #: ages merged with a fresh watch database (app/watchdb.py), else None
    tracked: object | None = None

    def ages(self) -> list[Age]:
        if self.tracked is not None:
            return self.tracked.to_ages()
        return age_mod.ages(self.table, self.ns.kernel)

    def export_ages(self):
        """What export/jsonout.py takes: the tracked (seconds, at_least,
        source codes) triple when there is one, else :meth:`age_arrays`."""
        if self.tracked is not None:
            return self.tracked.as_tuple()
        return self.age_arrays()

    def age_arrays(self):
        """(exact, lower bound) seconds as float arrays: cheap at 1M rows."""
        return age_mod.age_arrays(self.table, self.ns.kernel)

    def records(self, *, tcp_info: bool = True) -> list[SocketRecord]:
        return list(iter_records(self.table, netns=self.ns.netns, owners=self.owners,
                                 ages=self.ages(), tcp_info=tcp_info))

    def inodes(self) -> set[int]:
        """Inodes of the rows (0, no file, left out)."""
        return set(self.inode_array().tolist())

    def holds_inodes(self) -> bool:
        """Whether :meth:`inode_array` is not empty."""
        return bool((self.table.rows["inode"] != 0).any())

    def inode_array(self) -> np.ndarray:
        """:meth:`inodes` as a sorted numpy array."""
        inodes = self.table.rows["inode"]
        return distinct(inodes[inodes != 0])


@dataclass
class View:
    snapshot: Snapshot
    parts: list[NsView] = field(default_factory=list)
    owners_resolved: bool = False
    unreadable_pids: int = 0

    @property
    def total(self) -> int:
        return sum(len(p.table) for p in self.parts)

    def merge(self, other: "View") -> None:
        """Add another scope's namespaces to this view."""
        self.parts += other.parts
        self.snapshot.namespaces += other.snapshot.namespaces
        self.snapshot.skipped += other.snapshot.skipped

    def attach_owners(self, policy: OwnerPolicy, roots: Roots = Roots(), *,
                      wanted_of=None, holds=None, also=()) -> Attribution:
        """Owners, by ``policy``, of the inodes ``wanted_of(part)`` picks in
        each part (a numpy array; default: every row's), given to every part; where to
        walk depends on the namespaces that hold one. ``holds(part)``
        tells, more cheaply, whether ``wanted_of(part)`` is not empty
        (default: whether some row has an inode). Returns what the policy
        did."""
        if policy.walk is False:
            return policy.find((), ())  # not even the inodes: --no-owners on 1M sockets
        if policy.walk is None:
            # Whether the automatic mode walks depends on the namespaces
            # holding a wanted inode only: asked first, the inodes are not
            # gathered for a walk then left out (0.09 s of the report at 300k).
            holders = [p.ns for p in self.parts if (holds or NsView.holds_inodes)(p)]
            cost = policy.left_out(holders, roots.proc) if holders else None
            if cost is not None:
                return Attribution(None, cost)
        held = [(p.ns, (wanted_of or NsView.inode_array)(p)) for p in self.parts]
        holders = [ns for ns, inodes in held if len(inodes)]
        # numpy, not a set: the policy makes Python ints only if it walks
        wanted = distinct(np.concatenate([np.asarray(i, np.uint64) for _, i in held]
                                         or [np.zeros(0, np.uint64)]))
        found = policy.find(wanted, holders, roots.proc, also=also)
        if found.owners is not None:
            self.unreadable_pids = found.owners.unreadable
            for part in self.parts:
                part.owners = found.owners
            self.owners_resolved = True
        return found


def take(scope: Scope, filters: Filters = Filters(), *, tcp_info: bool = True,
         info_states: frozenset | None = None, idle_info: bool = False,
         roots: Roots = Roots(), on_namespace=None) -> View:
    """One snapshot of ``scope``, filtered, without owners or tracked ages.

    tcp_info comes for INFO_STATES (``tcp_info``), or for ``info_states``
    when given. With ``filters.pid`` only that process's sockets are kept
    (read before the dump, so that a missing pid fails before any work).
    ``idle_info``: tcp_info of ESTABLISHED sockets too where it comes with
    the same dump (collect/snapshot.py ONE_DUMP_MAX; app/observation.py).
    ``on_namespace(ns)``: collect/snapshot.take's, each namespace as it is
    read (before the filters).
    """
    if info_states is None:
        info_states = frozenset()
        if tcp_info:
            info_states = INFO_STATES if filters.states is None else INFO_STATES & filters.states
    pid_inodes = None
    if filters.pid is not None:
        pid_inodes = files_mod.socket_inodes(filters.pid, roots.proc)
    cheap = frozenset({TcpState.ESTABLISHED}) if idle_info else frozenset()
    snap = snap_mod.take(scope, states=filters.states, info_states=info_states,
                         cheap_info_states=cheap, roots=roots, on_namespace=on_namespace)
    view = View(snap)
    for ns in snap.namespaces:
        view.parts.append(NsView(ns, _filter(ns.table, filters, pid_inodes)))
    return view


def _filter(table: SocketTable, f: Filters, pid_inodes) -> SocketTable:
    rows = table.rows
    keep = np.ones(len(rows), dtype=bool)
    if f.port is not None:
        keep &= (rows["sport"] == f.port) | (rows["dport"] == f.port)
    if f.sport is not None:
        keep &= rows["sport"] == f.sport
    if f.dport is not None:
        keep &= rows["dport"] == f.dport
    if pid_inodes is not None:
        keep &= np.isin(rows["inode"], np.fromiter(pid_inodes, dtype=np.uint64))
    if keep.all():
        return table
    return table.select(keep)
