"""The ``"owners"`` values of ``ls --json`` rows, read from the owner map's
columns (model/owner_map.OwnerMap.runs): each process's JSON text made
once, no ``Owner`` object and no dict index of the inodes made.

The text is what ``json.dumps([o.to_json() for o in owners])`` gives
(``ensure_ascii``, ``", "`` and ``": "`` separators), ``[]`` for a row
without owners (inode 0 included).  At 1M sockets the map holds ~900k
owned inodes: its dict index alone was ~100 MB (112 bytes an inode,
docs/performance.md, "1M memory").

>>> from tcplinger.model.owner_map import OwnerMap
>>> from tcplinger.model.socket import Owner
>>> srv = Owner(10, "srv", 3, "srv -x", "root")
>>> m = OwnerMap.of({7: (srv, Owner(10, "srv", 9, "srv -x", "root")),
...                  5: (Owner(20, "d\\u00e9", 4),)})
>>> texts, any_owned = OwnerJson(m).texts(np.array([5, 0, 7, 6], np.uint64))
>>> any_owned
True
>>> for t in texts: print(t)
[{"pid": 20, "comm": "d\\u00e9", "fd": 4, "cmdline": "", "user": ""}]
[]
[{"pid": 10, "comm": "srv", "fd": 3, "cmdline": "srv -x", "user": "root"}, {"pid": 10, "comm": "srv", "fd": 9, "cmdline": "srv -x", "user": "root"}]
[]
"""

from __future__ import annotations

import json

import numpy as np

from ..model.owner_map import OwnerMap


class OwnerJson:
    """The owners' JSON texts of rows, a block of inodes at a time."""

    def __init__(self, owners: OwnerMap):
        self.map = owners
        dumps = json.dumps
        #: per process, the text of an owner before and after its fd
        self.heads = ['{"pid": %s, "comm": %s, "fd": ' % (dumps(p.pid), dumps(p.comm))
                      for p in owners.processes]
        self.tails = [', "cmdline": %s, "user": %s}' % (dumps(p.cmdline), dumps(p.user))
                      for p in owners.processes]

    def texts(self, inode: np.ndarray) -> tuple[list[str], bool]:
        """(the ``owners`` text of each of ``inode``, whether any has owners)."""
        m = self.map
        start, count = m.runs(inode)
        count[np.asarray(inode) == 0] = 0  # inode 0 (TIME_WAIT, orphans) is nobody's
        if not count.any():
            return ["[]"] * len(count), False
        heads, tails = self.heads, self.tails
        proc, fd = m.proc[start].tolist(), m.fd[start].tolist()
        out = []
        for n, p, f, at in zip(count.tolist(), proc, fd, start.tolist()):
            if n == 1:
                out.append("[" + heads[p] + str(f) + tails[p] + "]")
            elif n == 0:
                out.append("[]")
            else:
                out.append("[" + ", ".join(heads[q] + str(g) + tails[q] for q, g in
                                           zip(m.proc[at:at + n].tolist(),
                                               m.fd[at:at + n].tolist())) + "]")
        return out, True

    def of(self, inodes) -> dict:
        """inode -> tuple of Owners of those of ``inodes`` that have owners
        (for the few rows the per-row writer takes)."""
        m = self.map
        inodes = np.asarray(inodes, np.uint64)
        start, count = m.runs(inodes)
        return {ino: m.owners_at(s, s + c) for ino, s, c in
                zip(inodes.tolist(), start.tolist(), count.tolist()) if c and ino}
