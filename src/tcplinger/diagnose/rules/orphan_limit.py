"""orphan-limit: orphans against tcp_max_orphans (one host-wide finding).

``tcp_orphan_count`` and tcp_max_orphans are global: /proc/net/sockstat
shows the same ``orphan`` figure in every namespace, and the sysctl exists
only in the initial namespace (checked on Linux 6.18). Timewait-type
minisockets are not in that count; full orphans are (FIN_WAIT1, CLOSING,
LAST_ACK, FIN_WAIT2 with a fin time above 60 s).

``tcp_out_of_resources()`` (net/ipv4/tcp_timer.c) kills an orphan when
``orphans << shift > tcp_max_orphans``, shift 1 for an orphan that sent
nothing for 2 x TCP_RTO_MAX or cannot be reset, 2 more after ICMP errors:
so such orphans die at 1/2 or 1/4 of the limit, with "too many orphaned
sockets" in the kernel log and TCPAbortOnMemory counted. The same counter
moves when TCP memory (tcp_mem, pages) is exhausted ("out of memory --
consider tuning tcp_mem").
"""

from __future__ import annotations

import numpy as np

from .. import sysctl_proposals as propose
from ..evidence import percent
from ..finding import Confidence, Fix, FixKind, Severity
from ..metadata import BY_ID
from ..sysctl_bounds import max_orphans_ceiling
from ._common import T, at_least, finding, level, sysctl_fix
from ._unacked_fin import orphan_retries_fix

META = BY_ID["orphan-limit"]
K = "rule.orphan-limit."


def evaluate_host(world, th, limit):
    ctxs = world.contexts
    if not ctxs:
        return []
    with_stat = [c for c in ctxs if c.kernel.sockstat is not None]
    # Global: it exists in the initial namespace only, which may not be the
    # first one looked at; the fix is proposed there.
    owner_ns = next((c for c in ctxs if c.sysctl("tcp_max_orphans") is not None), None)
    maximum = owner_ns.sysctl("tcp_max_orphans") if owner_ns is not None else None
    if not with_stat or not maximum:
        return []
    home = with_stat[0]
    stat = home.kernel.sockstat
    orphans = int(stat.orphan)
    ratio = orphans / maximum
    aborts = {c.netns.label(): c.counter("TCPAbortOnMemory") for c in ctxs
              if c.counter("TCPAbortOnMemory")}
    deltas = {c.netns.label(): c.delta("TCPAbortOnMemory") for c in ctxs
              if c.delta("TCPAbortOnMemory")}
    tcp_mem = next((c.sysctl("tcp_mem") for c in ctxs if c.sysctl("tcp_mem")), None)
    mem_state = None
    if tcp_mem and len(tcp_mem) == 3:
        pages = stat.mem_pages
        mem_state = "over" if pages >= tcp_mem[2] else "pressure" if pages >= tcp_mem[1] else "ok"
    if not (at_least(ratio, th["warning_ratio"]) or aborts or mem_state in ("pressure", "over")):
        return []

    # Full orphans (counted by the kernel) seen in the namespaces looked at.
    by_state: dict[str, int] = {}
    sample_ctx, sample_rows = None, np.zeros(0, np.int64)
    for c in ctxs:
        m = (c.inode == 0) & ~c.rows["timewait"] & np.isin(c.state, [4, 5, 9, 11])
        if m.any():
            counts = np.bincount(c.state[m], minlength=16)
            for s, v in enumerate(counts):
                if v:
                    name = {4: "FIN_WAIT1", 5: "FIN_WAIT2", 9: "LAST_ACK", 11: "CLOSING"}[s]
                    by_state[name] = by_state.get(name, 0) + int(v)
            if sample_ctx is None:
                sample_ctx, sample_rows = c, np.flatnonzero(m)

    severity = level(ratio, th["warning_ratio"], th["critical_ratio"])
    if deltas:
        severity = Severity.CRITICAL
    if mem_state == "over":
        severity = Severity.CRITICAL
    elif mem_state == "pressure":
        severity = max(severity, Severity.WARNING)

    evidence = {
        "orphans": orphans,
        "tcp_max_orphans": maximum,
        "ratio": round(ratio, 4),
        "host_wide": True,
        "orphans_by_state_seen": by_state,
        "TCPAbortOnMemory": aborts,
        "TCPAbortOnMemory_delta": deltas,
        "tcp_mem_pages": list(tcp_mem) if tcp_mem else None,
        "mem_pages": stat.mem_pages,
        "memory": mem_state,
        "tcp_orphan_retries": home.sysctl("tcp_orphan_retries"),
    }
    title = T(K + "title", n=orphans, max=maximum, pct=percent(ratio))
    facts = [T(K + "fact.count", n=orphans, max=maximum, pct=percent(ratio),
               half=maximum // 2, quarter=maximum // 4)]
    if by_state:
        facts.append(T(K + "fact.states",
                       states=", ".join(f"{k} {v}" for k, v in sorted(by_state.items()))))
    for label, total in aborts.items():
        facts.append(T(K + "fact.aborts", netns=label, n=total,
                       delta=deltas.get(label, 0)))
    if mem_state:
        facts.append(T(K + "fact.mem", pages=stat.mem_pages, low=tcp_mem[0],
                       pressure=tcp_mem[1], high=tcp_mem[2]))
    cause = [T(K + "cause")]
    if by_state.get("FIN_WAIT1") or by_state.get("LAST_ACK"):
        cause.append(T(K + "cause.unacked"))
    lifetime = [T(K + "life", retries=home.sysctl("tcp_orphan_retries", 0))]
    fixes = [Fix(FixKind.OPS, T(K + "fix.find"))]
    retries = orphan_retries_fix(home.sysctl("tcp_orphan_retries"), orphans)
    if retries is not None:
        fixes.append(retries)
    # Host-wide (Fix.sysctl.per_netns is False): tune proposes it on the host only.
    value = propose.max_orphans(maximum, tcp_mem)
    if value is not None:
        fixes.append(sysctl_fix(T(K + "fix.max", max=maximum, value=value,
                                  cap=max_orphans_ceiling(tcp_mem)),
                                "tcp_max_orphans", value, maximum,
                                netns=None if owner_ns is home else owner_ns.netns))
    elif max_orphans_ceiling(tcp_mem) is not None:
        fixes.append(Fix(FixKind.SYSCTL, T(K + "fix.max_at_cap", max=maximum,
                                           cap=max_orphans_ceiling(tcp_mem))))
    conf, reason = Confidence.HIGH, T(K + "conf")
    sample = sample_ctx.sample(sample_rows, limit) if sample_ctx is not None else None
    return [finding(META, home, severity=severity, count=orphans, title=title,
                    evidence=evidence, facts=facts, cause=cause, lifetime=lifetime, fixes=fixes,
                    confidence=conf, confidence_reason=reason, sample=sample)]
