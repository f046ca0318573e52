"""The ``stats`` document: counts per namespace and owner, beside limits.

Shape documented in docs/json.md. Pure: takes the query view, returns
plain data that the text renderer and ``--json`` both use.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..model.kernel import TCPEXT_COUNTERS
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
    (as ``ss -p`` lists it once per process)."""
    if part.owners is None:
        return None
    per = defaultdict(lambda: defaultdict(int))
    info = {}
    st = part.table.rows["state"].tolist()
    ino = part.table.rows["inode"].tolist()
    for s, i in zip(st, ino):
        if not i:
            continue
        seen = set()
        for o in part.owners.get(i, ()):
            if o.pid not in seen:
                seen.add(o.pid)
                per[o.pid][state_name(s)] += 1
                info[o.pid] = o
    out = []
    for pid, states in per.items():
        o = info[pid]
        out.append({"pid": pid, "comm": o.comm, "user": o.user, "container": o.container,
                    "total": sum(states.values()), "states": dict(states)})
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
