"""``tcplinger tune``: from findings to a reviewed plan of sysctl changes.

Pure: findings and each namespace's current sysctls in, a :class:`TunePlan`
out. The values are the findings' own: every sysctl fix a rule proposes
(``Fix.sysctl``, made by diagnose/sysctl_proposals.py) becomes a
:class:`Proposal` with exactly that value, so ``report`` and ``tune``
propose the same values for the same findings, within the same bounds
(diagnose/sysctl_bounds.py, checked again here). What tune adds depends on
the namespace it would change: whether the setting can be read there,
whether it is host-wide (then only in the host's namespace), whether what
it requires holds (tcp_tw_reuse needs tcp_timestamps = 1), and the risk.

Findings, or parts of findings, that no sysctl fixes become :class:`Advice`
saying so and what can (a CLOSE_WAIT leak is a code bug; TIME_WAIT on a
server has no knob): the only place tune looks at a rule's evidence.

Only WARNING and CRITICAL findings lead to changes; INFO ones are counted
(a threshold override makes one count). sysctl-folklore findings are about
the settings themselves and are handled at any severity. A bounds check
adds proposals that raise settings found below the floors (a
tcp_fin_timeout of 5, one keepalive probe) back to the floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from ..diagnose import sysctl_bounds as sb
from ..diagnose import sysctl_proposals as propose
from ..diagnose.finding import Finding, Severity, SysctlChange, Text, format_value
from ..model.socket import NetnsRef

SysctlValue = int | tuple[int, ...]

__all__ = ["NamespaceFacts", "Proposal", "Advice", "TunePlan", "plan", "format_value",
           "bound_text", "risk_text"]


@dataclass(frozen=True)
class NamespaceFacts:
    """A namespace's current sysctls (KernelContext.sysctls plus
    :data:`sysctl_bounds.EXTRA_PATHS`) and whether it is the host's (where
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
    why: tuple[Text, ...]  # the findings' fix texts (what report prints for the same change)
    risk: Text
    bound: Text
    host_wide: bool = False

    @property
    def sysctl(self) -> str:
        return sb.sysctl_name(self.key)

    @property
    def path(self) -> str:
        return sb.sysctl_path(self.key)


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


def T(key: str, /, **fields) -> Text:  # noqa: N802 - reads like a message
    return Text(key, fields)


def bound_text(key: str) -> Text:
    """The bound of ``key`` in words (catalog ``sysctl.bound.<key>``)."""
    b = sb.BOUNDS[key]
    return T(b.message_key, low=b.low if b.low is not None else "-",
             high=b.high if b.high is not None else "-", sources="; ".join(b.sources))


def risk_text(key: str, value: SysctlValue) -> Text:
    """What changing ``key`` to ``value`` may cost (catalog ``tune.risk.<key>``).

    >>> risk_text("tcp_max_tw_buckets", 1 << 21).fields["mib"]
    '512'
    """
    fields: dict[str, object] = {"value": format_value(value)}
    if key == "tcp_max_tw_buckets":
        fields["mib"] = f"{value * sb.TW_SOCK_BYTES / (1 << 20):.0f}"
    elif key == "tcp_max_orphans":
        fields["mib"] = f"{value * sb.ORPHAN_BYTES / (1 << 20):.0f}"
    elif key == "ip_local_port_range":
        fields["lo"], fields["hi"] = value
    elif key == "tcp_orphan_retries":
        fields["after"] = propose.orphan_budget_s(value)
    return T(f"tune.risk.{key}", **fields)


# ---- the plan ------------------------------------------------------------------

def plan(findings: Sequence[Finding], facts: Sequence[NamespaceFacts]) -> TunePlan:
    """Proposals and advice for ``findings`` over the namespaces in ``facts``.

    >>> from tcplinger.diagnose.finding import Confidence, Fix, FixKind
    >>> ref = NetnsRef(1, "blue")
    >>> fix = Fix(FixKind.SYSCTL, T("why"), SysctlChange("tcp_fin_timeout", 30, 60))
    >>> f = Finding("orphan-fin-wait-2", Severity.WARNING, ref, 5000, T("t"),
    ...             {"orphan_fin_wait2": 5000, "lifetime_s": 60}, (), (), (), (fix,),
    ...             Confidence.HIGH, T("c"))
    >>> p = plan([f], [NamespaceFacts(ref, {"tcp_fin_timeout": 60})])
    >>> [(x.key, x.current, x.proposed, x.rules) for x in p.proposals]
    [('tcp_fin_timeout', 60, 30, ('orphan-fin-wait-2',))]
    """
    by_inode = {f.netns.inode: f for f in facts}
    out = TunePlan()
    acc = _Accumulator(out, by_inode)
    for f in findings:
        nf = by_inode.get(f.netns.inode)
        if nf is None:
            continue
        if f.severity < Severity.WARNING and f.rule not in ACT_ON_INFO:
            out.below_warning += 1
            continue
        out.findings_used.append((f.rule, f.severity.label, f.netns))
        proposed: set[str] = set()
        for fix in f.fixes:
            if fix.sysctl is not None:
                proposed.add(fix.sysctl.key)
                acc.take(nf, fix.sysctl, f.rule, fix.text)
        advise = ADVICE.get(f.rule)
        if advise is not None:
            advise(f, nf, proposed, acc)
    for nf in facts:
        _bounds_check(nf, acc)
    return out


class _Accumulator:
    """Turns changes into proposals for one namespace each, merging the
    same (namespace, key) proposed by several findings."""

    def __init__(self, plan_: TunePlan, by_inode: Mapping[int, NamespaceFacts]):
        self.plan = plan_
        self.by_inode = by_inode
        self._at: dict[tuple[int, str], int] = {}

    def take(self, nf: NamespaceFacts, change: SysctlChange, rule: str, why: Text) -> None:
        """A finding's sysctl fix, checked against the namespace it changes."""
        target = nf
        if change.netns is not None and change.netns.inode != nf.netns.inode:
            target = self.by_inode.get(change.netns.inode)
            if target is None:
                self.advise(nf, rule, T("tune.advice.other_netns", name=change.name,
                                        value=format_value(change.value),
                                        netns=change.netns.label()))
                return
        if change.key in sb.NEVER or change.key not in sb.BOUNDS:
            self.advise(target, rule, T("tune.advice.out_of_bounds", name=change.name,
                                        value=format_value(change.value)))
            return
        if not change.per_netns and not target.host:
            self.advise(target, rule, T("tune.advice.host_only", name=change.name))
            return
        for need, want in change.requires:
            have = target.sysctls.get(need)
            if have is not None and have != want:
                self.advise(target, rule, T("tune.advice.requires", name=change.name,
                                            value=format_value(change.value),
                                            need=sb.sysctl_name(need), want=want, have=have))
                return
        current = target.sysctls.get(change.key)
        if current is None:
            self.advise(target, rule, T("tune.advice.not_readable", name=change.name))
            return
        if current == change.value:
            return
        if sb.problems(change.key, change.value, current, target.sysctls):
            # Never reached by tcplinger's rules (tests/unit/test_rule_sysctl_fixes.py);
            # a guard, so that nothing outside the bounds is ever planned.
            self.advise(target, rule, T("tune.advice.out_of_bounds", name=change.name,
                                        value=format_value(change.value)),
                        bound_text(change.key))
            return
        self.propose(target, change.key, current, change.value, rule, why,
                     risk_text(change.key, change.value), not change.per_netns)

    def propose(self, nf: NamespaceFacts, key: str, current: SysctlValue, proposed: SysctlValue,
                rule: str, why: Text, risk: Text, host_wide: bool = False) -> None:
        slot = (nf.netns.inode, key)
        if slot in self._at:
            i = self._at[slot]
            old = self.plan.proposals[i]
            # The proposals are functions of the current value
            # (sysctl_proposals), so two findings agree; the first wins otherwise.
            if old.proposed == proposed and rule not in old.rules:
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


def _no_lower(nf: NamespaceFacts, rule: str, key: str, usual: int, acc: _Accumulator,
              *more: Text) -> None:
    value = nf.sysctls.get(key)
    if value is None:
        acc.advise(nf, rule, T("tune.advice.not_readable", name=sb.sysctl_name(key)))
        return
    acc.advise(nf, rule, T("tune.advice.no_lower", name=sb.sysctl_name(key), value=value,
                           usual=usual, low=sb.BOUNDS[key].low), *more)


# ---- what no sysctl fixes, per rule ----------------------------------------------
# Each gets the finding, its namespace and the keys its fixes proposed.

def _orphan_fw2(f: Finding, nf: NamespaceFacts, proposed: set, acc: _Accumulator) -> None:
    if "tcp_fin_timeout" not in proposed:
        _no_lower(nf, f.rule, "tcp_fin_timeout", propose.FIN_TIMEOUT, acc,
                  T("tune.remedy.orphan_fw2"))


def _folklore(f: Finding, nf: NamespaceFacts, proposed: set, acc: _Accumulator) -> None:
    item = f.evidence.get("item")
    if item in ("removed_key", "legacy_key"):
        acc.advise(nf, f.rule, T("tune.advice.remove_line", name=f.evidence.get("key"),
                                 path=f.evidence.get("path"), line=f.evidence.get("line")))
    elif item == "fin_timeout_vs_time_wait":
        acc.advise(nf, f.rule, T("tune.advice.fin_vs_tw", fin=f.evidence.get("tcp_fin_timeout")))
    elif item == "keepalive_vs_close_wait":
        acc.advise(nf, f.rule, T("tune.advice.keepalive_vs_cw",
                                 n=f.evidence.get("close_wait_without_keepalive", f.count)))
    elif item == "tw_reuse_incoming":
        acc.advise(nf, f.rule, T("tune.advice.tw_server", n=f.count))


def _time_wait(f: Finding, nf: NamespaceFacts, proposed: set, acc: _Accumulator) -> None:
    ev = f.evidence
    if ev.get("server_side"):
        acc.advise(nf, f.rule, T("tune.advice.tw_server", n=ev["server_side"]))
    buckets = nf.sysctls.get("tcp_max_tw_buckets")
    high = sb.BOUNDS["tcp_max_tw_buckets"].high
    if "tcp_max_tw_buckets" not in proposed and isinstance(buckets, int) and buckets >= high:
        acc.advise(nf, f.rule, T("tune.advice.at_ceiling",
                                 name=sb.sysctl_name("tcp_max_tw_buckets"), value=buckets))


def _ports(f: Finding, nf: NamespaceFacts, proposed: set, acc: _Accumulator) -> None:
    rng = nf.sysctls.get("ip_local_port_range")
    if "ip_local_port_range" not in proposed and rng:
        acc.advise(nf, f.rule, T("tune.advice.ports_wide", lo=rng[0], hi=rng[1]))


def _keepalive(f: Finding, nf: NamespaceFacts, proposed: set, acc: _Accumulator) -> None:
    ev = f.evidence
    if not ev.get("with_so_keepalive"):
        acc.advise(nf, f.rule, T("tune.advice.keepalive_none",
                                 n=ev.get("idle_established", f.count)))
        return
    idle = ev.get("idle_timeout_s") or 0
    floor = sb.BOUNDS["tcp_keepalive_time"].low
    if "tcp_keepalive_time" not in proposed and propose.keepalive_time_for(idle) < floor:
        acc.advise(nf, f.rule, T("tune.advice.keepalive_floor", idle=int(idle), floor=floor))
    if ev.get("without_so_keepalive"):
        acc.advise(nf, f.rule, T("tune.advice.keepalive_none", n=ev["without_so_keepalive"]))


def _unacked(f: Finding, nf: NamespaceFacts, proposed: set, acc: _Accumulator) -> None:
    ev = f.evidence
    if ev.get("orphans") and "tcp_orphan_retries" not in proposed:
        _no_lower(nf, f.rule, "tcp_orphan_retries", propose.ORPHAN_RETRIES, acc)
    if ev.get("owned"):
        acc.advise(nf, f.rule, T("tune.advice.owned_unacked", n=ev["owned"]))


def _orphan_limit(f: Finding, nf: NamespaceFacts, proposed: set, acc: _Accumulator) -> None:
    ev = f.evidence
    if "tcp_orphan_retries" not in proposed:
        _no_lower(nf, f.rule, "tcp_orphan_retries", propose.ORPHAN_RETRIES, acc)
    maximum = ev.get("tcp_max_orphans")
    cap = sb.max_orphans_ceiling(tuple(ev["tcp_mem_pages"]) if ev.get("tcp_mem_pages") else None)
    if "tcp_max_orphans" not in proposed and maximum and cap is not None and cap <= maximum:
        acc.advise(nf, f.rule, T("tune.advice.orphan_mem", max=maximum, cap=cap))


def _close_wait(f: Finding, nf: NamespaceFacts, proposed: set, acc: _Accumulator) -> None:
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


def _half_closed(f: Finding, nf: NamespaceFacts, proposed: set, acc: _Accumulator) -> None:
    ev = f.evidence
    acc.advise(nf, f.rule, T("tune.advice.half_closed", n=ev.get("fin_wait2", f.count),
                             comm=ev.get("comm") or "?", pid=ev.get("pid") or "?"))


ADVICE: dict[str, Callable] = {
    "orphan-fin-wait-2": _orphan_fw2,
    "sysctl-folklore": _folklore,
    "time-wait-pressure": _time_wait,
    "ephemeral-port-exhaustion": _ports,
    "keepalive-vs-idle-timeout": _keepalive,
    "fin-wait-1-stuck": _unacked,
    "last-ack-stuck": _unacked,
    "orphan-limit": _orphan_limit,
    "close-wait-leak": _close_wait,
    "half-closed-fin-wait-2": _half_closed,
}
ACT_ON_INFO = frozenset({"sysctl-folklore"})


def _bounds_check(nf: NamespaceFacts, acc: _Accumulator) -> None:
    """Settings already below a floor are raised back to it."""
    for key in sb.FLOORS_KEPT:
        value = nf.sysctls.get(key)
        low = sb.below_floor(key, value)
        if low is not None:
            acc.propose(nf, key, value, low, "bounds", T("tune.why.below_floor", value=value,
                                                         low=low),
                        T("tune.risk.raise", value=low))
