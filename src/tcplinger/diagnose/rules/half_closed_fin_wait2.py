"""half-closed-fin-wait-2: FIN_WAIT2 still held by a process.

The process called shutdown(SHUT_WR) (or shutdown(SHUT_RDWR)) and kept
the descriptor. tcp_fin_timeout bounds only *orphaned* FIN_WAIT2
(``tcp_close()``, net/ipv4/tcp.c); measured on Linux 6.18 with
tcp_fin_timeout = 5 s: a half-closed socket was still FIN_WAIT2 after 8 s
(and stays until the peer closes, or the owner closes or exits).
"""

from __future__ import annotations

import numpy as np

from ...model.states import TcpState
from ..evidence import (age_stats, age_text, count_older, duration, endpoint_text,
                        port_text, top_local_ports, top_remote)
from ..finding import Confidence, Fix, FixKind, Severity
from ..lifetimes import DEFAULT_FIN_TIMEOUT, fin_wait2_lifetime
from ..metadata import BY_ID
from ._common import T, finding, level, other_end_facts, other_ends, per_owner

META = BY_ID["half-closed-fin-wait-2"]
K = "rule.half-closed-fin-wait-2."


def evaluate(ctx, th, world, limit):
    idx = ctx.indices(ctx.in_state(TcpState.FIN_WAIT2) & (ctx.inode != 0))
    return per_owner(ctx, idx, lambda rows, owner: _one(ctx, th, world, limit, rows, owner))


def _one(ctx, th, world, limit, rows: np.ndarray, owner):
    n = int(len(rows))
    stats = age_stats(ctx, rows)
    fin = ctx.sysctl("tcp_fin_timeout", DEFAULT_FIN_TIMEOUT)
    shut = ctx.rows["shutdown"][rows]
    shut_wr = int(np.count_nonzero(shut == 2))
    shut_both = int(np.count_nonzero(shut == 3))
    unread = int(np.count_nonzero(ctx.rows["recv_q"][rows] > 0))
    old = count_older(ctx, rows, th["warning_age"]) if th["warning_age"] is not None else 0
    peers = top_remote(ctx, rows, with_port=True)
    ports = top_local_ports(ctx, rows)
    here = other_ends(ctx, world, rows)
    peer_close_wait = [h for h in here if h["state"] == "CLOSE_WAIT"]

    severity = level(n, th["warning_count"], th["critical_count"])
    if severity < Severity.WARNING and old:
        severity = Severity.WARNING

    evidence = {
        "pid": owner.pid if owner else None,
        "comm": owner.comm if owner else None,
        "fin_wait2": n,
        "age": stats,
        "older_than_warning_age": old,
        "shutdown": {"send": shut_wr, "both": shut_both,
                     "unknown": int(np.count_nonzero(shut < 0))},
        "unread_data": unread,
        "tcp_fin_timeout": fin,
        "peers": peers,
        "local_ports": ports,
        "other_end": here,
        "owners_resolved": ctx.owners_resolved,
    }
    if owner is not None:
        title = T(K + "title", comm=owner.comm, pid=owner.pid, n=n)
    else:
        title = T(K + "title_unowned", n=n)

    facts = [T(K + "fact.count", n=n, age=age_text(stats))]
    if shut_wr or shut_both:
        facts.append(T(K + "fact.shutdown", wr=shut_wr, both=shut_both))
    if unread:
        facts.append(T(K + "fact.unread", n=unread))
    facts.append(T(K + "fact.peers", peers=endpoint_text(peers), ports=port_text(ports)))
    facts.append(T(K + "fact.fin_timeout", fin=fin))
    facts += other_end_facts(here)

    cause = [T(K + "cause")]
    if peer_close_wait:
        h = peer_close_wait[0]
        cause.append(T(K + "cause.peer_leak", netns=h["netns"],
                       who=f"{h['comm']} (pid {h['pid']})" if h["pid"] else "?"))
    else:
        cause.append(T(K + "cause.peer"))

    lifetime = [T(K + "life", fin=fin, orphan_life=duration(fin_wait2_lifetime(fin)))]
    fixes = [Fix(FixKind.APP, T(K + "fix.read_then_close")),
             Fix(FixKind.APP, T(K + "fix.peer")),
             Fix(FixKind.SYSCTL, T(K + "fix.no_sysctl", fin=fin))]
    if owner is None:
        conf, reason = Confidence.MEDIUM, T(K + "conf.no_owner")
    else:
        conf, reason = Confidence.HIGH, T(K + "conf.high")
    return finding(META, ctx, severity=severity, count=n, title=title, evidence=evidence,
                   facts=facts, cause=cause, lifetime=lifetime, fixes=fixes, confidence=conf,
                   confidence_reason=reason, owners=ctx.owner_refs(rows),
                   sample=ctx.sample(rows, limit))
