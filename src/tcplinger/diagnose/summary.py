"""The state summary ``report`` shows above the findings: counts per state
with the kernel limit that governs each, per namespace (plain data); and
the overview of many namespaces (:func:`overview`): one line per namespace
that holds lingering sockets or has a finding, the quiet ones counted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..model.states import LINGERING, REPORTED, TcpState, name as state_name
from .finding import Finding
from .inputs import NamespaceInput

LINGERING_NAMES = frozenset(state_name(int(s)) for s in LINGERING)

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


@dataclass(frozen=True)
class NamespaceLine:
    """One namespace of the overview: its summary, its lingering states
    (name, count; in the summary's order) and its worst finding."""

    summary: dict
    lingering: tuple[tuple[str, int], ...]
    worst: Finding | None

    @property
    def lingering_total(self) -> int:
        return sum(n for _, n in self.lingering)


@dataclass(frozen=True)
class Overview:
    """Many namespaces in few lines. ``lines``: the namespaces that hold
    lingering sockets or have a finding, worst first; ``quiet``: how many
    others there are and ``quiet_sockets`` the sockets they hold;
    ``missing``: each "not read" text once, with how many namespaces said it."""

    lines: tuple[NamespaceLine, ...]
    quiet: int
    quiet_sockets: int
    missing: tuple[tuple[str, int], ...]


def overview(summaries: Sequence[dict], findings: Sequence[Finding]) -> Overview:
    """The overview of :func:`namespace_summary` dicts and the findings.

    >>> quiet = {"netns": {"inode": 1}, "total": 7, "states": [{"state": "LISTEN", "count": 7}],
    ...          "missing": ["x"]}
    >>> busy = {"netns": {"inode": 2}, "total": 9, "states": [{"state": "ESTABLISHED", "count": 4},
    ...          {"state": "CLOSE_WAIT", "count": 5}], "missing": ["x"]}
    >>> o = overview([quiet, busy], [])
    >>> [(line.summary["netns"]["inode"], line.lingering) for line in o.lines]
    [(2, (('CLOSE_WAIT', 5),))]
    >>> o.quiet, o.quiet_sockets
    (1, 7)
    >>> o.missing
    (('x', 2),)
    """
    worst: dict[int, Finding] = {}
    for f in findings:
        best = worst.get(f.netns.inode)
        if best is None or (f.severity, f.count) > (best.severity, best.count):
            worst[f.netns.inode] = f
    lines, quiet, quiet_sockets = [], 0, 0
    missing: dict[str, int] = {}
    for s in summaries:
        for what in s.get("missing", ()):
            missing[what] = missing.get(what, 0) + 1
        lingering = tuple((st["state"], st["count"]) for st in s["states"]
                          if st["state"] in LINGERING_NAMES and st["count"])
        bad = worst.get(s["netns"]["inode"])
        if lingering or bad is not None:
            lines.append(NamespaceLine(s, lingering, bad))
        else:
            quiet += 1
            quiet_sockets += s["total"]
    order = {id(line): i for i, line in enumerate(lines)}
    lines.sort(key=lambda line: (-(int(line.worst.severity) if line.worst else -1),
                                 -line.lingering_total, order[id(line)]))
    return Overview(tuple(lines), quiet, quiet_sockets, tuple(missing.items()))
