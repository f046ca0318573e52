"""time-wait-pressure: TIME_WAIT against tcp_max_tw_buckets.

TIME_WAIT lasts TCP_TIMEWAIT_LEN, 60 s (include/net/tcp.h); on Linux 6.18
it measured 60 s with tcp_fin_timeout = 5. tcp_max_tw_buckets counts every
timewait-type socket, orphaned FIN_WAIT2 minisockets included; past it,
``tcp_time_wait()`` (net/ipv4/tcp_minisocks.c) closes the socket at once
and counts TCPTimeWaitOverflow: with tcp_max_tw_buckets = 3, six more
closes left 3 TIME_WAIT and added 4 to the counter (one bucket was taken).
The side that closes first gets the TIME_WAIT: a local port with a
listener means this host, the server, closed first.

With a watch history (``NamespaceInput.trends``): how fast TIME_WAIT grows
and when, at that rate, the timewait-type sockets reach tcp_max_tw_buckets
(``warning_ttl``: a warning, and a finding even below ``info_count``).
"""

from __future__ import annotations

import numpy as np

from ...model.kernel import TCP_TIMEWAIT_LEN_S
from ...model.states import TcpState
from .. import sysctl_proposals as propose
from ..evidence import duration, endpoint_text, percent, port_text, top_local_ports, top_remote
from ..finding import Confidence, Fix, FixKind, Severity
from ..inputs import within
from ..lifetimes import DEFAULT_FIN_TIMEOUT
from ..metadata import BY_ID
from ..sysctl_bounds import TW_SOCK_BYTES
from ._common import T, at_least, finding, level, sysctl_fix

META = BY_ID["time-wait-pressure"]
K = "rule.time-wait-pressure."


def evaluate(ctx, th, world, limit):
    idx = ctx.indices(ctx.in_state(TcpState.TIME_WAIT))
    n = int(len(idx))
    tw_type = int(np.count_nonzero(ctx.rows["timewait"]))
    buckets = ctx.sysctl("tcp_max_tw_buckets")
    ratio = tw_type / buckets if buckets else None
    overflow = ctx.counter("TCPTimeWaitOverflow")
    overflow_delta = ctx.delta("TCPTimeWaitOverflow")
    rising = bool(overflow_delta and overflow_delta > 0)
    growing = _growing(ctx, tw_type, buckets)
    ttl = growing["time_to_limit_s"] if growing is not None else None
    near = within(ttl, th["warning_ttl"])
    if not (at_least(n, th["info_count"]) or at_least(ratio, th["warning_ratio"]) or rising
            or (overflow and n) or near):
        return []

    ports = ctx.rows["sport"][idx]
    listening = np.fromiter(ctx.listen_ports, dtype=np.uint16) if ctx.listen_ports else \
        np.zeros(0, np.uint16)
    server_mask = np.isin(ports, listening)
    server = idx[server_mask]
    client = idx[~server_mask]
    tw_reuse = ctx.sysctl("tcp_tw_reuse")
    fin = ctx.sysctl("tcp_fin_timeout", DEFAULT_FIN_TIMEOUT)
    rng = ctx.sysctl("ip_local_port_range")
    created = ctx.delta("TW")
    interval = ctx.inp.interval

    severity = level(ratio, th["warning_ratio"], th["critical_ratio"])
    if rising:
        severity = Severity.CRITICAL
    elif near:
        severity = max(severity, Severity.WARNING)

    evidence = {
        "time_wait": n,
        "timewait_type_sockets": tw_type,
        "tcp_max_tw_buckets": buckets,
        "ratio": round(ratio, 4) if ratio is not None else None,
        "TCPTimeWaitOverflow": overflow,
        "TCPTimeWaitOverflow_delta": overflow_delta,
        "interval_s": interval,
        "created_per_s_estimate": round(n / TCP_TIMEWAIT_LEN_S, 3),
        "created_per_s_measured": (round(created / interval, 3)
                                   if created is not None and interval else None),
        "server_side": int(len(server)),
        "client_side": int(len(client)),
        "server_ports": top_local_ports(ctx, server),
        "server_peers": top_remote(ctx, server),
        "client_destinations": top_remote(ctx, client, with_port=True),
        "tcp_tw_reuse": tw_reuse,
        "tcp_fin_timeout": fin,
        "ip_local_port_range": list(rng) if rng else None,
        "growing": growing,
    }
    title = T(K + "title", n=n, buckets=buckets if buckets else "?",
              pct=percent(ratio) if ratio is not None else "?")
    facts = [T(K + "fact.count", n=n, tw=tw_type, buckets=buckets if buckets else "?",
               pct=percent(ratio) if ratio is not None else "?")]
    if overflow is not None:
        if overflow_delta is not None:
            facts.append(T(K + "fact.overflow_delta", total=overflow, delta=overflow_delta,
                           interval=f"{interval:.0f}" if interval else "?"))
        else:
            facts.append(T(K + "fact.overflow", total=overflow))
    facts.append(T(K + "fact.rate", rate=f"{n / TCP_TIMEWAIT_LEN_S:.3g}"))
    if growing is not None:
        args = dict(rate=f"{growing['per_minute']:+.3g}", window=duration(growing["window_s"]))
        if ttl is not None:
            facts.append(T(K + "fact.growing", limit=buckets, eta=duration(ttl), **args))
        else:
            facts.append(T(K + "fact.growing_no_limit", **args))
    if len(server):
        facts.append(T(K + "fact.server", n=int(len(server)),
                       ports=port_text(evidence["server_ports"]),
                       peers=endpoint_text(evidence["server_peers"])))
    if len(client):
        facts.append(T(K + "fact.client", n=int(len(client)),
                       dests=endpoint_text(evidence["client_destinations"])))

    cause = [T(K + "cause")]
    if len(server) >= len(client):
        cause.append(T(K + "cause.server"))
    else:
        cause.append(T(K + "cause.client"))
    if rising or overflow:
        cause.append(T(K + "cause.overflow"))

    lifetime = [T(K + "life", fin=fin), T(K + "life.no_knob")]
    if buckets:
        lifetime.append(T(K + "life.overflow", buckets=buckets))

    fixes = [Fix(FixKind.APP, T(K + "fix.reuse"))]
    if len(server):
        fixes.append(Fix(FixKind.APP, T(K + "fix.client_closes")))
    if len(client):
        reuse = propose.tw_reuse(tw_reuse)
        if reuse is not None:
            fixes.append(sysctl_fix(T(K + "fix.tw_reuse", value=tw_reuse, n=int(len(client))),
                                    "tcp_tw_reuse", reuse, tw_reuse,
                                    requires=propose.TW_REUSE_REQUIRES))
        # Whether ports run short is ephemeral-port-exhaustion's question
        # (it counts them per destination and proposes the range).
        fixes.append(Fix(FixKind.SYSCTL, T(K + "fix.port_range")))
    # Near or past the limit the kernel destroys TIME_WAIT early: raise it.
    if at_least(ratio, th["warning_ratio"]) or rising or near:
        more = propose.tw_buckets(buckets, tw_type)
        if more is not None:
            fixes.append(sysctl_fix(T(K + "fix.buckets", tw=tw_type, buckets=buckets,
                                      pct=percent(ratio) if ratio is not None else "?",
                                      value=more, mib=f"{more * TW_SOCK_BYTES / (1 << 20):.0f}"),
                                    "tcp_max_tw_buckets", more, buckets))
    fixes.append(Fix(FixKind.SOCKET, T(K + "fix.linger0")))
    fixes.append(Fix(FixKind.SYSCTL, T(K + "fix.not_these")))

    conf, reason = Confidence.HIGH, T(K + "conf")
    return [finding(META, ctx, severity=severity, count=n, title=title, evidence=evidence,
                    facts=facts, cause=cause, lifetime=lifetime, fixes=fixes, confidence=conf,
                    confidence_reason=reason, sample=ctx.sample(idx, limit))]


def _growing(ctx, tw_type: int, buckets) -> dict | None:
    """The ``growing`` evidence: the watch history's TIME_WAIT trend, with
    the time until the timewait-type sockets counted now reach
    tcp_max_tw_buckets at that rate."""
    trends = ctx.inp.trends
    trend = trends.by_state.get(int(TcpState.TIME_WAIT)) if trends is not None else None
    if trend is None:
        return None
    return trend.evidence(current=tw_type, limit=buckets or None,
                          limit_name="tcp_max_tw_buckets" if buckets else None,
                          ttl=trend.until(tw_type, buckets or None))
