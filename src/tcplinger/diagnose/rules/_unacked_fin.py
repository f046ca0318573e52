"""Shared by fin-wait-1-stuck and last-ack-stuck: our FIN is not acknowledged.

Two ways to be stuck, told apart by the timer sock_diag shows:

* retransmit timer (``on``) with retransmissions: the FIN (or data before
  it) goes unanswered: the peer is gone or unreachable, or something on
  the path drops it (a firewall dropping FINs, conntrack calling a FIN
  INVALID after it forgot the flow). Bounded by tcp_orphan_retries for
  orphans (0 means 8) and tcp_retries2 otherwise (lifetimes.retransmit_deadline).
* zero-window probe timer (``persist``): the peer is alive but does not
  read; our FIN waits behind data its window does not accept. An owned
  socket probes for ever while the peer answers; an orphan dies when the
  probe interval reaches 120 s (lifetimes.zero_window_orphan_deadline).

Measured on Linux 6.18 (namespaces, nftables dropping every FIN):
orphan FIN_WAIT1, tcp_orphan_retries=2 -> gone after ~3.3 s (4 RTO firings);
owned (shutdown) FIN_WAIT1, tcp_retries2=3 -> ~6.5 s (5 firings), 15 -> by
939 s (16 firings, the process gets ETIMEDOUT);
orphan, default retries -> ~104 s (9 firings, TCPAbortOnTimeout +1);
orphan zero-window FIN_WAIT1 on loopback, default sysctls -> backoff 10
and a 120 s probe interval at 282 s, aborted at the next probe (~333 s).
"""

from __future__ import annotations

import numpy as np

from .. import sysctl_proposals as propose
from ..evidence import duration, endpoint_text, top_remote
from ..finding import Confidence, Fix, FixKind
from ..lifetimes import (TYPICAL_RTO_S, effective_orphan_retries, retransmit_deadline,
                         retransmit_deadline_after, zero_window_orphan_deadline)
from ..sysctl_bounds import BOUNDS
from ._common import T, finding, level, other_end_facts, other_ends, sysctl_fix

TIMER_RETRANSMIT = 1
TIMER_PROBE = 4


def orphan_retries_fix(current: int | None, orphans: int) -> Fix | None:
    """Fewer retries for orphans (sysctl_proposals.orphan_retries), None
    when they already get no more than tcplinger proposes. Shared with
    orphan-limit.

    >>> orphan_retries_fix(0, 5).command, orphan_retries_fix(5, 5)
    ('sysctl -w net.ipv4.tcp_orphan_retries=6', None)
    """
    value = propose.orphan_retries(current)
    if value is None:
        return None
    eff = effective_orphan_retries(current)
    return sysctl_fix(T("rule.common.fix.orphan_retries", n=orphans, value=current, eff=eff,
                        before=propose.orphan_budget_s(eff), proposed=value,
                        after=propose.orphan_budget_s(value),
                        low=BOUNDS["tcp_orphan_retries"].low),
                      "tcp_orphan_retries", value, current)


def rto_seconds(ctx, rows: np.ndarray) -> np.ndarray:
    """Each row's base RTO, else lifetimes.TYPICAL_RTO_S.

    tcp_info's ``rto`` is the backed-off value (icsk_rto doubles at each
    retransmission: 1632 ms after three on a 204 ms path), so it is shifted
    back by ``backoff``.
    """
    out = np.full(len(rows), TYPICAL_RTO_S)
    info = ctx.table.info
    if info is not None:
        present = info["present"][rows]
        rto = info["rto"][rows].astype(np.float64) / 1e6
        rto = rto / np.power(2.0, info["backoff"][rows].astype(np.float64))
        ok = present & (rto > 0)
        out[ok] = np.maximum(rto[ok], 0.2)
    return out


def evaluate_state(meta, prefix: str, state: int, ctx, th, world, limit):
    idx = ctx.indices(ctx.in_state(state))
    if len(idx) == 0:
        return []
    r = ctx.rows[idx]
    min_rt = th["min_retransmits"] if th["min_retransmits"] is not None else 1
    retrans = (r["timer"] == TIMER_RETRANSMIT) & (r["retrans"] >= min_rt)
    zero_win = r["timer"] == TIMER_PROBE
    stuck_mask = retrans | zero_win
    if not stuck_mask.any():
        return []
    rows = idx[stuck_mask]
    n = int(len(rows))
    orphan = ctx.inode[rows] == 0
    rs = ctx.rows[rows]
    rto = rto_seconds(ctx, rows)
    orphan_retries = effective_orphan_retries(ctx.sysctl("tcp_orphan_retries"))
    retries2 = int(ctx.sysctl("tcp_retries2", 15))
    is_rt = rs["timer"] == TIMER_RETRANSMIT
    left = np.full(n, np.nan)
    for k in range(n):
        if is_rt[k]:
            retries = orphan_retries if orphan[k] else retries2
            left[k] = retransmit_deadline_after(retries, int(rs["retrans"][k]), rto[k])
    n_rt, n_zw = int(np.count_nonzero(is_rt)), int(np.count_nonzero(~is_rt))
    n_orphan = int(np.count_nonzero(orphan))
    peers = top_remote(ctx, rows, with_port=True)
    here = other_ends(ctx, world, rows)
    send_q = rs["send_q"]
    groups, _ = ctx.by_owner(rows[~orphan]) if (~orphan).any() else ({}, None)

    evidence = {
        "stuck": n,
        "in_state": int(len(idx)),
        "retransmitting": n_rt,
        "zero_window": n_zw,
        "orphans": n_orphan,
        "owned": n - n_orphan,
        "max_retransmits": int(rs["retrans"][is_rt].max()) if n_rt else 0,
        "send_q_bytes": int(send_q.sum()),
        "tcp_orphan_retries": ctx.sysctl("tcp_orphan_retries"),
        "effective_orphan_retries": orphan_retries,
        "tcp_retries2": retries2,
        "deadline_orphan_s": round(retransmit_deadline(orphan_retries, TYPICAL_RTO_S), 1),
        "deadline_owned_s": round(retransmit_deadline(retries2, TYPICAL_RTO_S), 1),
        "zero_window_orphan_deadline_s": round(zero_window_orphan_deadline(TYPICAL_RTO_S), 1),
        "time_left_s": ({"min": round(float(np.nanmin(left)), 3),
                         "max": round(float(np.nanmax(left)), 3)}
                        if not np.isnan(left).all() else None),
        "peers": peers,
        "other_end": here,
    }
    title = T(prefix + "title", n=n, peers=endpoint_text(peers, 2))
    facts = [T(prefix + "fact.count", n=n, total=int(len(idx)), rt=n_rt, zw=n_zw,
               orphans=n_orphan, owned=n - n_orphan)]
    if n_rt:
        facts.append(T("rule.common.unacked.retrans", n=n_rt, max=evidence["max_retransmits"]))
    if n_zw:
        facts.append(T("rule.common.unacked.zero_window", n=n_zw, bytes=int(send_q[~is_rt].sum())))
    facts.append(T("rule.common.unacked.peers", peers=endpoint_text(peers)))
    for pid, (o, grp) in sorted(groups.items(), key=lambda kv: -len(kv[1][1]))[:3]:
        facts.append(T("rule.common.unacked.owner", comm=o.comm, pid=pid, n=int(len(grp))))
    facts += other_end_facts(here)

    cause = []
    if n_rt:
        cause.append(T("rule.common.unacked.cause.retrans"))
    if n_zw:
        cause.append(T("rule.common.unacked.cause.zero_window"))
    cause.append(T(prefix + "cause"))

    lifetime = []
    if n_rt and n_orphan:
        lifetime.append(T("rule.common.unacked.life.orphan", retries=orphan_retries,
                          sysctl=ctx.sysctl("tcp_orphan_retries", 0),
                          deadline=duration(evidence["deadline_orphan_s"])))
    if n_rt and n - n_orphan:
        lifetime.append(T("rule.common.unacked.life.owned", retries=retries2,
                          deadline=duration(evidence["deadline_owned_s"])))
    if evidence["time_left_s"]:
        lifetime.append(T("rule.common.unacked.life.left",
                          lo=duration(evidence["time_left_s"]["min"]),
                          hi=duration(evidence["time_left_s"]["max"])))
    if n_zw:
        lifetime.append(T("rule.common.unacked.life.zero_window",
                          deadline=duration(evidence["zero_window_orphan_deadline_s"])))

    fixes = [Fix(FixKind.OPS, T("rule.common.unacked.fix.path"))]
    if n_zw:
        fixes.append(Fix(FixKind.APP, T("rule.common.unacked.fix.reader")))
    retries_fix = orphan_retries_fix(ctx.sysctl("tcp_orphan_retries"), n_orphan) \
        if n_orphan else None
    if retries_fix is not None:
        fixes.append(retries_fix)
    if n - n_orphan:
        fixes.append(Fix(FixKind.SOCKET, T("rule.common.unacked.fix.user_timeout")))

    severity = level(n, th["warning_count"], th["critical_count"])
    if here:
        conf, reason = Confidence.HIGH, T("rule.common.unacked.conf.peer_here")
    elif n_rt and int(rs["retrans"][is_rt].max()) >= 3:
        conf, reason = Confidence.HIGH, T("rule.common.unacked.conf.retrans")
    else:
        conf, reason = Confidence.MEDIUM, T("rule.common.unacked.conf.young")
    return [finding(meta, ctx, severity=severity, count=n, title=title, evidence=evidence,
                    facts=facts, cause=cause, lifetime=lifetime, fixes=fixes, confidence=conf,
                    confidence_reason=reason, owners=ctx.owner_refs(rows[~orphan]),
                    sample=ctx.sample(rows, limit))]
