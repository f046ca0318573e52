"""keepalive-vs-idle-timeout: idle ESTABLISHED connections a middlebox may drop.

Load balancers, NAT gateways and firewalls forget a TCP flow after some
idle time (metadata.MIDDLEBOX_IDLE_TIMEOUTS); the endpoints are not told,
and the next packet meets a RST or nothing. TCP keepalive prevents it only
on sockets with SO_KEEPALIVE (they show a keepalive timer) and only when
their idle time (TCP_KEEPIDLE, else tcp_keepalive_time, 7200 s by default)
is shorter than the middlebox's timeout.

Idle time comes from tcp_info: the smallest of last_data_sent,
last_data_recv and last_ack_recv (last_ack_sent is never filled in by
Linux). Without tcp_info for ESTABLISHED sockets the rule stays silent.
"""

from __future__ import annotations

import numpy as np

from ...model.states import TcpState
from .. import sysctl_proposals as propose
from ..evidence import duration, endpoint_text, port_text, top_local_ports, top_remote
from ..finding import Confidence, Fix, FixKind, Severity, Text
from ..lifetimes import DEFAULT_KEEPALIVE_TIME
from ..metadata import BY_ID, MIDDLEBOX_IDLE_TIMEOUTS
from ..rule_finding import RuleFinding
from ..sysctl_bounds import BOUNDS
from ._common import at_least, sysctl_fix

META = BY_ID["keepalive-vs-idle-timeout"]


def idle_seconds(ctx, idx: np.ndarray) -> np.ndarray:
    """Seconds since the last segment either way (NaN without tcp_info)."""
    out = np.full(len(idx), np.nan)
    info = ctx.table.info
    if info is None:
        return out
    present = np.flatnonzero(info["present"][idx])
    if len(present) == 0:
        return out
    sel = info[idx[present]]
    out[present] = np.minimum(np.minimum(sel["last_data_sent"], sel["last_data_recv"]),
                              sel["last_ack_recv"]) / 1000.0
    return out


def evaluate(ctx, th, world, limit):
    timeout = th["idle_timeout"]
    if timeout is None:
        return []
    idx = ctx.indices(ctx.in_state(TcpState.ESTABLISHED))
    if len(idx) == 0:
        return []
    idle = idle_seconds(ctx, idx)
    long_idle = ~np.isnan(idle) & (idle >= timeout)
    if not long_idle.any():
        return []
    return KeepaliveIdle(ctx, th, world, limit, idx[long_idle], idle=idle[long_idle]).findings()


class KeepaliveIdle(RuleFinding):
    """ESTABLISHED sockets idle at least as long as a middlebox keeps them."""

    meta = META

    def __init__(self, ctx, th, world, limit, rows, *, idle: np.ndarray):
        super().__init__(ctx, th, world, limit, rows)
        self.idle = idle

    def measure(self) -> None:
        ctx, rows = self.ctx, self.rows
        self.timeout = timeout = self.th["idle_timeout"]
        self.n = int(len(rows))
        self.kt = ctx.sysctl("tcp_keepalive_time", DEFAULT_KEEPALIVE_TIME)
        r = ctx.rows[rows]
        ka = r["timer"] == 2
        # The keepalive timer fires when the socket has been idle for its
        # keepalive time; idle + time to the next firing is what the
        # middlebox sees before the first probe.
        silent_for = self.idle + r["expires_ms"] / 1000.0
        ka_late = ka & (silent_for > timeout)
        self.n_ka = int(np.count_nonzero(ka))
        self.n_ka_late = int(np.count_nonzero(ka_late))
        self.n_none = self.n - self.n_ka
        self.max_idle = float(np.max(self.idle))
        self.boxes = [{"name": name, "idle_timeout_s": t} for name, t in MIDDLEBOX_IDLE_TIMEOUTS
                      if t <= self.max_idle]
        self.peers = top_remote(ctx, rows, with_port=True)
        self.ports = top_local_ports(ctx, rows)

    def severity(self):
        return Severity.WARNING if at_least(self.n, self.th["warning_count"]) else Severity.INFO

    def evidence(self) -> dict:
        return {
            "idle_established": self.n,
            "idle_timeout_s": self.timeout,
            "max_idle_s": round(self.max_idle, 3),
            "with_so_keepalive": self.n_ka,
            "keepalive_too_late": self.n_ka_late,
            "without_so_keepalive": self.n_none,
            "tcp_keepalive_time": self.kt,
            "middleboxes_exceeded": self.boxes,
            "peers": self.peers,
            "local_ports": self.ports,
        }

    def title(self):
        return self.T("title", n=self.n, idle=duration(self.timeout))

    def facts(self) -> list:
        T = self.T
        facts = [T("fact.count", n=self.n, idle=duration(self.timeout),
                   max=duration(self.max_idle)),
                 T("fact.keepalive", ka=self.n_ka, late=self.n_ka_late, none=self.n_none,
                   kt=duration(self.kt)),
                 T("fact.peers", peers=endpoint_text(self.peers), ports=port_text(self.ports))]
        if self.boxes:
            facts.append(T("fact.boxes", boxes=", ".join(
                f"{b['name']} {duration(b['idle_timeout_s'])}" for b in self.boxes)))
        groups, _ = self.ctx.by_owner(self.rows)
        for pid, (o, grp) in sorted(groups.items(), key=lambda kv: -len(kv[1][1]))[:3]:
            facts.append(Text("rule.common.unacked.owner",
                              {"comm": o.comm, "pid": pid, "n": int(len(grp))}))
        return facts

    def cause(self) -> list:
        cause = [self.T("cause")]
        if self.kt > self.timeout:
            cause.append(self.T("cause.sysctl", kt=duration(self.kt), idle=duration(self.timeout)))
        if self.n_none:
            cause.append(self.T("cause.no_keepalive", n=self.n_none))
        return cause

    def lifetime(self) -> list:
        return [self.T("life")]

    def fixes(self) -> list:
        T, timeout, kt, n_ka = self.T, self.timeout, self.kt, self.n_ka
        want = propose.keepalive_time_for(timeout)
        fixes = [Fix(FixKind.SOCKET, T("fix.socket", idle=want)),
                 Fix(FixKind.APP, T("fix.pool", idle=want))]
        # Only sockets with SO_KEEPALIVE follow the sysctl; below the floor the
        # per-socket TCP_KEEPIDLE above is the remedy (sysctl_proposals.keepalive_time).
        value = propose.keepalive_time(timeout, self.ctx.sysctl("tcp_keepalive_time")) \
            if n_ka else None
        if value is not None:
            fixes.append(sysctl_fix(T("fix.sysctl", value=value, kt=kt, idle=int(timeout),
                                      n=n_ka), "tcp_keepalive_time", value, kt))
        elif n_ka and kt > want and want < BOUNDS["tcp_keepalive_time"].low:
            fixes.append(Fix(FixKind.SYSCTL, T("fix.sysctl_floor", idle=int(timeout),
                                               low=BOUNDS["tcp_keepalive_time"].low)))
        return fixes

    def confidence(self):
        return Confidence.LOW, self.T("conf")

    def owners(self) -> tuple:
        return self.ctx.owner_refs(self.rows)
