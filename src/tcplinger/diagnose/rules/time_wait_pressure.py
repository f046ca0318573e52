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

from ...model.states import TcpState
from ...model.table import member
from .. import culprits, rates, sysctl_proposals as propose
from ..evidence import duration, endpoint_text, percent, port_text, top_local_ports, top_remote
from ..finding import Confidence, Fix, FixKind, Severity
from ..inputs import within
from ..lifetimes import DEFAULT_FIN_TIMEOUT
from ..metadata import BY_ID
from ..rule_finding import RuleFinding
from ..sysctl_bounds import TW_SOCK_BYTES
from ._common import at_least, level, sysctl_fix

META = BY_ID["time-wait-pressure"]


def evaluate(ctx, th, world, limit):
    idx = ctx.indices(ctx.in_state(TcpState.TIME_WAIT))
    return TimeWaitPressure(ctx, th, world, limit, idx).findings()


class TimeWaitPressure(RuleFinding):
    """A namespace's TIME_WAIT sockets against tcp_max_tw_buckets."""

    meta = META

    def measure(self) -> None:
        ctx, idx = self.ctx, self.rows
        self.n = int(len(idx))
        self.tw_type = int(np.count_nonzero(ctx.rows["timewait"]))
        self.buckets = ctx.sysctl("tcp_max_tw_buckets")
        self.ratio = self.tw_type / self.buckets if self.buckets else None
        self.overflow = ctx.counter("TCPTimeWaitOverflow")
        self.overflow_delta = ctx.delta("TCPTimeWaitOverflow")
        self.rising = bool(self.overflow_delta and self.overflow_delta > 0)
        self.growing = _growing(ctx, self.tw_type, self.buckets)
        self.ttl = self.growing["time_to_limit_s"] if self.growing is not None else None
        self.near = within(self.ttl, self.th["warning_ttl"])
        # connections closed first here per second, from TcpExt TW +
        # TCPTimeWaitOverflow sampled over time; None: no rate was sampled
        self.rate = ctx.active_close_rate()

    def _sides(self) -> None:
        """Which TIME_WAIT a listener's port holds (this host closed first
        as the server) and which it does not (as the client)."""
        ctx, idx = self.ctx, self.rows
        ports = ctx.rows["sport"][idx]
        listening = np.fromiter(ctx.listen_ports, dtype=np.uint16) if ctx.listen_ports else \
            np.zeros(0, np.uint16)
        server_mask = member(ports, listening)
        self.server, self.client = idx[server_mask], idx[~server_mask]
        self.groups = culprits.groups(ctx, idx)

    def severity(self) -> Severity | None:
        th, n = self.th, self.n
        if not (at_least(n, th["info_count"]) or at_least(self.ratio, th["warning_ratio"])
                or self.rising or (self.overflow and n) or self.near):
            return None
        self._sides()
        severity = level(self.ratio, th["warning_ratio"], th["critical_ratio"])
        if self.rising:
            severity = Severity.CRITICAL
        elif self.near:
            severity = max(severity, Severity.WARNING)
        return severity

    def evidence(self) -> dict:
        ctx, n, server, client = self.ctx, self.n, self.server, self.client
        rng = ctx.sysctl("ip_local_port_range")
        interval = ctx.inp.interval
        return {
            "time_wait": n,
            "timewait_type_sockets": self.tw_type,
            "tcp_max_tw_buckets": self.buckets,
            "ratio": round(self.ratio, 4) if self.ratio is not None else None,
            "TCPTimeWaitOverflow": self.overflow,
            "TCPTimeWaitOverflow_delta": self.overflow_delta,
            "interval_s": interval,
            "active_close_rate": self.rate.to_json() if self.rate is not None else None,
            "server_side": int(len(server)),
            "client_side": int(len(client)),
            "server_ports": top_local_ports(ctx, server),
            "server_peers": top_remote(ctx, server),
            "client_destinations": top_remote(ctx, client, with_port=True),
            "groups": [g.to_json() for g in self.groups[:10]],
            "connects_sample": culprits.connects_json(ctx),
            "tcp_tw_reuse": ctx.sysctl("tcp_tw_reuse"),
            "tcp_fin_timeout": ctx.sysctl("tcp_fin_timeout", DEFAULT_FIN_TIMEOUT),
            "ip_local_port_range": list(rng) if rng else None,
            "growing": self.growing,
        }

    def _pct(self) -> str:
        return percent(self.ratio) if self.ratio is not None else "?"

    def title(self):
        return self.T("title", n=self.n, buckets=self.buckets if self.buckets else "?",
                      pct=self._pct())

    def facts(self) -> list:
        T, growing, interval = self.T, self.growing, self.ctx.inp.interval
        facts = [T("fact.count", n=self.n, tw=self.tw_type,
                   buckets=self.buckets if self.buckets else "?", pct=self._pct())]
        if self.overflow is not None:
            if self.overflow_delta is not None:
                # +0: the buckets kept every TIME_WAIT over the interval
                facts.append(T("fact.overflow_delta" if self.rising else "fact.overflow_still", total=self.overflow,
                               delta=self.overflow_delta,
                               interval=f"{interval:.0f}" if interval else "?"))
            else:
                facts.append(T("fact.overflow", total=self.overflow))
        if self.rate is not None:
            facts.append(T("fact.rate_measured", rate=rates.number_text(self.rate.per_s),
                           window=duration(self.rate.window_s), source=self.rate.source,
                           delta=self.rate.delta))
        else:
            facts.append(T("fact.rate_unknown"))
        if growing is not None:
            args = dict(rate=rates.number_text(growing["per_minute"], signed=True),
                        window=duration(growing["window_s"]))
            if self.ttl is not None:
                facts.append(T("fact.growing", limit=self.buckets, eta=duration(self.ttl),
                               **args))
            else:
                facts.append(T("fact.growing_no_limit", **args))
        if len(self.server):
            facts.append(T("fact.server", n=int(len(self.server)),
                           ports=port_text(self.ev["server_ports"]),
                           peers=endpoint_text(self.ev["server_peers"])))
        if len(self.client):
            facts.append(T("fact.client", n=int(len(self.client)),
                           dests=endpoint_text(self.ev["client_destinations"])))
        return facts + culprits.group_facts(self.ctx, self.groups)

    def cause(self) -> list:
        cause = [self.T("cause")]
        cause.append(self.T("cause.server") if len(self.server) >= len(self.client)
                     else self.T("cause.client"))
        if self.rising or self.overflow:
            cause.append(self.T("cause.overflow"))
        return cause

    def lifetime(self) -> list:
        lifetime = [self.T("life", fin=self.ev["tcp_fin_timeout"]), self.T("life.no_knob")]
        if self.buckets:
            lifetime.append(self.T("life.overflow", buckets=self.buckets))
        return lifetime

    def fixes(self) -> list:
        T, tw_reuse, buckets = self.T, self.ev["tcp_tw_reuse"], self.buckets
        fixes = culprits.group_fixes(self.ctx, self.groups) + [Fix(FixKind.APP, T("fix.reuse"))]
        if len(self.server):
            fixes.append(Fix(FixKind.APP, T("fix.client_closes")))
        if len(self.client):
            reuse = propose.tw_reuse(tw_reuse)
            if reuse is not None:
                fixes.append(sysctl_fix(T("fix.tw_reuse", value=tw_reuse, n=int(len(self.client))),
                                        "tcp_tw_reuse", reuse, tw_reuse,
                                        requires=propose.TW_REUSE_REQUIRES))
            # Whether ports run short is ephemeral-port-exhaustion's question
            # (it counts them per destination and proposes the range).
            fixes.append(Fix(FixKind.SYSCTL, T("fix.port_range")))
        # Near or past the limit the kernel destroys TIME_WAIT early: raise it.
        if at_least(self.ratio, self.th["warning_ratio"]) or self.rising or self.near:
            rate = self.rate
            more = propose.tw_buckets(buckets, self.tw_type,
                                      rate.per_s if rate is not None else None)
            if more is not None:
                size = rates.size_text(more * TW_SOCK_BYTES)
                if rate is not None:  # sized from the measured close rate
                    text = T("fix.buckets_rate", tw=self.tw_type, buckets=buckets,
                             pct=self._pct(), value=more, size=size,
                             rate=rates.number_text(rate.per_s), headroom=rates.HEADROOM)
                else:
                    text = T("fix.buckets", tw=self.tw_type, buckets=buckets, pct=self._pct(),
                             value=more, size=size)
                fixes.append(sysctl_fix(text, "tcp_max_tw_buckets", more, buckets))
        fixes.append(Fix(FixKind.SOCKET, T("fix.linger0")))
        fixes.append(Fix(FixKind.SYSCTL, T("fix.not_these")))
        return fixes

    def confidence(self):
        return Confidence.HIGH, self.T("conf")


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
