"""The owners of sockets as columns: which process holds which socket inode
through which fd, with each process's details once.

:class:`OwnerMap` is a read-only ``Mapping[int, tuple[Owner, ...]]`` (inode
-> its owners, one :class:`~tcplinger.model.socket.Owner` per fd, like
``ss -p``), but it holds no Python object per socket: three numpy columns
of one entry per (socket, fd) and one ``Owner`` per process.  At 1M
sockets the fd walk finds 200k owned CLOSE_WAIT sockets; as a dict of
tuples of Owners they were ~120 MB, as columns they are 3.2 MB
(docs/performance.md, "1M memory").  Owners are made when asked for, a
whole column of rows at a time through :meth:`OwnerMap.runs`, or one inode
at a time through the Mapping methods (a dict index of the inodes, ~100
bytes an inode, made at the first such lookup).

>>> from tcplinger.model.socket import Owner
>>> m = OwnerMap.of({7: (Owner(10, "srv", 3), Owner(10, "srv", 9)), 5: (Owner(20, "db", 4),)})
>>> m[7] == (Owner(10, "srv", 3), Owner(10, "srv", 9)), 5 in m, m.get(6), sorted(m)
(True, True, None, [5, 7])
>>> start, count = m.runs(np.array([7, 6, 5], np.uint64))
>>> count.tolist(), [m.processes[p].comm for p in m.proc[start[count > 0]].tolist()]
([2, 0, 1], ['srv', 'db'])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Iterable, Iterator

import numpy as np

from .socket import Owner
from .table import distinct


class OwnerMap(Mapping):
    """inode -> ``tuple[Owner, ...]``, held as columns.

    ``processes``: one Owner per process with ``fd`` -1 (its details);
    ``inode``, ``proc``, ``fd``: one entry per (socket, fd), grouped by
    inode (ascending), each inode's entries in the order given (the walk
    gives them by pid, then fd); ``proc`` indexes ``processes``.  Inode 0
    has no owners.  Counters of the walk that made it: ``unreadable``
    (fd directories that could not be read), ``vanished`` (processes that
    exited during the walk), ``pids_walked``, ``fds_walked``, and
    ``open_fds``: pid -> the fds the walk read in that process (its open
    fds at that moment), for the processes it found a socket in.
    """

    def __init__(self, processes: Iterable[Owner] = (), proc=(), fd=(), inode=()):
        self.processes = list(processes)
        inode = np.asarray(inode, np.uint64)
        order = np.argsort(inode, kind="stable")
        self.inode = inode[order]
        self.proc = np.asarray(proc, np.int32)[order]
        self.fd = np.asarray(fd, np.int64)[order]
        first = np.ones(len(self.inode), bool)
        first[1:] = self.inode[1:] != self.inode[:-1]
        #: the distinct inodes (``owned``), and where each one's entries start (one more
        #: start at the end: the entries of owned[k] are starts[k]:starts[k+1])
        self.owned = self.inode[first]
        self.starts = np.append(np.flatnonzero(first), len(self.inode))
        self.unreadable = self.vanished = self.pids_walked = self.fds_walked = 0
        self.open_fds: dict[int, int] = {}
        self._index: dict[int, int] | None = None
        self._protos: list[dict] | None = None

    @classmethod
    def of(cls, owners: Mapping | None) -> "OwnerMap":
        """``owners`` (any inode -> owners mapping, e.g. a dict in a test or
        a lab run) as an OwnerMap; an OwnerMap as it is."""
        if isinstance(owners, OwnerMap):
            return owners
        processes: dict[Owner, int] = {}
        proc, fd, inode = [], [], []
        for ino, held in (owners or {}).items():
            for o in held:
                key = Owner(o.pid, o.comm, -1, o.cmdline, o.user, o.uid, o.container)
                proc.append(processes.setdefault(key, len(processes)))
                fd.append(o.fd)
                inode.append(ino)
        return cls(processes, proc, fd, inode)

    # -- Mapping --------------------------------------------------------

    def __len__(self) -> int:
        return len(self.owned)

    def __iter__(self) -> Iterator[int]:
        return iter(self.owned.tolist())

    def __contains__(self, ino) -> bool:
        return self._lookup(ino) is not None

    def __getitem__(self, ino) -> tuple[Owner, ...]:
        held = self.get(ino)
        if held is None:
            raise KeyError(ino)
        return held

    def get(self, ino, default=None):
        v = self._lookup(ino)
        if v is None:
            return default
        if v >= 0:  # one owner: its process and fd packed in the index (inlined)
            owner = _new(Owner)
            state = self._protos[v >> 32].copy()
            state["fd"] = v & 0xFFFFFFFF
            _setattr(owner, "__dict__", state)
            return (owner,)
        k = -v - 1
        return self.owners_at(int(self.starts[k]), int(self.starts[k + 1]))

    def _lookup(self, ino) -> int | None:
        """The index's value for ``ino``: ``proc << 32 | fd`` when it has
        one owner, ``-(k + 1)`` (``owned[k]``) when it has several; None
        when it has none.  The index is made at the first lookup: a read
        is one dict lookup and one Owner made, not numpy scalars (2.5 us
        against 5.5 us a read, 100k reads kept, best of 5, load 6)."""
        index = self._index
        if index is None:
            first = self.starts[:-1]
            fd = self.fd[first]
            single = ((self.starts[1:] - first) == 1) & (fd >= 0) & (fd <= 0xFFFFFFFF)
            packed = np.where(single, (self.proc[first].astype(np.int64) << 32) | fd,
                              -np.arange(1, len(first) + 1))
            index = self._index = dict(zip(self.owned.tolist(), packed.tolist()))
            self._protos = [q.__dict__ for q in self.processes]
        try:
            return index.get(ino)
        except TypeError:  # unhashable: not an inode
            return None

    def _owner(self, p: int, fd: int) -> Owner:
        protos = self._protos
        if protos is None:
            protos = self._protos = [q.__dict__ for q in self.processes]
        # a copy of the process's fields with another fd: ~0.6 us where
        # a frozen dataclass's __init__ takes ~2.7 us (7 object.__setattr__)
        owner = _new(Owner)
        state = protos[p].copy()
        state["fd"] = fd
        _setattr(owner, "__dict__", state)
        return owner

    # -- columns --------------------------------------------------------

    def runs(self, inodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start, count) of each of ``inodes``' entries in the columns;
        count 0 where an inode has no owner (inode 0 included)."""
        inodes = np.asarray(inodes, np.uint64)
        if not len(self.owned):
            return np.zeros(len(inodes), np.intp), np.zeros(len(inodes), np.intp)
        k = np.minimum(np.searchsorted(self.owned, inodes), len(self.owned) - 1)
        hit = self.owned[k] == inodes
        start = self.starts[k]
        count = np.where(hit, self.starts[k + 1] - start, 0)
        return np.where(hit, start, 0), count

    def owners_at(self, lo: int, hi: int) -> tuple[Owner, ...]:
        """The Owners of entries lo..hi."""
        make = self._owner
        return tuple(make(p, f) for p, f in zip(self.proc[lo:hi].tolist(),
                                                self.fd[lo:hi].tolist()))

    def pids_of(self, inodes: Iterable[int]) -> set[int]:
        """The pids holding any of ``inodes``."""
        start, count = self.runs(np.fromiter(inodes, np.uint64))
        procs = set()
        for s, c in zip(start.tolist(), count.tolist()):
            procs.update(self.proc[s:s + c].tolist())
        return {self.processes[p].pid for p in procs}

    def inodes_held_by(self, keep) -> np.ndarray:
        """The inodes (sorted, uint64) held by a process for which ``keep``
        (called with each process's Owner, fd -1) is true."""
        chosen = np.array([bool(keep(p)) for p in self.processes] or [False])
        return distinct(self.inode[chosen[self.proc]])

    def __reduce__(self):
        state = dict(self.__dict__, _index=None, _protos=None)
        return (_restore, (state,))

    def __repr__(self) -> str:
        return (f"OwnerMap({len(self.owned)} inodes, {len(self.inode)} fds, "
                f"{len(self.processes)} processes)")


_new, _setattr = object.__new__, object.__setattr__


def _restore(state: dict) -> OwnerMap:
    out = OwnerMap.__new__(OwnerMap)
    out.__dict__.update(state)
    return out
