"""What one sample adds to the time series: socket counts by state and
owner, and the kernel's limits and counters, per namespace (pure).

Owners are broken out only for the lingering states a person chases
(:data:`OWNED_STATES`): per-owner counts of ESTABLISHED or LISTEN would
multiply the rows for nothing the diagnosis uses.

>>> import numpy as np
>>> from tcplinger.model.table import SocketTable, empty
>>> from tcplinger.model.socket import Owner
>>> rows = empty(4); rows["state"] = [8, 8, 1, 6]; rows["inode"] = [11, 12, 13, 0]
>>> o = {11: (Owner(pid=42, comm="java", fd=3),), 12: (Owner(pid=42, comm="java", fd=4),)}
>>> sorted((c.state, c.owner, c.n) for c in counts(5, SocketTable(rows), o))
[(1, '', 1), (6, '', 1), (8, '42/java', 2)]
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..model.kernel import KernelContext
from ..model.states import OWNABLE, TcpState
from ..model.table import SocketTable
from .store import CountRow

OWNED_STATES = tuple(sorted(int(s) for s in OWNABLE))
#: A socket with no process (inode 0: TIME_WAIT, orphans).
NO_PROCESS = "-"


def owner_key(owner) -> str:
    return f"{owner.pid}/{owner.comm}"


def counts(ns: int, table: SocketTable, owners: dict | None) -> list[CountRow]:
    """Sockets per (state, owner) of one namespace; owner ``""`` where not
    attributed (not an owned state, or the owner is not known)."""
    rows = table.rows
    out: list[CountRow] = []
    st = rows["state"]
    owned = np.isin(st, OWNED_STATES)
    plain = np.bincount(st[~owned], minlength=16)
    for s, n in enumerate(plain.tolist()):
        if n:
            out.append(CountRow(ns, s, "", n))
    if owned.any():
        # one dict look-up per distinct inode, then counting in numpy
        owners = owners or {}
        inodes, inverse = np.unique(rows["inode"][owned], return_inverse=True)
        keys: list[str] = []
        key_id: dict[str, int] = {}
        ids = np.empty(len(inodes), np.int64)
        for j, ino in enumerate(inodes.tolist()):
            if ino == 0:
                key = NO_PROCESS
            else:
                found = owners.get(ino)
                key = owner_key(found[0]) if found else ""
            k = key_id.get(key)
            if k is None:
                k = key_id[key] = len(keys)
                keys.append(key)
            ids[j] = k
        combo = st[owned].astype(np.int64) * len(keys) + ids[inverse.reshape(-1)]
        values, counts_ = np.unique(combo, return_counts=True)
        c = Counter({(int(v) // len(keys), keys[int(v) % len(keys)]): int(n)
                     for v, n in zip(values.tolist(), counts_.tolist())})
        out.extend(CountRow(ns, s, k, n) for (s, k), n in sorted(c.items()))
    return out


#: States sockstat's "TCP: inuse" does not count: request sockets
#: (SYN_RECV rows of sock_diag) are not full sockets; timewait-type rows
#: are excluded by their flag (net/ipv4/inet_hashtables.c counts a socket
#: in inuse when it is hashed, tcp_time_wait() unhashes it).
_NOT_INUSE = (int(TcpState.SYN_RECV), int(TcpState.NEW_SYN_RECV))


def established_between(table: SocketTable, inuse: int) -> int:
    """ESTABLISHED sockets of a namespace whose dump left ESTABLISHED out:
    sockstat's ``TCP: inuse`` + ``TCP6: inuse`` (full sockets, every
    hashed state) minus the full sockets of the dump. Exact when nothing
    opens or closes between the two reads; never below 0.

    >>> from tcplinger.model.table import empty
    >>> rows = empty(5); rows["state"] = [8, 5, 10, 6, 3]
    >>> rows["timewait"] = [False, False, False, True, False]
    >>> established_between(SocketTable(rows), 1003)
    1000
    """
    rows = table.rows
    full = ~rows["timewait"] & ~np.isin(rows["state"], _NOT_INUSE)
    return max(int(inuse) - int(np.count_nonzero(full)), 0)


def kernel_values(ns: int, k: KernelContext) -> list[tuple[int, str, float]]:
    """The limits and counters the growth check compares against."""
    out = []
    for name in ("tcp_max_tw_buckets", "tcp_max_orphans", "tcp_fin_timeout"):
        v = k.get(name)
        if isinstance(v, (int, float)):
            out.append((ns, name, v))
    if k.port_range_size:
        out.append((ns, "ephemeral_ports", k.port_range_size))
    if k.sockstat is not None:
        for name in ("inuse", "orphan", "tw", "alloc"):
            out.append((ns, f"sockstat_{name}", getattr(k.sockstat, name)))
    if k.conntrack is not None:
        out.append((ns, "conntrack_count", k.conntrack[0]))
        out.append((ns, "conntrack_max", k.conntrack[1]))
    for name, v in sorted(k.tcpext.items()):
        out.append((ns, f"tcpext_{name}", v))
    return out
