"""The normal path shared by ls, stats and later commands: take a snapshot,
filter it, and attach owners and ages to the rows that are shown."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..collect import files as files_mod
from ..collect import snapshot as snap_mod
from ..model.snapshot import NetnsSnapshot, Snapshot
from ..model.socket import Age, Owner, SocketRecord
from ..model.states import TcpState
from ..model.table import SocketTable, iter_records
from ..track import age as age_mod
from .options import Filters

#: tcp_info is fetched for these states only: their age lower bound and
#: retransmission counters matter, and there are few of them on a healthy
#: host (a million ESTABLISHED sockets would add 280 MB of tcp_info).
INFO_STATES = frozenset({TcpState.CLOSE_WAIT, TcpState.FIN_WAIT2, TcpState.FIN_WAIT1,
                         TcpState.LAST_ACK, TcpState.CLOSING})


@dataclass
class NsView:
    ns: NetnsSnapshot
    table: SocketTable
    owners: dict[int, tuple[Owner, ...]] | None = None  # None: not resolved
    #: ages merged with a fresh watch database (cli/watchdb.py), else None
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


@dataclass
class View:
    snapshot: Snapshot
    parts: list[NsView] = field(default_factory=list)
    owners_resolved: bool = False
    unreadable_pids: int = 0

    @property
    def total(self) -> int:
        return sum(len(p.table) for p in self.parts)


def collect(scope: snap_mod.Scope, filters: Filters = Filters(), *, want_owners: bool = False,
            tcp_info: bool = True, roots: snap_mod.Roots = snap_mod.Roots()) -> View:
    info_states = frozenset()
    if tcp_info:
        info_states = INFO_STATES if filters.states is None else INFO_STATES & filters.states
    pid_inodes = None
    if filters.pid is not None:  # first: a missing pid fails before any dump
        pid_inodes = files_mod.socket_inodes(filters.pid, roots.proc)
    snap = snap_mod.take(scope, states=filters.states, info_states=info_states, roots=roots)
    view = View(snap)
    for ns in snap.namespaces:
        view.parts.append(NsView(ns, _filter(ns.table, filters, pid_inodes)))
    if want_owners or filters.pid is not None:
        attach_owners(view, roots.proc)
    return view


def attach_owners(view: View, proc_root: Path) -> None:
    """One walk of /proc/*/fd for the inodes of the selected rows only."""
    wanted: set[int] = set()
    for part in view.parts:
        inodes = part.table.rows["inode"]
        wanted.update(np.unique(inodes[inodes != 0]).tolist())
    from ..collect import owners as owners_mod  # only here: ~7 ms that stats mostly skips

    # The namespaces' own processes first: the others are read only when
    # some socket has no owner among them (see find_owners).
    first = {pid for part in view.parts for pid in part.ns.pids}
    found = owners_mod.find_owners(wanted, proc_root, first=first) if wanted else {}
    view.unreadable_pids = getattr(found, "unreadable", 0)
    for part in view.parts:
        part.owners = found
    view.owners_resolved = True


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
