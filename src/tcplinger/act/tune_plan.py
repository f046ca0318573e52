"""``tcplinger tune``: from findings to a reviewed plan of sysctl changes.

Pure: findings and each namespace's current sysctls in, a :class:`TunePlan`
out. Every :class:`Proposal` says current -> proposed, the findings it
answers, the risk, and the bound that limits it (:mod:`.tune_bounds`).
Findings no sysctl can fix become :class:`Advice` saying so and what can
(a CLOSE_WAIT leak is a code bug; TIME_WAIT on a server has no knob).

Only WARNING and CRITICAL findings lead to changes; INFO ones are counted
(a threshold override makes one count). sysctl-folklore findings are about
the settings themselves and are handled at any severity. A bounds check
adds proposals that raise settings found below the floors (a
tcp_fin_timeout of 5, one keepalive probe) back to the floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from ..diagnose.finding import Finding, Severity, Text
from ..model.kernel import SYSCTL_BY_NAME
from ..model.socket import NetnsRef
from . import tune_bounds as tb

SysctlValue = int | tuple[int, ...]


@dataclass(frozen=True)
class NamespaceFacts:
    """A namespace's current sysctls (KernelContext.sysctls plus
    :data:`tune_bounds.EXTRA_PATHS`) and whether it is the host's (where
    host-wide settings live)."""

    netns: NetnsRef
    sysctls: Mapping[str, SysctlValue]
    host: bool = False


@dataclass(frozen=True)
class Proposal:
    netns: NetnsRef
    key: str
    current: SysctlValue
    proposed: SysctlValue
    rules: tuple[str, ...]  # rule ids of the findings it answers ("bounds" for the floor check)
    why: tuple[Text, ...]
    risk: Text
    bound: Text
    host_wide: bool = False

    @property
    def sysctl(self) -> str:
        return tb.sysctl_name(self.key)

    @property
    def path(self) -> str:
        return tb.sysctl_path(self.key)


@dataclass(frozen=True)
class Advice:
    """A finding no sysctl change answers, and what does."""

    netns: NetnsRef
    rule: str
    texts: tuple[Text, ...]


@dataclass
class TunePlan:
    proposals: list[Proposal] = field(default_factory=list)
    advice: list[Advice] = field(default_factory=list)
    below_warning: int = 0  # INFO findings that lead to nothing
    findings_used: list[tuple[str, str, NetnsRef]] = field(default_factory=list)

    def for_netns(self, inode: int) -> list[Proposal]:
        return [p for p in self.proposals if p.netns.inode == inode]


def format_value(value: SysctlValue) -> str:
    """How a value is written to /proc/sys and to sysctl.d files.

    >>> format_value(30), format_value((10000, 65535))
    ('30', '10000 65535')
    """
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def T(key: str, /, **fields) -> Text:  # noqa: N802 - reads like a message
    return Text(key, fields)


# ---- the plan ------------------------------------------------------------------

def plan(findings: Sequence[Finding], facts: Sequence[NamespaceFacts]) -> TunePlan:
    """Proposals and advice for ``findings`` over the namespaces in ``facts``.

    >>> from tcplinger.diagnose.finding import Confidence
    >>> ref = NetnsRef(1, "blue")
    >>> f = Finding("orphan-fin-wait-2", Severity.WARNING, ref, 5000, T("t"),
    ...             {"orphan_fin_wait2": 5000, "lifetime_s": 60}, (), (), (), (),
    ...             Confidence.HIGH, T("c"))
    >>> p = plan([f], [NamespaceFacts(ref, {"tcp_fin_timeout": 60})])
    >>> [(x.key, x.current, x.proposed, x.rules) for x in p.proposals]
    [('tcp_fin_timeout', 60, 30, ('orphan-fin-wait-2',))]
    """
    by_inode = {f.netns.inode: f for f in facts}
    out = TunePlan()
    acc = _Accumulator(out)
    for f in findings:
        nf = by_inode.get(f.netns.inode)
        if nf is None:
            continue
        if f.severity < Severity.WARNING and f.rule not in ACT_ON_INFO:
            out.below_warning += 1
            continue
        handler = HANDLERS.get(f.rule)
        if handler is None:
            continue
        out.findings_used.append((f.rule, f.severity.label, f.netns))
        handler(f, nf, facts, acc)
    for nf in facts:
        _bounds_check(nf, acc)
    return out


class _Accumulator:
    """Merges proposals for the same (namespace, key)."""

    def __init__(self, plan_: TunePlan):
        self.plan = plan_
        self._at: dict[tuple[int, str], int] = {}

    def propose(self, nf: NamespaceFacts, key: str, proposed: SysctlValue, rule: str,
                why: Text, risk: Text) -> None:
        current = nf.sysctls.get(key)
        if current is None:
            self.advise(nf, rule, T("tune.advice.not_readable", name=tb.sysctl_name(key)))
            return
        if current == proposed:
            return
        host_wide = not SYSCTL_BY_NAME[key].per_netns if key in SYSCTL_BY_NAME else False
        slot = (nf.netns.inode, key)
        if slot in self._at:
            i = self._at[slot]
            old = self.plan.proposals[i]
            if rule not in old.rules:
                self.plan.proposals[i] = Proposal(
                    old.netns, key, old.current, old.proposed, old.rules + (rule,),
                    old.why + (why,), old.risk, old.bound, old.host_wide)
            return
        self._at[slot] = len(self.plan.proposals)
        self.plan.proposals.append(Proposal(nf.netns, key, current, proposed, (rule,), (why,),
                                            risk, bound_text(key), host_wide))

    def advise(self, nf_or_ref, rule: str, *texts: Text) -> None:
        ref = nf_or_ref.netns if isinstance(nf_or_ref, NamespaceFacts) else nf_or_ref
        for a in self.plan.advice:
            if a.netns.inode == ref.inode and a.rule == rule and a.texts == texts:
                return
        self.plan.advice.append(Advice(ref, rule, texts))


def bound_text(key: str) -> Text:
    b = tb.BOUNDS[key]
    return T(f"tune.bound.{key}", low=b.low if b.low is not None else "-",
             high=b.high if b.high is not None else "-", sources="; ".join(b.sources))


# ---- one handler per rule ------------------------------------------------------

def _orphan_fw2(f: Finding, nf: NamespaceFacts, facts, acc: _Accumulator) -> None:
    fin = nf.sysctls.get("tcp_fin_timeout")
    n = f.evidence.get("orphan_fin_wait2", f.count)
    if fin is None:
        acc.advise(nf, f.rule, T("tune.advice.not_readable", name="net.ipv4.tcp_fin_timeout"))
        return
    if fin > 60:
        value = 60
    elif fin > tb.FIN_TIMEOUT_PROPOSED:
        value = tb.FIN_TIMEOUT_PROPOSED
    else:
        acc.advise(nf, f.rule, T("tune.advice.at_floor", name="net.ipv4.tcp_fin_timeout",
                                 value=fin, low=tb.BOUNDS["tcp_fin_timeout"].low),
                   T("tune.remedy.orphan_fw2"))
        return
    acc.propose(nf, "tcp_fin_timeout", tb.clamp("tcp_fin_timeout", value), f.rule,
                T("tune.why.orphan_fw2", n=n, fin=fin), T("tune.risk.tcp_fin_timeout",
                                                            value=value))


def _folklore(f: Finding, nf: NamespaceFacts, facts, acc: _Accumulator) -> None:
    item = f.evidence.get("item")
    if item == "fin_timeout_above_60":
        fin = f.evidence.get("tcp_fin_timeout")
        acc.propose(nf, "tcp_fin_timeout", 60, f.rule,
                    T("tune.why.fin_above_60", fin=fin, life=f.evidence.get("lifetime_s")),
                    T("tune.risk.tcp_fin_timeout", value=60))
    elif item in ("removed_key", "legacy_key"):
        acc.advise(nf, f.rule, T("tune.advice.remove_line", name=f.evidence.get("key"),
                                 path=f.evidence.get("path"), line=f.evidence.get("line")))
    elif item == "fin_timeout_vs_time_wait":
        acc.advise(nf, f.rule, T("tune.advice.fin_vs_tw", fin=f.evidence.get("tcp_fin_timeout")))
    elif item == "keepalive_vs_close_wait":
        acc.advise(nf, f.rule, T("tune.advice.keepalive_vs_cw",
                                 n=f.evidence.get("close_wait_without_keepalive", f.count)))
    elif item == "tw_reuse_incoming":
        acc.advise(nf, f.rule, T("tune.advice.tw_server", n=f.count))


def _tw_reuse(nf: NamespaceFacts, rule: str, why: Text, acc: _Accumulator) -> None:
    reuse = nf.sysctls.get("tcp_tw_reuse")
    if reuse == tb.TW_REUSE_PROPOSED:
        return
    ts = nf.sysctls.get("tcp_timestamps")
    if ts == 0:
        acc.advise(nf, rule, T("tune.advice.no_timestamps"))
        return
    acc.propose(nf, "tcp_tw_reuse", tb.TW_REUSE_PROPOSED, rule, why, T("tune.risk.tcp_tw_reuse"))


def _time_wait(f: Finding, nf: NamespaceFacts, facts, acc: _Accumulator) -> None:
    ev = f.evidence
    client, server = ev.get("client_side", 0), ev.get("server_side", 0)
    if client:
        _tw_reuse(nf, f.rule, T("tune.why.tw_client", n=client), acc)
    if server:
        acc.advise(nf, f.rule, T("tune.advice.tw_server", n=server))
    buckets = nf.sysctls.get("tcp_max_tw_buckets")
    tw = ev.get("timewait_type_sockets", f.count)
    ratio = ev.get("ratio")
    overflow = bool(ev.get("TCPTimeWaitOverflow_delta")) or (
        bool(ev.get("TCPTimeWaitOverflow")) and ratio is not None and ratio >= 0.5)
    if buckets and ((ratio is not None and ratio >= 0.5) or overflow):
        want = max(2 * buckets, 2 * tw)
        value = min(-(-want // 1024) * 1024, tb.BOUNDS["tcp_max_tw_buckets"].high)
        if value > buckets:
            acc.propose(nf, "tcp_max_tw_buckets", value, f.rule,
                        T("tune.why.tw_buckets", tw=tw, buckets=buckets,
                          pct=f"{100 * (ratio or 0):.0f}"),
                        T("tune.risk.tcp_max_tw_buckets", value=value,
                          mib=f"{value * tb.TW_SOCK_BYTES / (1 << 20):.0f}"))
        else:
            acc.advise(nf, f.rule, T("tune.advice.at_ceiling", name="net.ipv4.tcp_max_tw_buckets",
                                     value=buckets))


def _ports(f: Finding, nf: NamespaceFacts, facts, acc: _Accumulator) -> None:
    ev = f.evidence
    groups = ev.get("groups") or []
    if any((g.get("states") or {}).get("TIME_WAIT") for g in groups):
        _tw_reuse(nf, f.rule, T("tune.why.ports_reuse"), acc)
    rng = nf.sysctls.get("ip_local_port_range")
    if not rng:
        acc.advise(nf, f.rule, T("tune.advice.not_readable", name="net.ipv4.ip_local_port_range"))
        return
    lo, hi = rng
    new = (min(lo, tb.PORT_RANGE_PROPOSED[0]), max(hi, tb.PORT_RANGE_PROPOSED[1]))
    if new != (lo, hi):
        dest = ""
        if groups:
            g = groups[0]
            dest = f"{g.get('remote_address')}:{g.get('remote_port')}"
        acc.propose(nf, "ip_local_port_range", new, f.rule,
                    T("tune.why.ports", size=hi - lo + 1, new=new[1] - new[0] + 1, dest=dest),
                    T("tune.risk.ip_local_port_range", lo=new[0], hi=new[1]))
    else:
        acc.advise(nf, f.rule, T("tune.advice.ports_wide", lo=lo, hi=hi))


def _keepalive(f: Finding, nf: NamespaceFacts, facts, acc: _Accumulator) -> None:
    ev = f.evidence
    idle = ev.get("idle_timeout_s") or 0
    if not ev.get("with_so_keepalive"):
        acc.advise(nf, f.rule, T("tune.advice.keepalive_none", n=ev.get("idle_established",
                                                                        f.count)))
        return
    kt = nf.sysctls.get("tcp_keepalive_time")
    want = int(idle * 0.8)
    floor = tb.BOUNDS["tcp_keepalive_time"].low
    if want < floor:
        acc.advise(nf, f.rule, T("tune.advice.keepalive_floor", idle=int(idle), floor=floor))
        return
    if kt is not None and kt > want:
        acc.propose(nf, "tcp_keepalive_time", tb.clamp("tcp_keepalive_time", want), f.rule,
                    T("tune.why.keepalive", n=ev.get("with_so_keepalive"), idle=int(idle),
                      kt=kt),
                    T("tune.risk.tcp_keepalive_time", value=want))
    if ev.get("without_so_keepalive"):
        acc.advise(nf, f.rule, T("tune.advice.keepalive_none", n=ev["without_so_keepalive"]))


def _orphan_retries(nf: NamespaceFacts, rule: str, n: int, acc: _Accumulator) -> None:
    cur = nf.sysctls.get("tcp_orphan_retries")
    if cur is None:
        return
    eff = tb.effective_orphan_retries(cur)
    if eff > tb.ORPHAN_RETRIES_PROPOSED:
        acc.propose(nf, "tcp_orphan_retries", tb.ORPHAN_RETRIES_PROPOSED, rule,
                    T("tune.why.orphan_retries", n=n, eff=eff, before=tb.orphan_budget_s(eff),
                      after=tb.orphan_budget_s(tb.ORPHAN_RETRIES_PROPOSED)),
                    T("tune.risk.tcp_orphan_retries",
                      after=tb.orphan_budget_s(tb.ORPHAN_RETRIES_PROPOSED)))
    else:
        acc.advise(nf, rule, T("tune.advice.at_floor", name="net.ipv4.tcp_orphan_retries",
                               value=cur, low=tb.BOUNDS["tcp_orphan_retries"].low))


def _unacked(f: Finding, nf: NamespaceFacts, facts, acc: _Accumulator) -> None:
    ev = f.evidence
    if ev.get("orphans"):
        _orphan_retries(nf, f.rule, ev["orphans"], acc)
    if ev.get("owned"):
        acc.advise(nf, f.rule, T("tune.advice.owned_unacked", n=ev["owned"]))


def _orphan_limit(f: Finding, nf: NamespaceFacts, facts, acc: _Accumulator) -> None:
    ev = f.evidence
    _orphan_retries(nf, f.rule, ev.get("orphans", f.count), acc)
    maximum = nf.sysctls.get("tcp_max_orphans")
    mem = nf.sysctls.get("tcp_mem")
    if not nf.host or maximum is None:
        acc.advise(nf, f.rule, T("tune.advice.host_only", name="net.ipv4.tcp_max_orphans"))
        return
    if not mem or len(mem) != 3:
        return
    cap = mem[2] * tb.PAGE_BYTES // tb.ORPHAN_BYTES
    value = min(2 * maximum, cap)
    if value > maximum:
        acc.propose(nf, "tcp_max_orphans", value, f.rule,
                    T("tune.why.orphan_max", n=ev.get("orphans", f.count), max=maximum),
                    T("tune.risk.tcp_max_orphans", value=value,
                      mib=f"{value * tb.ORPHAN_BYTES / (1 << 20):.0f}"))
    else:
        acc.advise(nf, f.rule, T("tune.advice.orphan_mem", max=maximum, cap=cap))


def _conntrack(f: Finding, nf: NamespaceFacts, facts, acc: _Accumulator) -> None:
    ev = f.evidence
    if "stale" in ev:
        label = ev.get("conntrack_netns")
        tracker = next((x for x in facts if x.netns.label() == label), nf)
        est = tracker.sysctls.get("nf_conntrack_tcp_timeout_established")
        value = tb.CT_CLOSE_WAIT_PROPOSED
        if est:
            value = min(value, est)
        acc.propose(tracker, "nf_conntrack_tcp_timeout_close_wait", value, f.rule,
                    T("tune.why.ct_close_wait", n=ev.get("stale", f.count),
                      timeout=ev.get("nf_conntrack_tcp_timeout_close_wait")),
                    T("tune.risk.nf_conntrack_tcp_timeout_close_wait", value=value))
        return
    if "fill" in ev:
        ct = ev.get("conntrack") or {}
        est = nf.sysctls.get("nf_conntrack_tcp_timeout_established")
        if est is not None and est > tb.CT_ESTABLISHED_PROPOSED:
            acc.propose(nf, "nf_conntrack_tcp_timeout_established", tb.CT_ESTABLISHED_PROPOSED,
                        f.rule, T("tune.why.ct_full", count=ct.get("count"), max=ct.get("max")),
                        T("tune.risk.nf_conntrack_tcp_timeout_established",
                          value=tb.CT_ESTABLISHED_PROPOSED))
        if nf.host and ct.get("max"):
            acc.propose(nf, "nf_conntrack_max", 2 * int(ct["max"]), f.rule,
                        T("tune.why.ct_full", count=ct.get("count"), max=ct.get("max")),
                        T("tune.risk.nf_conntrack_max", value=2 * int(ct["max"])))
        elif not nf.host:
            acc.advise(nf, f.rule, T("tune.advice.host_only", name="net.netfilter.nf_conntrack_max"))


def _close_wait(f: Finding, nf: NamespaceFacts, facts, acc: _Accumulator) -> None:
    ev = f.evidence
    pid, comm = ev.get("pid"), ev.get("comm")
    if pid:
        acc.advise(nf, f.rule, T("tune.advice.close_wait", n=ev.get("close_wait", f.count),
                                 comm=comm, pid=pid),
                   T("tune.remedy.close_wait", pid=pid))
    else:
        acc.advise(nf, f.rule, T("tune.advice.close_wait_unowned",
                                 n=ev.get("close_wait", f.count)),
                   T("tune.remedy.close_wait_unowned"))


def _half_closed(f: Finding, nf: NamespaceFacts, facts, acc: _Accumulator) -> None:
    ev = f.evidence
    acc.advise(nf, f.rule, T("tune.advice.half_closed", n=ev.get("fin_wait2", f.count),
                             comm=ev.get("comm") or "?", pid=ev.get("pid") or "?"))


HANDLERS: dict[str, Callable] = {
    "orphan-fin-wait-2": _orphan_fw2,
    "sysctl-folklore": _folklore,
    "time-wait-pressure": _time_wait,
    "ephemeral-port-exhaustion": _ports,
    "keepalive-vs-idle-timeout": _keepalive,
    "fin-wait-1-stuck": _unacked,
    "last-ack-stuck": _unacked,
    "orphan-limit": _orphan_limit,
    "conntrack-mismatch": _conntrack,
    "close-wait-leak": _close_wait,
    "half-closed-fin-wait-2": _half_closed,
}
ACT_ON_INFO = frozenset({"sysctl-folklore"})


def _bounds_check(nf: NamespaceFacts, acc: _Accumulator) -> None:
    """Settings already below a floor are raised back to it."""
    for key in ("tcp_fin_timeout", "tcp_keepalive_probes", "tcp_retries2", "tcp_orphan_retries"):
        value = nf.sysctls.get(key)
        low = tb.BOUNDS[key].low
        if not isinstance(value, int) or low is None:
            continue
        if key == "tcp_orphan_retries" and value == 0:
            continue  # 0 means 8
        if value < low:
            acc.propose(nf, key, low, "bounds", T("tune.why.below_floor", value=value, low=low),
                        T("tune.risk.raise", value=low))
