"""Findings grouped across namespaces: one rule, one program, many pods.

On a node with 150 pods running the same image, the rules find the same
thing 150 times ("python3 holds 5 sockets in CLOSE_WAIT", once per pod).
A group is those findings together: the rule, the program (the first
owner's command line when the finding has one, else its comm; no owner is
a program of its own), and its members, one per namespace, with the
numbers that tell them apart (totals, the least and most per member) and
the worst member, whose finding is the one shown in full.

This is a pure step over the engine's findings (it reads nothing and
changes none of them), so it lives next to the engine rather than in
app/: every front end gets the same groups from app/diagnosis.py, and the
findings stay as they are for ``--verbose``, JSON and the exporter.

>>> from tcplinger.diagnose.finding import Finding, OwnerRef, Severity, Text, Confidence
>>> from tcplinger.model.socket import NetnsRef
>>> def f(ns, n, sev=Severity.INFO, comm="python3"):
...     return Finding("close-wait-leak", sev, NetnsRef(ns, f"pod{ns}"), n, Text("t"),
...                    {"close_wait": n}, (), (), (), (), Confidence.LOW, Text("r"),
...                    owners=(OwnerRef(ns, comm),))
>>> gs = group_findings([f(1, 5), f(2, 7, Severity.WARNING), f(3, 5), f(4, 1, comm="java")])
>>> [(g.rule, g.program.label, len(g.members)) for g in gs]
[('close-wait-leak', 'python3', 3), ('close-wait-leak', 'java', 1)]
>>> g = gs[0]
>>> g.severity.name, g.total, g.least, g.most, g.worst.netns.inode, g.indices
('WARNING', 17, 5, 7, 2, (0, 1, 2))
>>> g.evidence_stats()["close_wait"]
{'total': 17, 'min': 5, 'max': 7, 'members': 3}
>>> from tcplinger.i18n import Messages
>>> g.kind, g.title(Messages("en"))
('namespaces', 'python3 holds 5 to 7 CLOSE_WAIT in each of 3 namespaces (17 in all)')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..model.socket import NetnsRef
from .finding import Finding, Severity
from .metadata import BY_ID


@dataclass(frozen=True)
class Program:
    """What a group's findings accuse: ``comm`` and, when the finding has
    it, the command line (shortened as the rules show it)."""

    comm: str
    command: str = ""

    @property
    def label(self) -> str:
        """The command line when it says more than the comm.

        >>> Program("python3", "python3 app.py").label, Program("nginx", "nginx").label
        ('python3 app.py', 'nginx')
        """
        return self.command if self.command and self.command != self.comm else self.comm


def program_of(f: Finding) -> Program | None:
    """The program a finding is about: its first owner (the one holding
    the most sockets), None when no process is named."""
    if not f.owners:
        return None
    return Program(f.owners[0].comm)


@dataclass(frozen=True)
class Member:
    """One namespace of a group: its findings there (usually one), their
    positions in the engine's list, and what they count together."""

    netns: NetnsRef
    findings: tuple[Finding, ...]
    indices: tuple[int, ...]

    @property
    def count(self) -> int:
        return sum(f.count for f in self.findings)

    @property
    def severity(self) -> Severity:
        return max(f.severity for f in self.findings)


@dataclass(frozen=True)
class FindingGroup:
    rule: str
    program: Program | None
    members: tuple[Member, ...]  # in the engine's order of their first finding

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for m in self.members for f in m.findings)

    @property
    def indices(self) -> tuple[int, ...]:
        return tuple(sorted(i for m in self.members for i in m.indices))

    @property
    def severity(self) -> Severity:
        return max(m.severity for m in self.members)

    @property
    def worst(self) -> Finding:
        """The member finding shown in full: most severe, then largest;
        the first such in the engine's order."""
        fs = self.findings
        return fs[max(range(len(fs)), key=lambda i: (int(fs[i].severity), fs[i].count, -i))]

    @property
    def total(self) -> int:
        return sum(m.count for m in self.members)

    @property
    def least(self) -> int:
        return min(m.count for m in self.members)

    @property
    def most(self) -> int:
        return max(m.count for m in self.members)

    @property
    def kind(self) -> str:
        """What the members are: ``pods`` when every one is a Kubernetes
        pod, ``containers`` when every one is a container, else
        ``namespaces`` (the last part of a catalog key)."""
        refs = [m.netns for m in self.members]
        if all(r.workload is not None and r.workload.pod is not None for r in refs):
            return "pods"
        if all(r.container for r in refs):
            return "containers"
        return "namespaces"

    def title(self, msg) -> str:
        """The headline: "python3 app.py holds 5 CLOSE_WAIT in each of 150
        pods (750 in all)"; what is counted is the rule's states (the rule
        id for rules about limits)."""
        states = [s for s in BY_ID[self.rule].states if s]
        per = str(self.least) if self.least == self.most else \
            msg("report.group.range", least=self.least, most=self.most)
        fields = dict(per=per, what="/".join(states) or self.rule, n=len(self.members),
                      total=self.total, kind=msg(f"report.group.kind.{self.kind}"))
        if self.program is None:
            return msg("report.group.title", **fields)
        return msg("report.group.title_held", program=self.program.label, **fields)

    def severities(self) -> dict[str, int]:
        """Members per severity (a member counts at its worst)."""
        out = {s.label: 0 for s in Severity}
        for m in self.members:
            out[m.severity.label] += 1
        return out

    def evidence_stats(self) -> dict[str, dict]:
        """Sum, least and most of every number in the members' evidence
        (top level, and one level into objects as ``outer.inner``), per
        member finding; ``members`` is how many findings had the number.
        The sum means something for counts; for ages, ratios and settings
        read the least and the most. Identifiers (``pid``) are left out."""
        values: dict[str, list] = {}
        for f in self.findings:
            for key, value in _numbers(f.evidence):
                values.setdefault(key, []).append(value)
        return {k: {"total": _round(sum(v)), "min": min(v), "max": max(v), "members": len(v)}
                for k, v in values.items()}


#: Evidence numbers that name something rather than count it.
IDENTIFIERS = frozenset({"pid"})


def _numbers(evidence: dict, prefix: str = "", depth: int = 0):
    for key, value in evidence.items():
        if isinstance(value, bool) or value is None or key in IDENTIFIERS:
            continue
        if isinstance(value, (int, float)):
            yield prefix + key, value
        elif isinstance(value, dict) and depth == 0:
            yield from _numbers(value, f"{key}.", 1)


def _round(x):
    return round(x, 6) if isinstance(x, float) else x


def member_name(ref: NetnsRef) -> str:
    """A member's short name: the pod, else the container, else the
    namespace's label.

    >>> from tcplinger.model.workload import Workload
    >>> member_name(NetnsRef(1, "x", "pod:shop/a/app", Workload("containerd", "ab", "app",
    ...             pod_namespace="shop", pod_name="a")))
    'shop/a'
    >>> member_name(NetnsRef(2, None, "podman:web")), member_name(NetnsRef(3))
    ('podman:web', 'net:[3]')
    """
    w = ref.workload
    if w is not None and w.pod is not None:
        return w.pod
    return ref.container or ref.label()


def group_findings(findings: Sequence[Finding]) -> list[FindingGroup]:
    """Findings with the same rule and program, across namespaces, as
    groups; in the order of each group's first finding (the engine sorts
    by severity, then rule, then count, so groups come most severe first)."""
    order: list[tuple] = []
    members: dict[tuple, dict[int, list[tuple[int, Finding]]]] = {}
    refs: dict[tuple, dict[int, NetnsRef]] = {}
    for i, f in enumerate(findings):
        key = (f.rule, program_of(f))
        if key not in members:
            order.append(key)
            members[key], refs[key] = {}, {}
        members[key].setdefault(f.netns.inode, []).append((i, f))
        refs[key].setdefault(f.netns.inode, f.netns)
    out = []
    for key in order:
        ms = tuple(Member(refs[key][ino], tuple(f for _, f in pairs), tuple(i for i, _ in pairs))
                   for ino, pairs in members[key].items())
        out.append(FindingGroup(key[0], key[1], ms))
    return out
