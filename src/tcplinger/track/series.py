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
from ..model.table import SocketTable, outgoing_ephemeral
from .store import CountRow

OWNED_STATES = tuple(sorted(int(s) for s in OWNABLE))
_OWNED = np.zeros(256, bool)
_OWNED[list(OWNED_STATES)] = True
#: A socket with no process (inode 0: TIME_WAIT, orphans).
NO_PROCESS = "-"


def owner_key(owner) -> str:
    return f"{owner.pid}/{owner.comm}"


class OwnerKeys:
    """Owners as columns for :func:`counts`: the known inodes, sorted, and
    each one's owner key (``pid/comm`` of its first owner). Built once per
    owner map, so that a sample counts owned sockets with one search
    instead of a dict look-up and a formatted key per inode (30k lingering
    sockets: 25 ms of a watch sample's CPU).

    >>> from tcplinger.model.socket import Owner
    >>> k = OwnerKeys({12: (Owner(pid=42, comm="java", fd=4),), 11: ()})
    >>> k.inodes.tolist(), [k.keys[i] for i in k.ids.tolist()]
    ([11, 12], ['', '42/java'])
    """

    def __init__(self, owners: dict | None):
        items = sorted((owners or {}).items())
        keys: list[str] = ["", NO_PROCESS]
        key_id = {key: i for i, key in enumerate(keys)}
        memo: dict[int, tuple] = {}  # pid -> (comm, key id): one key a process
        ids = np.zeros(len(items), np.int64)
        for j, (_ino, found) in enumerate(items):
            if found:
                o = found[0]
                m = memo.get(o.pid)
                if m is None or m[0] != o.comm:
                    key = owner_key(o)
                    k = key_id.get(key)
                    if k is None:
                        k = key_id[key] = len(keys)
                        keys.append(key)
                    m = memo[o.pid] = (o.comm, k)
                ids[j] = m[1]
        self.inodes = np.fromiter((i for i, _ in items), np.uint64, len(items))
        self.ids = ids
        self.keys = keys

    @classmethod
    def of_keys(cls, keys: dict) -> "OwnerKeys":
        """The same index from each inode's owner key (:func:`first_keys`;
        ``""``: no owner), without an Owner a socket (the watch loop's
        cache: 20k lingering sockets of a walk, ~50 ms as Owners).

        >>> k = OwnerKeys.of_keys({12: "42/java", 11: "", 13: "42/java"})
        >>> k.inodes.tolist(), [k.keys[i] for i in k.ids.tolist()]
        ([11, 12, 13], ['', '42/java', '42/java'])
        """
        out = cls(None)
        key_id = {key: i for i, key in enumerate(out.keys)}
        n = len(keys)
        inodes = np.fromiter(keys, np.uint64, n)
        # the id of a new key is the number of keys before it
        ids = np.fromiter((key_id.setdefault(k, len(key_id)) for k in keys.values()), np.int64, n)
        order = np.argsort(inodes, kind="stable")
        out.inodes, out.ids, out.keys = inodes[order], ids[order], list(key_id)
        return out

    def ids_of(self, inodes: np.ndarray) -> np.ndarray:
        """Key ids of ``inodes``: 0 ("") where unknown, 1 (NO_PROCESS) for inode 0.

        The last answer is kept: a steady host dumps the same owned inodes
        in the same order every sample (the hash walk's), and comparing
        them is ~100x cheaper than searching them (20k inodes: 2.8 ms)."""
        inodes = inodes.astype(np.uint64)  # a copy: safe to keep
        last = self.__dict__.get("_last")
        if last is not None and np.array_equal(last[0], inodes):
            return last[1].copy()
        pos = np.minimum(np.searchsorted(self.inodes, inodes), max(len(self.inodes) - 1, 0))
        if len(self.inodes):
            hit = self.inodes[pos] == inodes
            out = np.where(hit, self.ids[pos], 0)
        else:
            out = np.zeros(len(inodes), np.int64)
        out[inodes == 0] = 1
        self._last = (inodes, out.copy())
        return out


def first_keys(found, inodes) -> dict:
    """``{inode: owner key of its first owner, or ""}`` for ``inodes``
    from a walk's answer: an OwnerMap's columns (no Owner made) or any
    inode -> owners mapping.

    >>> from tcplinger.model.owner_map import OwnerMap
    >>> from tcplinger.model.socket import Owner
    >>> found = {5: (Owner(pid=9, comm="b", fd=3), Owner(pid=4, comm="a", fd=1))}
    >>> first_keys(found, [5, 6]) == first_keys(OwnerMap.of(found), [5, 6]) == {5: "9/b", 6: ""}
    True
    """
    from ..model.owner_map import OwnerMap

    if not isinstance(found, OwnerMap):
        return {ino: owner_key(held[0]) if (held := found.get(ino)) else "" for ino in inodes}
    inos = np.fromiter(inodes, np.uint64)
    start, count = found.runs(inos)
    names = [owner_key(p) for p in found.processes] + [""]
    proc = found.proc[start] if len(found.proc) else np.zeros(len(inos), np.int32)
    which = np.where(count > 0, proc, len(names) - 1)
    return dict(zip(inos.tolist(), [names[i] for i in which.tolist()]))


def counts(ns: int, table: SocketTable, owners) -> list[CountRow]:
    """Sockets per (state, owner) of one namespace; owner ``""`` where not
    attributed (not an owned state, or the owner is not known). ``owners``
    is an inode -> owners map or its :class:`OwnerKeys`."""
    rows = table.rows
    out: list[CountRow] = []
    # one contiguous copy of the state column, then a table look-up: the
    # packed 78-byte rows make every pass over a column a strided one, and
    # np.isin of five states cost 1.9 ms at 100k rows (a full watch dump)
    st = np.ascontiguousarray(rows["state"])
    owned = _OWNED[st]
    plain = np.bincount(st, minlength=16)
    plain[_OWNED[:len(plain)]] = 0  # the owned states are counted by owner below
    for s, n in enumerate(plain.tolist()):
        if n:
            out.append(CountRow(ns, s, "", n))
    if owned.any():
        index = owners if isinstance(owners, OwnerKeys) else OwnerKeys(owners)
        keys = index.keys
        ids = index.ids_of(rows["inode"][owned])
        combo = st[owned].astype(np.int64) * len(keys) + ids
        if len(keys) * 16 <= 4 * len(combo) + 4096:  # owned states are < 16: few bins
            tally = np.bincount(combo)  # one pass, where np.unique sorts
            values = np.flatnonzero(tally)
            counts_ = tally[values]
        else:
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


#: The kernel-table name of :func:`busiest_remote_port`'s value.
BUSIEST_PORT = "ephemeral_busiest"


def busiest_remote_port(ns: int, table: SocketTable, k: KernelContext) -> list:
    """``[(ns, BUSIEST_PORT, n)]``: the most local ports of the ephemeral
    range held towards one remote port (model/table.outgoing_ephemeral),
    what history projects against ip_local_port_range. connect() runs out
    per destination (family, local and remote address, remote port; the
    rule's grouping), and one remote port's count is an upper bound of
    each of its destinations' that a sample can afford (a bincount, ~1 ms
    at 100k sockets, where the rule's hash grouping takes ~8.5 ms). Only
    from a dump with ESTABLISHED in it; nothing without a port range.

    >>> from tcplinger.model.table import empty
    >>> rows = empty(5); rows["state"] = [1, 1, 6, 10, 1]; rows["dport"] = [80, 80, 80, 0, 5432]
    >>> rows["sport"] = [40000, 40001, 40002, 8080, 8080]
    >>> k = KernelContext(sysctls={"ip_local_port_range": (32768, 60999)})
    >>> busiest_remote_port(7, SocketTable(rows), k)
    [(7, 'ephemeral_busiest', 3)]
    """
    rng = k.sysctls.get("ip_local_port_range")
    if not rng:
        return []
    rows = table.rows
    listening = np.unique(rows["sport"][rows["state"] == int(TcpState.LISTEN)])
    dport = rows["dport"][outgoing_ephemeral(rows, int(rng[0]), int(rng[1]), listening)]
    return [(ns, BUSIEST_PORT, int(np.bincount(dport).max()) if len(dport) else 0)]


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
