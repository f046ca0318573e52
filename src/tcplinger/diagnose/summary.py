"""The state summary ``report`` shows above the findings: counts per state
with the kernel limit that governs each, per namespace (plain data)."""

from __future__ import annotations

import numpy as np

from ..model.states import REPORTED, TcpState, name as state_name
from .inputs import NamespaceInput

#: The sysctl shown next to each state's count.
LIMIT_OF = {
    TcpState.TIME_WAIT: "tcp_max_tw_buckets",
    TcpState.FIN_WAIT2: "tcp_fin_timeout",
    TcpState.FIN_WAIT1: "tcp_orphan_retries",
    TcpState.LAST_ACK: "tcp_orphan_retries",
    TcpState.CLOSE_WAIT: "tcp_keepalive_time",
}


def namespace_summary(inp: NamespaceInput) -> dict:
    rows = inp.table.rows
    counts = np.bincount(rows["state"], minlength=16)
    counts[int(TcpState.SYN_RECV)] += counts[int(TcpState.NEW_SYN_RECV)]
    states = []
    for s in REPORTED:
        c = int(counts[int(s)])
        if not c:
            continue
        limit = LIMIT_OF.get(s)
        states.append({"state": state_name(int(s)), "count": c,
                       "limit": limit, "limit_value": inp.kernel.get(limit) if limit else None})
    k = inp.kernel
    ss = k.sockstat
    return {
        "netns": inp.netns.to_json(),
        "workload": inp.netns.workload.to_json() if inp.netns.workload else None,
        "label": inp.netns.label(),
        "total": int(len(rows)),
        "states": states,
        "orphans": int(inp.table.orphan_mask().sum()),
        "orphans_full": int(inp.table.full_orphan_mask().sum()),
        "timewait_type": int(rows["timewait"].sum()),
        "tcp_max_tw_buckets": k.get("tcp_max_tw_buckets"),
        "sockstat_orphans": ss.orphan if ss else None,
        "tcp_max_orphans": k.get("tcp_max_orphans"),
        "ip_local_port_range": list(k.get("ip_local_port_range")) if k.get("ip_local_port_range") else None,
        "conntrack": {"count": k.conntrack[0], "max": k.conntrack[1]} if k.conntrack else None,
        "missing": list(k.missing),
    }
