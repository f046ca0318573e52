"""The one shape of a rule's finding.

Every rule reasons the same way about a group of rows (one namespace's
sockets in a state, or one process's): measure what the rows show, decide
whether it is worth a finding and how severe, lay out the evidence (the
numbers, JSON-ready), then say it: a title, the facts, the cause, how long
the sockets will live, the fixes, and how sure the rule is. A rule
subclasses :class:`RuleFinding` and fills those steps; :meth:`finding`
runs them in that order and assembles the :class:`~.finding.Finding`.

>>> from tcplinger.diagnose.builder import SocketBuilder, namespace
>>> from tcplinger.diagnose.context import World
>>> from tcplinger.diagnose.finding import Confidence, Severity
>>> from tcplinger.diagnose.metadata import BY_ID
>>> class Listening(RuleFinding):
...     meta = BY_ID["close-wait-leak"]  # any rule's metadata: an example
...     def measure(self):
...         self.n = self.count()
...     def severity(self):
...         return Severity.INFO if self.n else None
...     def evidence(self):
...         return {"listening": self.n}
...     def title(self):
...         return self.T("title_unowned", n=self.n)
...     def confidence(self):
...         return Confidence.HIGH, self.T("conf.high")
>>> b = SocketBuilder()
>>> b.add("LISTEN", "10.0.0.1:80")
>>> world = World([namespace(b.table())])
>>> ctx = world.contexts[0]
>>> f = Listening(ctx, {}, world, 5, ctx.indices(ctx.in_state(10))).finding()
>>> f.rule, f.severity.name, f.count, f.evidence, f.title.key
('close-wait-leak', 'INFO', 1, {'listening': 1}, 'rule.close-wait-leak.title_unowned')
"""

from __future__ import annotations

import numpy as np

from .finding import Confidence, Finding, Severity, Text
from .metadata import RuleMeta


class RuleFinding:
    """One finding of a rule about ``rows`` (row indices of ``ctx``), of
    ``owner`` when the rule groups by process. Subclasses set ``meta`` and
    fill the steps; ``self.ev`` holds the evidence once laid out, for the
    steps after it."""

    meta: RuleMeta

    def __init__(self, ctx, th, world, limit: int, rows: np.ndarray, owner=None):
        self.ctx, self.th, self.world, self.limit = ctx, th, world, limit
        self.rows, self.owner = rows, owner
        self.ev: dict = {}

    def T(self, suffix: str, /, **fields) -> Text:  # noqa: N802 - reads like a message
        """A message of this rule (``rule.<id>.<suffix>``)."""
        return Text(f"rule.{self.meta.id}.{suffix}", fields)

    # ---- the steps, in order ----

    def measure(self) -> None:
        """What the rows show, kept as attributes for the steps after."""

    def severity(self) -> Severity | None:
        """How bad; None: no finding."""
        raise NotImplementedError

    def evidence(self) -> dict:
        raise NotImplementedError

    def title(self) -> Text:
        raise NotImplementedError

    def facts(self) -> list:
        return []

    def cause(self) -> list:
        return []

    def lifetime(self) -> list:
        return []

    def fixes(self) -> list:
        return []

    def confidence(self) -> tuple[Confidence, Text]:
        raise NotImplementedError

    # ---- what the finding is about ----

    def count(self) -> int:
        return int(len(self.rows))

    def owners(self) -> tuple:
        return ()

    def sample(self):
        return self.ctx.sample(self.rows, self.limit)

    # ---- assembly ----

    def finding(self) -> Finding | None:
        self.measure()
        severity = self.severity()
        if severity is None:
            return None
        if getattr(self.world, "brief", False):
            # what the exporter shows of a finding (export/prometheus.py):
            # rule, severity, namespace, count, owners; the title and the
            # confidence are cheap and read no evidence. The evidence, its
            # words and the sample are left out (an evidence a rule makes
            # lazily, such as the other ends, is not made at all).
            confidence, reason = self.confidence()
            return Finding(rule=self.meta.id, severity=severity, netns=self.ctx.netns,
                           count=self.count(), title=self.title(), evidence={}, facts=(),
                           cause=(), lifetime=(), fixes=(), confidence=confidence,
                           confidence_reason=reason, owners=tuple(self.owners()))
        self.ev = self.evidence()
        title, facts, cause = self.title(), self.facts(), self.cause()
        lifetime, fixes = self.lifetime(), self.fixes()
        confidence, reason = self.confidence()
        return Finding(rule=self.meta.id, severity=severity, netns=self.ctx.netns,
                       count=self.count(), title=title, evidence=self.ev, facts=tuple(facts),
                       cause=tuple(cause), lifetime=tuple(lifetime), fixes=tuple(fixes),
                       confidence=confidence, confidence_reason=reason,
                       owners=tuple(self.owners()), sockets=self.sample())

    def findings(self) -> list[Finding]:
        """:meth:`finding` as the list ``evaluate`` returns."""
        found = self.finding()
        return [] if found is None else [found]

    @classmethod
    def per_owner(cls, ctx, th, world, limit: int, rows: np.ndarray) -> list[Finding]:
        """One finding per owning process of ``rows`` (and one for the rows
        whose owner is unknown): the rules that accuse a program."""
        if len(rows) == 0:
            return []
        groups, unowned = ctx.by_owner(rows)
        parts = [(mine, owner) for owner, mine in groups.values()]
        if len(unowned):
            parts.append((unowned, None))
        return [f for mine, owner in parts
                for f in cls(ctx, th, world, limit, mine, owner).findings()]
