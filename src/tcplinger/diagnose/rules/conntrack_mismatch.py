"""conntrack-mismatch: the firewall forgets a closing flow the endpoints keep.

After one side's FIN is acknowledged, conntrack holds the flow in its
CLOSE_WAIT state for nf_conntrack_tcp_timeout_close_wait (60 s by default)
whichever side sits in CLOSE_WAIT or FIN_WAIT2 (the state table in
net/netfilter/nf_conntrack_proto_tcp.c: FIN -> FIN_WAIT, its ACK ->
CLOSE_WAIT). The endpoint sockets have no such limit. When the entry is
gone, a later FIN cannot create one (with nf_conntrack_tcp_loose=1 a lone
ACK can, a FIN is classified INVALID) and rulesets that drop INVALID
packets (kube-proxy, most stateful firewalls) drop it.

Measured on Linux 6.18 with a router namespace between client and server
(close_wait timeout 5 s, ``ct state invalid drop``): conntrack showed the
flow as CLOSE_WAIT with 4 s left at 0.5 s, nothing at 7 s; the server's
FIN then was dropped (drop counter +6 in 3 s); the server stayed in
LAST_ACK retransmitting and the client in FIN_WAIT2.

Which namespaces' conntrack sees a connection is not visible from socket
tables: when the sockets' own namespace tracks (nf_conntrack_count > 0)
the rule is sure; when only other namespaces looked at track (a router,
the host of a container), it says the flow *may* pass through them.
"""

from __future__ import annotations

import numpy as np

from ...model.states import TcpState
from .. import sysctl_proposals as propose
from ..evidence import (age_stats, age_text, duration, endpoint_text, percent, top_remote)
from ..finding import Confidence, Fix, FixKind
from ..metadata import BY_ID
from ..rule_finding import RuleFinding
from ._common import at_least, level, sysctl_fix

META = BY_ID["conntrack-mismatch"]
DEFAULT_CLOSE_WAIT = 60


def tracking(ctx) -> bool:
    ct = ctx.kernel.conntrack
    return ct is not None and ct[0] > 0


def evaluate(ctx, th, world, limit):
    out = []
    ct = ctx.kernel.conntrack
    if ct is not None and ct[1]:
        out += ConntrackFull(ctx, th, world, limit, np.zeros(0, np.int64)).findings()
    trackers = [c for c in world.contexts if tracking(c)]
    found = stale_rows(ctx, trackers) if trackers else None
    if found is not None:
        tracker, timeout, stale = found
        out += StaleFlows(ctx, th, world, limit, stale, tracker=tracker, timeout=timeout,
                          trackers=trackers).findings()
    return out


def stale_rows(ctx, trackers: list):
    """(tracker, its close_wait timeout, rows of ``ctx``) for the CLOSE_WAIT
    and FIN_WAIT2 sockets older than a tracking namespace's timeout (the
    sockets' own namespace first: it surely sees its own flows), or None."""
    idx = ctx.indices(ctx.in_state(TcpState.CLOSE_WAIT, TcpState.FIN_WAIT2))
    if len(idx) == 0:
        return None
    ages = ctx.age[idx]
    known = ~np.isnan(ages)
    if not known.any():
        return None
    trackers.sort(key=lambda c: (c is not ctx, c.sysctl("nf_conntrack_tcp_timeout_close_wait",
                                                         DEFAULT_CLOSE_WAIT)))
    for tr in trackers:
        timeout = tr.sysctl("nf_conntrack_tcp_timeout_close_wait", DEFAULT_CLOSE_WAIT)
        stale = idx[known & (ages > timeout)]
        if len(stale):
            return tr, timeout, stale
    return None


class StaleFlows(RuleFinding):
    """Sockets older than the conntrack timeout of a namespace that tracks."""

    meta = META

    def __init__(self, ctx, th, world, limit, rows, *, tracker, timeout, trackers):
        super().__init__(ctx, th, world, limit, rows)
        self.tr, self.timeout, self.trackers = tracker, timeout, trackers

    def measure(self) -> None:
        self.n = int(len(self.rows))
        self.same = self.tr is self.ctx
        self.stats = age_stats(self.ctx, self.rows)
        self.peers = top_remote(self.ctx, self.rows, with_port=True)

    def severity(self):
        if not at_least(self.n, self.th["warning_count"]):
            return None
        return level(self.n, self.th["warning_count"], None)

    def evidence(self) -> dict:
        tr, ctx = self.tr, self.ctx
        st = np.bincount(ctx.state[self.rows], minlength=16)
        return {
            "stale": self.n,
            "close_wait": int(st[int(TcpState.CLOSE_WAIT)]),
            "fin_wait2": int(st[int(TcpState.FIN_WAIT2)]),
            "age": self.stats,
            "conntrack_netns": tr.netns.label(),
            "same_namespace": self.same,
            "nf_conntrack_tcp_timeout_close_wait": self.timeout,
            "nf_conntrack_tcp_timeout_fin_wait": tr.sysctl("nf_conntrack_tcp_timeout_fin_wait"),
            "conntrack": ({"count": tr.kernel.conntrack[0], "max": tr.kernel.conntrack[1]}),
            "trackers": [{"netns": c.netns.label(), "count": c.kernel.conntrack[0],
                          "close_wait_timeout": c.sysctl("nf_conntrack_tcp_timeout_close_wait")}
                         for c in self.trackers],
            "peers": self.peers,
        }

    def title(self):
        return self.T("title", n=self.n, timeout=duration(self.timeout),
                      netns=self.tr.netns.label())

    def facts(self) -> list:
        T, tr = self.T, self.tr
        return [T("fact.stale", n=self.n, cw=self.ev["close_wait"], fw2=self.ev["fin_wait2"],
                  age=age_text(self.stats), timeout=duration(self.timeout),
                  netns=tr.netns.label()),
                T("fact.same" if self.same else "fact.other", netns=tr.netns.label(),
                  count=tr.kernel.conntrack[0]),
                T("fact.peers", peers=endpoint_text(self.peers))]

    def cause(self) -> list:
        return [self.T("cause", timeout=duration(self.timeout)), self.T("cause.invalid")]

    def lifetime(self) -> list:
        return [self.T("life")]

    def fixes(self) -> list:
        T, tr = self.T, self.tr
        fixes = [Fix(FixKind.APP, T("fix.close"))]
        # In the namespace that tracks (the router), not necessarily this one.
        current = tr.sysctl("nf_conntrack_tcp_timeout_close_wait")
        value = propose.ct_close_wait(current, tr.sysctl("nf_conntrack_tcp_timeout_established"))
        if value is not None:
            fixes.append(sysctl_fix(T("fix.timeout", netns=tr.netns.label(), n=self.n,
                                      timeout=current, value=value),
                                    "nf_conntrack_tcp_timeout_close_wait", value, current,
                                    netns=None if self.same else tr.netns))
        fixes.append(Fix(FixKind.OPS, T("fix.invalid")))
        return fixes

    def confidence(self):
        if self.same:
            return Confidence.HIGH, self.T("conf.same")
        return Confidence.LOW, self.T("conf.other", netns=self.tr.netns.label())

    def owners(self) -> tuple:
        return self.ctx.owner_refs(self.rows)


class ConntrackFull(RuleFinding):
    """This namespace's conntrack table filling up (no sockets to show)."""

    meta = META

    def measure(self) -> None:
        self.entries, self.maximum = self.ctx.kernel.conntrack
        self.fill = self.entries / self.maximum

    def severity(self):
        if not at_least(self.fill, self.th["warning_fill"]):
            return None
        return level(self.fill, self.th["warning_fill"], self.th["critical_fill"])

    def evidence(self) -> dict:
        ctx = self.ctx
        return {"conntrack": {"count": self.entries, "max": self.maximum},
                "fill": round(self.fill, 4),
                "nf_conntrack_tcp_timeout_established":
                    ctx.sysctl("nf_conntrack_tcp_timeout_established"),
                "nf_conntrack_tcp_timeout_time_wait":
                    ctx.sysctl("nf_conntrack_tcp_timeout_time_wait")}

    def title(self):
        return self.T("title_full", pct=percent(self.fill), count=self.entries, max=self.maximum)

    def facts(self) -> list:
        return [self.T("fact.full", count=self.entries, max=self.maximum, pct=percent(self.fill))]

    def cause(self) -> list:
        return [self.T("cause.full")]

    def lifetime(self) -> list:
        return [self.T("life.full")]

    def fixes(self) -> list:
        T, maximum, fixes = self.T, self.maximum, []
        more = propose.ct_max(maximum)
        if more is not None:  # host-wide: Fix.sysctl.per_netns is False
            fixes.append(sysctl_fix(T("fix.max", max=maximum, value=more),
                                    "nf_conntrack_max", more, maximum))
        est = self.ctx.sysctl("nf_conntrack_tcp_timeout_established")
        shorter = propose.ct_established(est)
        if shorter is not None:
            fixes.append(sysctl_fix(T("fix.established", est=est, value=shorter),
                                    "nf_conntrack_tcp_timeout_established", shorter, est))
        return fixes

    def confidence(self):
        return Confidence.HIGH, self.T("conf.full")

    def count(self) -> int:
        return self.entries

    def sample(self):
        return None
