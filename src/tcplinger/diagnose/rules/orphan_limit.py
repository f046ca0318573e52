"""orphan-limit: orphans against tcp_max_orphans (one host-wide finding).

``tcp_orphan_count`` and tcp_max_orphans are global: /proc/net/sockstat
shows the same ``orphan`` figure in every namespace, and the sysctl exists
only in the initial namespace (checked on Linux 6.18). Timewait-type
minisockets are not in that count; full orphans are (FIN_WAIT1, CLOSING,
LAST_ACK, FIN_WAIT2 with a fin time above 60 s).

``tcp_out_of_resources()`` (net/ipv4/tcp_timer.c) kills an orphan when
``orphans << shift > tcp_max_orphans``, shift 1 for an orphan that sent
nothing for 2 x TCP_RTO_MAX or cannot be reset, 2 more after ICMP errors:
so such orphans die at 1/2 or 1/4 of the limit, with "too many orphaned
sockets" in the kernel log and TCPAbortOnMemory counted. The same counter
moves when TCP memory (tcp_mem, pages) is exhausted ("out of memory --
consider tuning tcp_mem").
"""

from __future__ import annotations

import numpy as np

from ...model.states import AFTER_CLOSE, TcpState, name as state_name
from ...model.table import member
from .. import sysctl_proposals as propose
from ..evidence import percent
from ..finding import Confidence, Fix, FixKind, Severity
from ..metadata import BY_ID
from ..rule_finding import RuleFinding
from ..sysctl_bounds import max_orphans_ceiling
from ._common import at_least, level, sysctl_fix
from ._unacked_fin import orphan_retries_fix

META = BY_ID["orphan-limit"]


#: Orphans the kernel counts: full sockets after close() (timewait-type
#: minisockets are not in tcp_orphan_count)
FULL_ORPHAN_STATES = sorted(int(st) for st in AFTER_CLOSE - {TcpState.TIME_WAIT})


def evaluate_host(world, th, limit):
    ctxs = world.contexts
    if not ctxs:
        return []
    with_stat = [c for c in ctxs if c.kernel.sockstat is not None]
    # Global: it exists in the initial namespace only, which may not be the
    # first one looked at; the fix is proposed there.
    owner_ns = next((c for c in ctxs if c.sysctl("tcp_max_orphans") is not None), None)
    maximum = owner_ns.sysctl("tcp_max_orphans") if owner_ns is not None else None
    if not with_stat or not maximum:
        return []
    return OrphanLimit(with_stat[0], th, world, limit, np.zeros(0, np.int64), maximum=maximum,
                       owner_ns=owner_ns).findings()


class OrphanLimit(RuleFinding):
    """The host's orphans against tcp_max_orphans, told from the first
    namespace with a sockstat (``ctx``); the sample comes from the first
    namespace that holds full orphans."""

    meta = META

    def __init__(self, ctx, th, world, limit, rows, *, maximum: int, owner_ns):
        super().__init__(ctx, th, world, limit, rows)
        self.maximum, self.owner_ns = maximum, owner_ns
        self.sample_ctx = None

    def measure(self) -> None:
        ctxs, stat = self.world.contexts, self.ctx.kernel.sockstat
        self.orphans = int(stat.orphan)
        self.ratio = self.orphans / self.maximum
        self.aborts = {c.netns.label(): c.counter("TCPAbortOnMemory") for c in ctxs
                       if c.counter("TCPAbortOnMemory")}
        self.deltas = {c.netns.label(): c.delta("TCPAbortOnMemory") for c in ctxs
                       if c.delta("TCPAbortOnMemory")}
        self.tcp_mem = tcp_mem = next((c.sysctl("tcp_mem") for c in ctxs if c.sysctl("tcp_mem")),
                                      None)
        self.mem_state = None
        if tcp_mem and len(tcp_mem) == 3:
            pages = stat.mem_pages
            self.mem_state = "over" if pages >= tcp_mem[2] else \
                "pressure" if pages >= tcp_mem[1] else "ok"

    def _full_orphans(self) -> None:
        """Full orphans (counted by the kernel) seen in the namespaces looked at."""
        self.by_state: dict[str, int] = {}
        for c in self.world.contexts:
            m = (c.inode == 0) & ~c.rows["timewait"] & member(c.state, FULL_ORPHAN_STATES)
            if m.any():
                counts = np.bincount(c.state[m], minlength=16)
                for st, v in enumerate(counts):
                    if v:
                        self.by_state[state_name(st)] = self.by_state.get(state_name(st), 0) \
                            + int(v)
                if self.sample_ctx is None:
                    self.sample_ctx, self.rows = c, np.flatnonzero(m)

    def severity(self):
        th, mem_state = self.th, self.mem_state
        if not (at_least(self.ratio, th["warning_ratio"]) or self.aborts
                or mem_state in ("pressure", "over")):
            return None
        self._full_orphans()
        severity = level(self.ratio, th["warning_ratio"], th["critical_ratio"])
        if self.deltas:
            severity = Severity.CRITICAL
        if mem_state == "over":
            severity = Severity.CRITICAL
        elif mem_state == "pressure":
            severity = max(severity, Severity.WARNING)
        return severity

    def evidence(self) -> dict:
        return {
            "orphans": self.orphans,
            "tcp_max_orphans": self.maximum,
            "ratio": round(self.ratio, 4),
            "host_wide": True,
            "orphans_by_state_seen": self.by_state,
            "TCPAbortOnMemory": self.aborts,
            "TCPAbortOnMemory_delta": self.deltas,
            "tcp_mem_pages": list(self.tcp_mem) if self.tcp_mem else None,
            "mem_pages": self.ctx.kernel.sockstat.mem_pages,
            "memory": self.mem_state,
            "tcp_orphan_retries": self.ctx.sysctl("tcp_orphan_retries"),
        }

    def title(self):
        return self.T("title", n=self.orphans, max=self.maximum, pct=percent(self.ratio))

    def facts(self) -> list:
        T, maximum, tcp_mem = self.T, self.maximum, self.tcp_mem
        facts = [T("fact.count", n=self.orphans, max=maximum, pct=percent(self.ratio),
                   half=maximum // 2, quarter=maximum // 4)]
        if self.by_state:
            facts.append(T("fact.states", states=", ".join(
                f"{k} {v}" for k, v in sorted(self.by_state.items()))))
        for label, total in self.aborts.items():
            facts.append(T("fact.aborts", netns=label, n=total, delta=self.deltas.get(label, 0)))
        if self.mem_state:
            facts.append(T("fact.mem", pages=self.ctx.kernel.sockstat.mem_pages,
                           low=tcp_mem[0], pressure=tcp_mem[1], high=tcp_mem[2]))
        return facts

    def cause(self) -> list:
        cause = [self.T("cause")]
        if self.by_state.get("FIN_WAIT1") or self.by_state.get("LAST_ACK"):
            cause.append(self.T("cause.unacked"))
        return cause

    def lifetime(self) -> list:
        return [self.T("life", retries=self.ctx.sysctl("tcp_orphan_retries", 0))]

    def fixes(self) -> list:
        T, maximum, tcp_mem, home = self.T, self.maximum, self.tcp_mem, self.ctx
        fixes = [Fix(FixKind.OPS, T("fix.find"))]
        retries = orphan_retries_fix(home.sysctl("tcp_orphan_retries"), self.orphans)
        if retries is not None:
            fixes.append(retries)
        # Host-wide (Fix.sysctl.per_netns is False): tune proposes it on the host only.
        value = propose.max_orphans(maximum, tcp_mem)
        if value is not None:
            fixes.append(sysctl_fix(T("fix.max", max=maximum, value=value,
                                      cap=max_orphans_ceiling(tcp_mem)),
                                    "tcp_max_orphans", value, maximum,
                                    netns=None if self.owner_ns is home else self.owner_ns.netns))
        elif max_orphans_ceiling(tcp_mem) is not None:
            fixes.append(Fix(FixKind.SYSCTL, T("fix.max_at_cap", max=maximum,
                                               cap=max_orphans_ceiling(tcp_mem))))
        return fixes

    def confidence(self):
        return Confidence.HIGH, self.T("conf")

    def count(self) -> int:
        return self.orphans

    def sample(self):
        if self.sample_ctx is None:
            return None
        return self.sample_ctx.sample(self.rows, self.limit)
