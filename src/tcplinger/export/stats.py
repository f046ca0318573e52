"""The ``stats`` document: counts per namespace and owner, beside limits.

Shape documented in docs/json.md. Pure: takes the query view, returns
plain data that the text renderer and ``--json`` both use.
"""

from __future__ import annotations

import numpy as np

from ..model.kernel import TCPEXT_COUNTERS
from ..model.owner_map import OwnerMap
from ..model.states import TcpState, name as state_name


def namespace_counts(table) -> dict:
    rows = table.rows
    counts = np.bincount(rows["state"], minlength=16)
    states = {state_name(i): int(c) for i, c in enumerate(counts) if c}
    if counts[int(TcpState.NEW_SYN_RECV)] and counts[int(TcpState.SYN_RECV)]:
        states["SYN_RECV"] = int(counts[int(TcpState.SYN_RECV)] + counts[int(TcpState.NEW_SYN_RECV)])
    tw_type = rows["timewait"]
    return {
        "total": int(len(rows)),
        "states": states,
        "orphans": int(table.orphan_mask().sum()),
        "orphans_full": int(table.full_orphan_mask().sum()),
        "time_wait": int(counts[int(TcpState.TIME_WAIT)]),
        "timewait_type": int(tw_type.sum()),
    }


def limits(kernel) -> dict:
    s = kernel.sysctls
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items()}
    if kernel.port_range_size:
        out["ephemeral_ports"] = kernel.port_range_size
    return out


def owner_counts(part) -> list[dict]:
    """Per owning process: sockets by state. A socket counts once for each
    process holding it, however many of that process's fds point to it
    (as ``ss -p`` lists it once per process). States are listed in the
    order the rows show them first; a process's details are those of its
    last row.

    From the owner columns (model/owner_map.py), without an Owner per
    socket: a loop over the rows asking the map for each socket's Owners
    took 12.7 ms of a 10k-socket ``stats --owners`` (issue 16)."""
    if part.owners is None:
        return None
    owners = OwnerMap.of(part.owners)
    rows = part.table.rows
    start, count = owners.runs(rows["inode"])
    held = np.flatnonzero(count)
    n = count[held]
    row = np.repeat(held, n)  # one per (socket, fd)
    first = np.cumsum(n) - n
    entry = np.repeat(start[held], n) + np.arange(len(row)) - np.repeat(first, n)
    pids = np.array([p.pid for p in owners.processes] or [0], np.int64)
    proc = owners.proc[entry]
    pid = pids[proc]
    # one entry per (socket, process): the first of its fds
    _, once = np.unique(np.stack([row, pid]), axis=1, return_index=True)
    once.sort()
    row, pid, proc = row[once], pid[once], proc[once]
    state = rows["state"][row].astype(np.int64)
    pair, first_row, per_pair = np.unique(pid * 256 + state, return_index=True,
                                          return_counts=True)
    last = {}  # pid -> the process (details) of its last row
    for p, k in zip(pid.tolist(), proc.tolist()):
        last[p] = k
    per: dict[int, list] = {}
    for key, at, c in sorted(zip(pair.tolist(), first_row.tolist(), per_pair.tolist()),
                             key=lambda t: t[1]):
        per.setdefault(key >> 8, []).append((state_name(key & 0xFF), c))
    out = []
    for p, states in per.items():
        o = owners.processes[last[p]]
        out.append({"pid": p, "comm": o.comm, "user": o.user, "container": o.container,
                    "total": sum(c for _, c in states), "states": dict(states)})
    out.sort(key=lambda d: (-d["total"], d["pid"]))
    return out


def document(view) -> dict:
    namespaces = []
    for part in view.parts:
        k = part.ns.kernel
        entry = {"netns": part.ns.netns.to_json(), "source": part.ns.source}
        entry.update(namespace_counts(part.table))
        entry["limits"] = limits(k)
        entry["sockstat"] = k.sockstat.__dict__ if k.sockstat else None
        entry["tcpext"] = {c: k.tcpext[c] for c in TCPEXT_COUNTERS if c in k.tcpext}
        entry["conntrack"] = ({"count": k.conntrack[0], "max": k.conntrack[1]}
                              if k.conntrack else None)
        entry["missing"] = list(k.missing)
        entry["owners"] = owner_counts(part)
        namespaces.append(entry)
    return {"namespaces": namespaces}
