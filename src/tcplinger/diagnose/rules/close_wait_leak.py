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
from ..evidence import age_text, count_older, duration, keepalive_mask, percent
from ..finding import Confidence, Fix, FixKind, Severity
from ..inputs import within
from ..lifetimes import DEFAULT_KEEPALIVE_TIME, keepalive_deadline
from ..process_text import short_command, who
from ..metadata import BY_ID
from ..rates import number_text
from ..rule_finding import RuleFinding
from ._common import (HeldSocketEvidence, T as text, at_least, level, other_end_facts, peer_facts, young)

META = BY_ID["close-wait-leak"]


def evaluate(ctx, th, world, limit):
    idx = ctx.indices(ctx.in_state(TcpState.CLOSE_WAIT))
    return CloseWaitLeak.per_owner(ctx, th, world, limit, idx)


class CloseWaitLeak(HeldSocketEvidence, RuleFinding):
    """One owning process's CLOSE_WAIT sockets."""

    meta = META

    def measure(self) -> None:
        ctx, rows, th, owner = self.ctx, self.rows, self.th, self.owner
        self.n = int(len(rows))
        recv_q = ctx.rows["recv_q"][rows]
        self.eof_unread = int(np.count_nonzero(recv_q == 1))
        self.eof_read = int(np.count_nonzero(recv_q == 0))
        self.data_unread = int(np.count_nonzero(recv_q > 1))
        self.ka = int(np.count_nonzero(keepalive_mask(ctx, rows)))
        self.kt = ctx.sysctl("tcp_keepalive_time", DEFAULT_KEEPALIVE_TIME)
        self.kintvl = ctx.sysctl("tcp_keepalive_intvl", 75)
        self.kprobes = ctx.sysctl("tcp_keepalive_probes", 9)
        self.old = count_older(ctx, rows, th["warning_age"]) if th["warning_age"] is not None \
            else 0
        self.fds = ctx.inp.processes.get(owner.pid) if owner is not None else None
        self.fd_ratio = None
        if self.fds is not None and self.fds.soft_limit:
            self.fd_ratio = self.fds.open_fds / self.fds.soft_limit
        self.growing = _growing(ctx, owner, self.fds)
        self.ttl = self.growing["time_to_limit_s"] if self.growing is not None else None
        # only sockets known to be min_age old accuse the process; none:
        # passing through CLOSE_WAIT (under load, for milliseconds)
        self.lasting, young_only = young(ctx, rows, th["min_age"])
        self.transient = young_only and self.growing is None

    def severity(self) -> Severity:
        th = self.th
        if self.transient:  # nothing shows that they last
            return Severity.INFO
        severity = level(self.lasting, th["warning_count"], th["critical_count"])
        if severity < Severity.WARNING and self.old:
            severity = Severity.WARNING
        if at_least(self.fd_ratio, th["critical_fd_ratio"]):
            severity = Severity.CRITICAL
        if within(self.ttl, th["critical_ttl"]):
            severity = Severity.CRITICAL
        elif within(self.ttl, th["warning_ttl"]):
            severity = max(severity, Severity.WARNING)
        return severity

    def evidence(self) -> dict:
        owner, n, fds, fd_ratio = self.owner, self.n, self.fds, self.fd_ratio
        return {
            "pid": owner.pid if owner else None,
            "comm": owner.comm if owner else None,
            "cmdline": owner.cmdline if owner else None,
            "command": short_command(owner.cmdline, owner.comm) if owner else None,
            "close_wait": n,
            "age": self.stats,
            "older_than_warning_age": self.old,
            "older_than_min_age": self.lasting,
            "min_age_s": self.th["min_age"],
            "recv_q": {"eof_unread": self.eof_unread, "eof_read": self.eof_read,
                       "data_unread": self.data_unread},
            "keepalive": {"with_so_keepalive": self.ka, "without": n - self.ka,
                          "tcp_keepalive_time": self.kt, "tcp_keepalive_intvl": self.kintvl,
                          "tcp_keepalive_probes": self.kprobes},
            "fds": ({"open": fds.open_fds, "soft_limit": fds.soft_limit,
                     "ratio": round(fd_ratio, 4) if fd_ratio is not None else None}
                    if fds is not None else None),
            **self.sides,
            "other_end": self.here,
            "owners_resolved": self.ctx.owners_resolved,
            "growing": self.growing,
        }

    def title(self):
        owner = self.owner
        if owner is not None:
            return self.T("title", n=self.n,
                          who=who(owner.pid, owner.comm, short_command(owner.cmdline, owner.comm)))
        if self.ctx.owners_resolved:
            return self.T("title_unowned", n=self.n)
        return self.T("title_unresolved", n=self.n)

    def facts(self) -> list:
        T, n, fds, growing = self.T, self.n, self.fds, self.growing
        facts = [T("fact.count", n=n, age=age_text(self.stats), known=self.stats["known"])]
        if self.transient:
            facts.append(text("rule.common.young", min_age=duration(self.th["min_age"]), n=n))
        if self.eof_unread:
            facts.append(T("fact.eof_unread", n=self.eof_unread))
        if self.eof_read:
            facts.append(T("fact.eof_read", n=self.eof_read))
        if self.data_unread:
            facts.append(T("fact.data_unread", n=self.data_unread))
        if fds is not None:
            facts.append(T("fact.fds", open=fds.open_fds,
                           limit=fds.soft_limit if fds.soft_limit else "unlimited",
                           pct=percent(self.fd_ratio) if self.fd_ratio is not None else "-"))
        if growing is not None:
            args = dict(rate=number_text(growing["per_minute"], signed=True),
                        window=duration(growing["window_s"]))
            if self.ttl is not None:
                facts.append(T("fact.growing", limit=growing["limit"], eta=duration(self.ttl),
                               **args))
            else:
                facts.append(T("fact.growing_no_limit", **args))
        facts += peer_facts(self.sides)
        facts.append(T("fact.keepalive", ka=self.ka, n=n, kt=self.kt))
        return facts + other_end_facts(self.here)

    def cause(self) -> list:
        cause = [self.T("cause")]
        if self.eof_unread >= max(self.eof_read, self.data_unread) and self.eof_unread:
            cause.append(self.T("cause.eof_unread"))
        elif self.eof_read >= self.data_unread and self.eof_read:
            cause.append(self.T("cause.eof_read"))
        else:
            cause.append(self.T("cause.data_unread"))
        return cause

    def lifetime(self) -> list:
        kt, kintvl, kprobes = self.kt, self.kintvl, self.kprobes
        lifetime = [self.T("life.forever")]
        if self.ka:
            lifetime.append(self.T("life.keepalive", ka=self.ka, kt=duration(kt),
                                   deadline=duration(keepalive_deadline(kt, kintvl, kprobes)),
                                   probes=kprobes, intvl=duration(kintvl)))
        if self.n - self.ka:
            lifetime.append(self.T("life.no_keepalive", n=self.n - self.ka, kt=duration(kt)))
        return lifetime

    def fixes(self) -> list:
        T, owner = self.T, self.owner
        fixes = [Fix(FixKind.APP, T("fix.close_on_eof")), Fix(FixKind.APP, T("fix.pool"))]
        if owner is not None:
            fixes.append(Fix(FixKind.OPS, T("fix.restart", comm=owner.comm, pid=owner.pid)))
        if at_least(self.fd_ratio, 0.5) or within(self.ttl, self.th["warning_ttl"]):
            fixes.append(Fix(FixKind.OPS, T("fix.nofile", pid=owner.pid)))
        fixes.append(Fix(FixKind.SYSCTL, T("fix.no_sysctl")))
        return fixes

    def confidence(self):
        if self.transient:
            return Confidence.LOW, text("rule.common.conf.young",
                                        min_age=duration(self.th["min_age"]))
        if self.owner is None:
            return Confidence.LOW, self.T("conf.no_owner")
        if self.n >= (self.th["warning_count"] or self.n + 1) or self.old:
            return Confidence.HIGH, self.T("conf.high")
        if self.growing is not None:
            return Confidence.HIGH, self.T("conf.growing")
        return Confidence.MEDIUM, self.T("conf.young")

    def owners(self) -> tuple:
        return self.ctx.owner_refs(self.rows)


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
