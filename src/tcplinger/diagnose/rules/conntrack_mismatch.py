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
from ._common import T, at_least, finding, level, sysctl_fix

META = BY_ID["conntrack-mismatch"]
K = "rule.conntrack-mismatch."
DEFAULT_CLOSE_WAIT = 60


def tracking(ctx) -> bool:
    ct = ctx.kernel.conntrack
    return ct is not None and ct[0] > 0


def evaluate(ctx, th, world, limit):
    out = []
    ct = ctx.kernel.conntrack
    if ct is not None and ct[1]:
        fill = ct[0] / ct[1]
        if at_least(fill, th["warning_fill"]):
            out.append(_fullness(ctx, th, fill, ct))
    trackers = [c for c in world.contexts if tracking(c)]
    if not trackers:
        return out
    idx = ctx.indices(ctx.in_state(TcpState.CLOSE_WAIT, TcpState.FIN_WAIT2))
    if len(idx) == 0:
        return out
    ages = ctx.age[idx]
    known = ~np.isnan(ages)
    if not known.any():
        return out
    # The sockets' own namespace first: it surely sees its own flows.
    trackers.sort(key=lambda c: (c is not ctx,
                                 c.sysctl("nf_conntrack_tcp_timeout_close_wait", DEFAULT_CLOSE_WAIT)))
    best = None
    for tr in trackers:
        timeout = tr.sysctl("nf_conntrack_tcp_timeout_close_wait", DEFAULT_CLOSE_WAIT)
        stale = idx[known & (ages > timeout)]
        if len(stale):
            best = (tr, timeout, stale)
            break
    if best is None:
        return out
    tr, timeout, stale = best
    n = int(len(stale))
    if not at_least(n, th["warning_count"]):
        return out
    same = tr is ctx
    stats = age_stats(ctx, stale)
    st = np.bincount(ctx.state[stale], minlength=16)
    peers = top_remote(ctx, stale, with_port=True)
    evidence = {
        "stale": n,
        "close_wait": int(st[int(TcpState.CLOSE_WAIT)]),
        "fin_wait2": int(st[int(TcpState.FIN_WAIT2)]),
        "age": stats,
        "conntrack_netns": tr.netns.label(),
        "same_namespace": same,
        "nf_conntrack_tcp_timeout_close_wait": timeout,
        "nf_conntrack_tcp_timeout_fin_wait": tr.sysctl("nf_conntrack_tcp_timeout_fin_wait"),
        "conntrack": ({"count": tr.kernel.conntrack[0], "max": tr.kernel.conntrack[1]}),
        "trackers": [{"netns": c.netns.label(), "count": c.kernel.conntrack[0],
                      "close_wait_timeout": c.sysctl("nf_conntrack_tcp_timeout_close_wait")}
                     for c in trackers],
        "peers": peers,
    }
    title = T(K + "title", n=n, timeout=duration(timeout), netns=tr.netns.label())
    facts = [T(K + "fact.stale", n=n, cw=evidence["close_wait"], fw2=evidence["fin_wait2"],
               age=age_text(stats), timeout=duration(timeout), netns=tr.netns.label()),
             T(K + ("fact.same" if same else "fact.other"), netns=tr.netns.label(),
               count=tr.kernel.conntrack[0]),
             T(K + "fact.peers", peers=endpoint_text(peers))]
    cause = [T(K + "cause", timeout=duration(timeout)), T(K + "cause.invalid")]
    lifetime = [T(K + "life")]
    fixes = [Fix(FixKind.APP, T(K + "fix.close"))]
    # In the namespace that tracks (the router), not necessarily this one.
    current = tr.sysctl("nf_conntrack_tcp_timeout_close_wait")
    value = propose.ct_close_wait(current, tr.sysctl("nf_conntrack_tcp_timeout_established"))
    if value is not None:
        fixes.append(sysctl_fix(T(K + "fix.timeout", netns=tr.netns.label(), n=n,
                                  timeout=current, value=value),
                                "nf_conntrack_tcp_timeout_close_wait", value, current,
                                netns=None if same else tr.netns))
    fixes.append(Fix(FixKind.OPS, T(K + "fix.invalid")))
    if same:
        conf, reason = Confidence.HIGH, T(K + "conf.same")
    else:
        conf, reason = Confidence.LOW, T(K + "conf.other", netns=tr.netns.label())
    owners = ctx.owner_refs(stale)
    out.append(finding(META, ctx, severity=level(n, th["warning_count"], None), count=n,
                       title=title, evidence=evidence, facts=facts, cause=cause,
                       lifetime=lifetime, fixes=fixes, confidence=conf, confidence_reason=reason,
                       owners=owners, sample=ctx.sample(stale, limit)))
    return out


def _fullness(ctx, th, fill, ct):
    count, maximum = ct
    evidence = {"conntrack": {"count": count, "max": maximum}, "fill": round(fill, 4),
                "nf_conntrack_tcp_timeout_established":
                    ctx.sysctl("nf_conntrack_tcp_timeout_established"),
                "nf_conntrack_tcp_timeout_time_wait": ctx.sysctl("nf_conntrack_tcp_timeout_time_wait")}
    title = T(K + "title_full", pct=percent(fill), count=count, max=maximum)
    facts = [T(K + "fact.full", count=count, max=maximum, pct=percent(fill))]
    fixes = []
    more = propose.ct_max(maximum)
    if more is not None:  # host-wide: Fix.sysctl.per_netns is False
        fixes.append(sysctl_fix(T(K + "fix.max", max=maximum, value=more),
                                "nf_conntrack_max", more, maximum))
    est = ctx.sysctl("nf_conntrack_tcp_timeout_established")
    shorter = propose.ct_established(est)
    if shorter is not None:
        fixes.append(sysctl_fix(T(K + "fix.established", est=est, value=shorter),
                                "nf_conntrack_tcp_timeout_established", shorter, est))
    return finding(META, ctx, severity=level(fill, th["warning_fill"], th["critical_fill"]),
                   count=count, title=title, evidence=evidence, facts=facts,
                   cause=[T(K + "cause.full")], lifetime=[T(K + "life.full")], fixes=fixes,
                   confidence=Confidence.HIGH, confidence_reason=T(K + "conf.full"))
