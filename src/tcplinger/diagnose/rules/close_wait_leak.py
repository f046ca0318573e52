"""close-wait-leak: the peer closed, this process never called close().

One finding per owning process. Evidence: count, oldest age, Recv-Q
(1 = the peer's FIN was never read, 0 = EOF read and the socket still
kept), SO_KEEPALIVE (a keepalive timer), fd usage against RLIMIT_NOFILE,
peers, and the other end when it lives in a namespace being looked at.
With a watch history (``NamespaceInput.trends``): how fast the process's
CLOSE_WAIT grow and when, at that rate, its open fds reach RLIMIT_NOFILE
(``warning_ttl`` / ``critical_ttl`` raise the severity).

What ends a CLOSE_WAIT socket, measured on Linux 6.18 (tcp_keepalive_time
2 s, intvl 1 s, probes 3, tcp_fin_timeout 1 s, loopback):

* no SO_KEEPALIVE: still CLOSE_WAIT after 20 s; nothing in the kernel ends it.
* SO_KEEPALIVE, peer's socket gone: the first probe (after 2 s idle) got a
  RST; the socket became CLOSE (so_error EPIPE) and left the dump, while
  the process still held its fd.
* SO_KEEPALIVE, peer silent (its packets dropped): reset after
  2 + 3 x 1 s (so_error ETIMEDOUT), fd still held.
* SO_KEEPALIVE, peer alive in FIN_WAIT2 (shutdown() and kept): probes were
  answered; still CLOSE_WAIT after 20 s.
"""

from __future__ import annotations

import numpy as np

from ...model.states import TcpState
from ..evidence import (age_stats, age_text, count_older, duration, endpoint_text,
                        keepalive_mask, percent, port_text, top_local_ports, top_remote)
from ..finding import Confidence, Fix, FixKind, Severity
from ..inputs import within
from ..lifetimes import DEFAULT_KEEPALIVE_TIME, keepalive_deadline
from ..metadata import BY_ID
from ._common import T, at_least, finding, level, other_end_facts, other_ends, per_owner

META = BY_ID["close-wait-leak"]
K = "rule.close-wait-leak."


def evaluate(ctx, th, world, limit):
    idx = ctx.indices(ctx.in_state(TcpState.CLOSE_WAIT))
    return per_owner(ctx, idx, lambda rows, owner: _one(ctx, th, world, limit, rows, owner))


def _one(ctx, th, world, limit, rows: np.ndarray, owner):
    n = int(len(rows))
    stats = age_stats(ctx, rows)
    recv_q = ctx.rows["recv_q"][rows]
    eof_unread = int(np.count_nonzero(recv_q == 1))
    eof_read = int(np.count_nonzero(recv_q == 0))
    data_unread = int(np.count_nonzero(recv_q > 1))
    ka = int(np.count_nonzero(keepalive_mask(ctx, rows)))
    kt = ctx.sysctl("tcp_keepalive_time", DEFAULT_KEEPALIVE_TIME)
    kintvl = ctx.sysctl("tcp_keepalive_intvl", 75)
    kprobes = ctx.sysctl("tcp_keepalive_probes", 9)
    old = count_older(ctx, rows, th["warning_age"]) if th["warning_age"] is not None else 0
    fds = ctx.inp.processes.get(owner.pid) if owner is not None else None
    fd_ratio = None
    if fds is not None and fds.soft_limit:
        fd_ratio = fds.open_fds / fds.soft_limit
    peers = top_remote(ctx, rows)
    ports = top_local_ports(ctx, rows)
    here = other_ends(ctx, world, rows)

    severity = level(n, th["warning_count"], th["critical_count"])
    if severity < Severity.WARNING and old:
        severity = Severity.WARNING
    if at_least(fd_ratio, th["critical_fd_ratio"]):
        severity = Severity.CRITICAL
    growing = _growing(ctx, owner, fds)
    ttl = growing["time_to_limit_s"] if growing is not None else None
    if within(ttl, th["critical_ttl"]):
        severity = Severity.CRITICAL
    elif within(ttl, th["warning_ttl"]):
        severity = max(severity, Severity.WARNING)

    evidence = {
        "pid": owner.pid if owner else None,
        "comm": owner.comm if owner else None,
        "cmdline": owner.cmdline if owner else None,
        "close_wait": n,
        "age": stats,
        "older_than_warning_age": old,
        "recv_q": {"eof_unread": eof_unread, "eof_read": eof_read, "data_unread": data_unread},
        "keepalive": {"with_so_keepalive": ka, "without": n - ka,
                      "tcp_keepalive_time": kt, "tcp_keepalive_intvl": kintvl,
                      "tcp_keepalive_probes": kprobes},
        "fds": ({"open": fds.open_fds, "soft_limit": fds.soft_limit,
                 "ratio": round(fd_ratio, 4) if fd_ratio is not None else None}
                if fds is not None else None),
        "peers": peers,
        "local_ports": ports,
        "other_end": here,
        "owners_resolved": ctx.owners_resolved,
        "growing": growing,
    }

    if owner is not None:
        title = T(K + "title", comm=owner.comm, pid=owner.pid, n=n)
    elif ctx.owners_resolved:
        title = T(K + "title_unowned", n=n)
    else:
        title = T(K + "title_unresolved", n=n)

    facts = [T(K + "fact.count", n=n, age=age_text(stats), known=stats["known"])]
    if eof_unread:
        facts.append(T(K + "fact.eof_unread", n=eof_unread))
    if eof_read:
        facts.append(T(K + "fact.eof_read", n=eof_read))
    if data_unread:
        facts.append(T(K + "fact.data_unread", n=data_unread))
    if fds is not None:
        facts.append(T(K + "fact.fds", open=fds.open_fds,
                       limit=fds.soft_limit if fds.soft_limit else "unlimited",
                       pct=percent(fd_ratio) if fd_ratio is not None else "-"))
    if growing is not None:
        args = dict(rate=f"{growing['per_minute']:+.3g}", window=duration(growing["window_s"]))
        if ttl is not None:
            facts.append(T(K + "fact.growing", limit=growing["limit"], eta=duration(ttl),
                           **args))
        else:
            facts.append(T(K + "fact.growing_no_limit", **args))
    facts.append(T(K + "fact.peers", peers=endpoint_text(peers), ports=port_text(ports)))
    facts.append(T(K + "fact.keepalive", ka=ka, n=n, kt=kt))
    facts += other_end_facts(here)

    cause = [T(K + "cause")]
    if eof_unread >= max(eof_read, data_unread) and eof_unread:
        cause.append(T(K + "cause.eof_unread"))
    elif eof_read >= data_unread and eof_read:
        cause.append(T(K + "cause.eof_read"))
    else:
        cause.append(T(K + "cause.data_unread"))

    lifetime = [T(K + "life.forever")]
    if ka:
        lifetime.append(T(K + "life.keepalive", ka=ka, kt=duration(kt),
                          deadline=duration(keepalive_deadline(kt, kintvl, kprobes)),
                          probes=kprobes, intvl=duration(kintvl)))
    if n - ka:
        lifetime.append(T(K + "life.no_keepalive", n=n - ka, kt=duration(kt)))

    fixes = [Fix(FixKind.APP, T(K + "fix.close_on_eof")),
             Fix(FixKind.APP, T(K + "fix.pool"))]
    if owner is not None:
        fixes.append(Fix(FixKind.OPS, T(K + "fix.restart", comm=owner.comm, pid=owner.pid)))
    if at_least(fd_ratio, 0.5) or within(ttl, th["warning_ttl"]):
        fixes.append(Fix(FixKind.OPS, T(K + "fix.nofile", pid=owner.pid)))
    fixes.append(Fix(FixKind.SYSCTL, T(K + "fix.no_sysctl")))

    if owner is None:
        conf, reason = Confidence.LOW, T(K + "conf.no_owner")
    elif n >= (th["warning_count"] or n + 1) or old:
        conf, reason = Confidence.HIGH, T(K + "conf.high")
    elif growing is not None:
        conf, reason = Confidence.HIGH, T(K + "conf.growing")
    else:
        conf, reason = Confidence.MEDIUM, T(K + "conf.young")

    owners = ctx.owner_refs(rows)
    return finding(META, ctx, severity=severity, count=n, title=title, evidence=evidence,
                   facts=facts, cause=cause, lifetime=lifetime, fixes=fixes, confidence=conf,
                   confidence_reason=reason, owners=owners, sample=ctx.sample(rows, limit))


def _growing(ctx, owner, fds) -> dict | None:
    """The ``growing`` evidence: the watch history's trend of this
    process's CLOSE_WAIT, with the time to RLIMIT_NOFILE taken from the fd
    usage read now when there is one (fresher than the database's)."""
    trends = ctx.inp.trends
    if trends is None or owner is None:
        return None
    trend = trends.by_owner.get((owner.pid, int(TcpState.CLOSE_WAIT)))
    if trend is None:
        return None
    if fds is not None:
        # soft_limit None: unlimited, nothing to reach
        return trend.evidence(current=fds.open_fds, limit=fds.soft_limit,
                              limit_name="RLIMIT_NOFILE" if fds.soft_limit else None,
                              ttl=trend.until(fds.open_fds, fds.soft_limit))
    return trend.evidence(limit_name="RLIMIT_NOFILE" if trend.limit else None)
