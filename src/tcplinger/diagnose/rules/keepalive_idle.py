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
from ..finding import Confidence, Fix, FixKind, Severity
from ..lifetimes import DEFAULT_KEEPALIVE_TIME
from ..metadata import BY_ID, MIDDLEBOX_IDLE_TIMEOUTS
from ..sysctl_bounds import BOUNDS
from ._common import T, at_least, finding, sysctl_fix

META = BY_ID["keepalive-vs-idle-timeout"]
K = "rule.keepalive-vs-idle-timeout."


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
    rows = idx[long_idle]
    idle_rows = idle[long_idle]
    n = int(len(rows))
    kt = ctx.sysctl("tcp_keepalive_time", DEFAULT_KEEPALIVE_TIME)
    r = ctx.rows[rows]
    ka = r["timer"] == 2
    # The keepalive timer fires when the socket has been idle for its
    # keepalive time; idle + time to the next firing is what the
    # middlebox sees before the first probe.
    silent_for = idle_rows + r["expires_ms"] / 1000.0
    ka_late = ka & (silent_for > timeout)
    n_ka = int(np.count_nonzero(ka))
    n_ka_late = int(np.count_nonzero(ka_late))
    n_none = n - n_ka
    boxes = [{"name": name, "idle_timeout_s": t} for name, t in MIDDLEBOX_IDLE_TIMEOUTS
             if t <= float(np.max(idle_rows))]
    peers = top_remote(ctx, rows, with_port=True)
    ports = top_local_ports(ctx, rows)
    evidence = {
        "idle_established": n,
        "idle_timeout_s": timeout,
        "max_idle_s": round(float(np.max(idle_rows)), 3),
        "with_so_keepalive": n_ka,
        "keepalive_too_late": n_ka_late,
        "without_so_keepalive": n_none,
        "tcp_keepalive_time": kt,
        "middleboxes_exceeded": boxes,
        "peers": peers,
        "local_ports": ports,
    }
    title = T(K + "title", n=n, idle=duration(timeout))
    facts = [T(K + "fact.count", n=n, idle=duration(timeout),
               max=duration(float(np.max(idle_rows)))),
             T(K + "fact.keepalive", ka=n_ka, late=n_ka_late, none=n_none, kt=duration(kt)),
             T(K + "fact.peers", peers=endpoint_text(peers), ports=port_text(ports))]
    if boxes:
        facts.append(T(K + "fact.boxes", boxes=", ".join(
            f"{b['name']} {duration(b['idle_timeout_s'])}" for b in boxes)))
    groups, _ = ctx.by_owner(rows)
    for pid, (o, grp) in sorted(groups.items(), key=lambda kv: -len(kv[1][1]))[:3]:
        facts.append(T("rule.common.unacked.owner", comm=o.comm, pid=pid, n=int(len(grp))))
    cause = [T(K + "cause")]
    if kt > timeout:
        cause.append(T(K + "cause.sysctl", kt=duration(kt), idle=duration(timeout)))
    if n_none:
        cause.append(T(K + "cause.no_keepalive", n=n_none))
    lifetime = [T(K + "life")]
    want = propose.keepalive_time_for(timeout)
    fixes = [Fix(FixKind.SOCKET, T(K + "fix.socket", idle=want)),
             Fix(FixKind.APP, T(K + "fix.pool", idle=want))]
    # Only sockets with SO_KEEPALIVE follow the sysctl; below the floor the
    # per-socket TCP_KEEPIDLE above is the remedy (sysctl_proposals.keepalive_time).
    value = propose.keepalive_time(timeout, ctx.sysctl("tcp_keepalive_time")) if n_ka else None
    if value is not None:
        fixes.append(sysctl_fix(T(K + "fix.sysctl", value=value, kt=kt, idle=int(timeout),
                                  n=n_ka),
                                "tcp_keepalive_time", value, kt))
    elif n_ka and kt > want and want < BOUNDS["tcp_keepalive_time"].low:
        fixes.append(Fix(FixKind.SYSCTL, T(K + "fix.sysctl_floor", idle=int(timeout),
                                           low=BOUNDS["tcp_keepalive_time"].low)))
    severity = Severity.WARNING if at_least(n, th["warning_count"]) else Severity.INFO
    conf, reason = Confidence.LOW, T(K + "conf")
    return [finding(META, ctx, severity=severity, count=n, title=title, evidence=evidence,
                    facts=facts, cause=cause, lifetime=lifetime, fixes=fixes, confidence=conf,
                    confidence_reason=reason, owners=ctx.owner_refs(rows),
                    sample=ctx.sample(rows, limit))]
