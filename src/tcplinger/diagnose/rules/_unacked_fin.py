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
from ..rule_finding import RuleFinding
from ..sysctl_bounds import BOUNDS
from ._common import T, level, other_end_facts, other_ends, sysctl_fix

TIMER_RETRANSMIT = 1
TIMER_PROBE = 4
#: the messages both rules share
COMMON = "rule.common.unacked."


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


def evaluate_state(rule: type, state: int, ctx, th, world, limit):
    """``rule`` (an :class:`UnackedFin` subclass) on the sockets of ``state``
    whose FIN is being retransmitted or waits behind a zero window."""
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
    return rule(ctx, th, world, limit, idx[stuck_mask], in_state=int(len(idx))).findings()


class UnackedFin(RuleFinding):
    """Sockets whose FIN is not acknowledged (retransmitting, or stuck
    behind a zero window); subclasses name the rule (``meta``)."""

    def __init__(self, ctx, th, world, limit, rows, *, in_state: int):
        super().__init__(ctx, th, world, limit, rows)
        self.in_state = in_state

    def measure(self) -> None:
        ctx, rows = self.ctx, self.rows
        n = self.n = int(len(rows))
        self.orphan = orphan = ctx.inode[rows] == 0
        self.rs = rs = ctx.rows[rows]
        rto = rto_seconds(ctx, rows)
        self.orphan_retries = effective_orphan_retries(ctx.sysctl("tcp_orphan_retries"))
        self.retries2 = int(ctx.sysctl("tcp_retries2", 15))
        self.is_rt = is_rt = rs["timer"] == TIMER_RETRANSMIT
        self.left = np.full(n, np.nan)
        for k in range(n):
            if is_rt[k]:
                retries = self.orphan_retries if orphan[k] else self.retries2
                self.left[k] = retransmit_deadline_after(retries, int(rs["retrans"][k]), rto[k])
        self.n_rt, self.n_zw = int(np.count_nonzero(is_rt)), int(np.count_nonzero(~is_rt))
        self.n_orphan = int(np.count_nonzero(orphan))
        self.peers = top_remote(ctx, rows, with_port=True)
        self.here = other_ends(ctx, self.world, rows)

    def severity(self):
        return level(self.n, self.th["warning_count"], self.th["critical_count"])

    def evidence(self) -> dict:
        ctx, n, rs, left = self.ctx, self.n, self.rs, self.left
        return {
            "stuck": n,
            "in_state": self.in_state,
            "retransmitting": self.n_rt,
            "zero_window": self.n_zw,
            "orphans": self.n_orphan,
            "owned": n - self.n_orphan,
            "max_retransmits": int(rs["retrans"][self.is_rt].max()) if self.n_rt else 0,
            "send_q_bytes": int(rs["send_q"].sum()),
            "tcp_orphan_retries": ctx.sysctl("tcp_orphan_retries"),
            "effective_orphan_retries": self.orphan_retries,
            "tcp_retries2": self.retries2,
            "deadline_orphan_s": round(retransmit_deadline(self.orphan_retries, TYPICAL_RTO_S), 1),
            "deadline_owned_s": round(retransmit_deadline(self.retries2, TYPICAL_RTO_S), 1),
            "zero_window_orphan_deadline_s": round(zero_window_orphan_deadline(TYPICAL_RTO_S), 1),
            "time_left_s": ({"min": round(float(np.nanmin(left)), 3),
                             "max": round(float(np.nanmax(left)), 3)}
                            if not np.isnan(left).all() else None),
            "peers": self.peers,
            "other_end": self.here,
        }

    def title(self):
        return self.T("title", n=self.n, peers=endpoint_text(self.peers, 2))

    def facts(self) -> list:
        n, rows, orphan = self.n, self.rows, self.orphan
        facts = [self.T("fact.count", n=n, total=self.in_state, rt=self.n_rt, zw=self.n_zw,
                        orphans=self.n_orphan, owned=n - self.n_orphan)]
        if self.n_rt:
            facts.append(T(COMMON + "retrans", n=self.n_rt, max=self.ev["max_retransmits"]))
        if self.n_zw:
            facts.append(T(COMMON + "zero_window", n=self.n_zw,
                           bytes=int(self.rs["send_q"][~self.is_rt].sum())))
        facts.append(T(COMMON + "peers", peers=endpoint_text(self.peers)))
        groups, _ = self.ctx.by_owner(rows[~orphan]) if (~orphan).any() else ({}, None)
        for pid, (o, grp) in sorted(groups.items(), key=lambda kv: -len(kv[1][1]))[:3]:
            facts.append(T(COMMON + "owner", comm=o.comm, pid=pid, n=int(len(grp))))
        return facts + other_end_facts(self.here)

    def cause(self) -> list:
        cause = []
        if self.n_rt:
            cause.append(T(COMMON + "cause.retrans"))
        if self.n_zw:
            cause.append(T(COMMON + "cause.zero_window"))
        return cause + [self.T("cause")]

    def lifetime(self) -> list:
        ev, lifetime = self.ev, []
        if self.n_rt and self.n_orphan:
            lifetime.append(T(COMMON + "life.orphan", retries=self.orphan_retries,
                              sysctl=self.ctx.sysctl("tcp_orphan_retries", 0),
                              deadline=duration(ev["deadline_orphan_s"])))
        if self.n_rt and self.n - self.n_orphan:
            lifetime.append(T(COMMON + "life.owned", retries=self.retries2,
                              deadline=duration(ev["deadline_owned_s"])))
        if ev["time_left_s"]:
            lifetime.append(T(COMMON + "life.left", lo=duration(ev["time_left_s"]["min"]),
                              hi=duration(ev["time_left_s"]["max"])))
        if self.n_zw:
            lifetime.append(T(COMMON + "life.zero_window",
                              deadline=duration(ev["zero_window_orphan_deadline_s"])))
        return lifetime

    def fixes(self) -> list:
        fixes = [Fix(FixKind.OPS, T(COMMON + "fix.path"))]
        if self.n_zw:
            fixes.append(Fix(FixKind.APP, T(COMMON + "fix.reader")))
        retries_fix = orphan_retries_fix(self.ctx.sysctl("tcp_orphan_retries"), self.n_orphan) \
            if self.n_orphan else None
        if retries_fix is not None:
            fixes.append(retries_fix)
        if self.n - self.n_orphan:
            fixes.append(Fix(FixKind.SOCKET, T(COMMON + "fix.user_timeout")))
        return fixes

    def confidence(self):
        if self.here:
            return Confidence.HIGH, T(COMMON + "conf.peer_here")
        if self.n_rt and int(self.rs["retrans"][self.is_rt].max()) >= 3:
            return Confidence.HIGH, T(COMMON + "conf.retrans")
        return Confidence.MEDIUM, T(COMMON + "conf.young")

    def owners(self) -> tuple:
        return self.ctx.owner_refs(self.rows[~self.orphan])
