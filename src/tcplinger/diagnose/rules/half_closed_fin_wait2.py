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
from ..evidence import age_text, count_older, duration
from ..finding import Confidence, Fix, FixKind, Severity
from ..lifetimes import DEFAULT_FIN_TIMEOUT, fin_wait2_lifetime
from ..process_text import short_command, who
from ..metadata import BY_ID
from ..rule_finding import RuleFinding
from ._common import (HeldSocketEvidence, T as text, end_owner, level, other_end_facts, peer_facts, young)

META = BY_ID["half-closed-fin-wait-2"]


def evaluate(ctx, th, world, limit):
    idx = ctx.indices(ctx.in_state(TcpState.FIN_WAIT2) & (ctx.inode != 0))
    return HalfClosed.per_owner(ctx, th, world, limit, idx)


class HalfClosed(HeldSocketEvidence, RuleFinding):
    """One owning process's half-closed FIN_WAIT2 sockets."""

    meta = META

    def measure(self) -> None:
        ctx, rows, th = self.ctx, self.rows, self.th
        self.n = int(len(rows))
        self.fin = ctx.sysctl("tcp_fin_timeout", DEFAULT_FIN_TIMEOUT)
        self.shut = ctx.rows["shutdown"][rows]
        self.shut_wr = int(np.count_nonzero(self.shut == 2))
        self.shut_both = int(np.count_nonzero(self.shut == 3))
        self.unread = int(np.count_nonzero(ctx.rows["recv_q"][rows] > 0))
        self.old = count_older(ctx, rows, th["warning_age"]) if th["warning_age"] is not None \
            else 0
        # a lingering close (Apache: ~2 s after its FIN) is normal behaviour:
        # only sockets at least min_age old accuse the process
        self.lasting, self.transient = young(ctx, rows, th["min_age"])

    def severity(self) -> Severity:
        if self.transient:
            return Severity.INFO
        severity = level(self.lasting, self.th["warning_count"], self.th["critical_count"])
        if severity < Severity.WARNING and self.old:
            severity = Severity.WARNING
        return severity

    def evidence(self) -> dict:
        owner = self.owner
        return {
            "pid": owner.pid if owner else None,
            "comm": owner.comm if owner else None,
            "command": short_command(owner.cmdline, owner.comm) if owner else None,
            "fin_wait2": self.n,
            "age": self.stats,
            "older_than_warning_age": self.old,
            "older_than_min_age": self.lasting,
            "min_age_s": self.th["min_age"],
            "shutdown": {"send": self.shut_wr, "both": self.shut_both,
                         "unknown": int(np.count_nonzero(self.shut < 0))},
            "unread_data": self.unread,
            "tcp_fin_timeout": self.fin,
            **self.sides,
            "other_end": self.here,
            "owners_resolved": self.ctx.owners_resolved,
        }

    def title(self):
        owner = self.owner
        if owner is not None:
            return self.T("title", n=self.n,
                          who=who(owner.pid, owner.comm, short_command(owner.cmdline, owner.comm)))
        return self.T("title_unowned", n=self.n)

    def facts(self) -> list:
        T = self.T
        facts = [T("fact.count", n=self.n, age=age_text(self.stats))]
        if self.transient:
            facts.append(text("rule.common.young", min_age=duration(self.th["min_age"]),
                              n=self.n))
        if self.shut_wr or self.shut_both:
            facts.append(T("fact.shutdown", wr=self.shut_wr, both=self.shut_both))
        if self.unread:
            facts.append(T("fact.unread", n=self.unread))
        facts += peer_facts(self.sides)
        facts.append(T("fact.fin_timeout", fin=self.fin))
        return facts + other_end_facts(self.here)

    def cause(self) -> list:
        peer_close_wait = [h for h in self.here if h["state"] == "CLOSE_WAIT"]
        if peer_close_wait:
            h = peer_close_wait[0]
            return [self.T("cause"), self.T("cause.peer_leak", netns=h["netns"],
                                            who=end_owner(h))]
        return [self.T("cause"), self.T("cause.peer")]

    def lifetime(self) -> list:
        return [self.T("life", fin=self.fin,
                       orphan_life=duration(fin_wait2_lifetime(self.fin)))]

    def fixes(self) -> list:
        return [Fix(FixKind.APP, self.T("fix.read_then_close")),
                Fix(FixKind.APP, self.T("fix.peer")),
                Fix(FixKind.SYSCTL, self.T("fix.no_sysctl", fin=self.fin))]

    def confidence(self):
        if self.transient:
            return Confidence.LOW, text("rule.common.conf.young",
                                        min_age=duration(self.th["min_age"]))
        if self.owner is None:
            return Confidence.MEDIUM, self.T("conf.no_owner")
        return Confidence.HIGH, self.T("conf.high")

    def owners(self) -> tuple:
        return self.ctx.owner_refs(self.rows)
