"""A scenario's expected outcome, as checks evaluated on what was recorded.

Pure: each check looks at the result (socket timelines, packets, findings
and the facts the scenario measured) and says whether the expectation
held, what was measured, and why, in catalog messages (``lab.check.*``).

>>> from tcplinger.model.timeline import StateSpan
>>> from tcplinger.lab.merge import SocketTimeline
>>> r = Observed([SocketTimeline("client", ("a", 1), ("b", 2),
...     [StateSpan(1, 0.0, 1.0), StateSpan(5, 1.0, 6.1, orphan=True, minisock=True)])], 10.0)
>>> Held("client", "FIN_WAIT2", 6.0, 6.3).evaluate(r).ok
False
>>> c = Held("client", "FIN_WAIT2", 5.0, 5.3).evaluate(r)
>>> c.ok, c.measured
(True, 5.1)
>>> Never("client", "TIME_WAIT").evaluate(r).ok
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model.states import parse_state
from ..model.units import json_seconds


@dataclass
class Observed:
    """What checks read (lab/result.py fills it)."""

    sockets: list
    horizon_s: float
    packets: list = field(default_factory=list)
    findings: list = field(default_factory=list)
    facts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CheckResult:
    id: str
    ok: bool
    key: str  # message key of the expectation
    fields: dict
    measured: object = None

    def to_json(self, msg) -> dict:
        return {"id": self.id, "ok": self.ok, "text": msg(self.key, **self.fields),
                "measured": self.measured}


def _time_in(sock, state: int, horizon: float) -> tuple[float, bool] | None:
    """(seconds in ``state``, still held at the end) or None if never."""
    spans = [s for s in sock.spans if s.state == state]
    if not spans:
        return None
    total = sum((s.end_s if s.end_s is not None else horizon) - s.start_s for s in spans)
    return total, spans[-1].end_s is None


@dataclass(frozen=True)
class Held:
    """Sockets of ``side`` that enter ``state`` hold it ``lo``..``hi``
    seconds (``still_held=True``: they still hold it when the run ends,
    after at least ``lo``; ``None``: either, still held after at least
    ``held_at_least`` or ended within ``lo``..``hi``, for states that may
    outlast a short run). ``which``: "each" socket that entered it, or "any"."""

    side: str
    state: str
    lo: float
    hi: float | None = None
    still_held: bool | None = False
    which: str = "each"
    held_at_least: float = 0.0

    @property
    def id(self) -> str:
        return f"held:{self.side}:{self.state}"

    def evaluate(self, r: Observed) -> CheckResult:
        st = int(parse_state(self.state))
        seen = [x for x in (_time_in(s, st, r.horizon_s) for s in r.sockets
                            if s.side == self.side) if x is not None]
        fields = {"side": self.side, "state": self.state, "lo": json_seconds(self.lo),
                  "hi": json_seconds(self.hi) if self.hi is not None else "-"}
        key = {True: "lab.check.held_open", False: "lab.check.held",
               None: "lab.check.held_or_open"}[self.still_held]
        if not seen:
            return CheckResult(self.id, False, key, fields, None)

        def ended_within(d):
            return d >= self.lo and (self.hi is None or d <= self.hi)

        def good(d, held):
            if self.still_held is None:
                return d >= self.held_at_least if held else ended_within(d)
            if self.still_held:
                return held and d >= self.lo
            return not held and ended_within(d)
        oks = [good(d, held) for d, held in seen]
        ok = all(oks) if self.which == "each" else any(oks)
        durations = sorted(round(d, 3) for d, _ in seen)
        measured = durations[0] if len(durations) == 1 else durations
        return CheckResult(self.id, ok, key, fields, measured)


@dataclass(frozen=True)
class Never:
    """No socket of ``side`` is ever in ``state``."""

    side: str
    state: str

    @property
    def id(self) -> str:
        return f"never:{self.side}:{self.state}"

    def evaluate(self, r: Observed) -> CheckResult:
        st = int(parse_state(self.state))
        n = sum(1 for s in r.sockets if s.side == self.side and any(x.state == st
                                                                     for x in s.spans))
        return CheckResult(self.id, n == 0, "lab.check.never",
                           {"side": self.side, "state": self.state}, n)


@dataclass(frozen=True)
class Reaches:
    """At least ``n`` sockets of ``side`` enter ``state`` (``exactly``: no more)."""

    side: str
    state: str
    n: int = 1
    exactly: bool = False

    @property
    def id(self) -> str:
        return f"reaches:{self.side}:{self.state}"

    def evaluate(self, r: Observed) -> CheckResult:
        st = int(parse_state(self.state))
        n = sum(1 for s in r.sockets if s.side == self.side and any(x.state == st
                                                                     for x in s.spans))
        ok = n == self.n if self.exactly else n >= self.n
        return CheckResult(self.id, ok, "lab.check.reaches_exactly" if self.exactly
                           else "lab.check.reaches",
                           {"side": self.side, "state": self.state, "n": self.n}, n)


@dataclass(frozen=True)
class Sent:
    """Packets from ``src`` whose flags include every letter of ``flags``
    (tcpdump letters), optionally with a ``tag`` and a ``dropped`` fate:
    between ``least`` and ``most`` of them."""

    src: str
    flags: str
    least: int = 1
    most: int | None = None
    tag: str | None = None
    dropped: bool | None = None

    @property
    def id(self) -> str:
        extra = (":" + self.tag) if self.tag else ""
        fate = {True: ":dropped", False: ":passed", None: ""}[self.dropped]
        return f"sent:{self.src}:{self.flags}{extra}{fate}"

    def evaluate(self, r: Observed) -> CheckResult:
        n = 0
        for p in r.packets:
            if p.src != self.src or not all(c in p.flags for c in self.flags):
                continue
            if self.tag is not None and p.tag != self.tag:
                continue
            if self.dropped is not None and (p.dropped_by is not None) != self.dropped:
                continue
            n += 1
        ok = n >= self.least and (self.most is None or n <= self.most)
        key = "lab.check.sent" + ("_tag" if self.tag else "") + \
            {True: "_dropped", False: "_passed", None: ""}[self.dropped]
        fields = {"src": self.src, "flags": self.flags, "least": self.least,
                  "most": self.most if self.most is not None else "-"}
        if self.tag:
            fields["tag"] = self.tag
        return CheckResult(self.id, ok, key, fields, n)


@dataclass(frozen=True)
class Diagnosed:
    """The diagnosis reports ``rule`` on ``side`` (at the moment ``at``, or
    at any moment); ``present=False``: it does not."""

    rule: str
    side: str | None = None
    at: str | None = None
    present: bool = True

    @property
    def id(self) -> str:
        return f"diagnosed:{self.rule}:{self.side or '*'}:{self.at or '*'}"

    def evaluate(self, r: Observed) -> CheckResult:
        hits = [f for f in r.findings if f.rule == self.rule
                and (self.side is None or f.side == self.side)
                and (self.at is None or f.at == self.at)]
        ok = bool(hits) == self.present
        key = "lab.check." + ("diagnosed" if self.present else "not_diagnosed")
        fields = {"rule": self.rule}
        if self.side is not None:
            key += "_side"
            fields["side"] = self.side
        if self.at is not None:
            key += "_at"
            fields["at"] = self.at
        return CheckResult(self.id, ok, key, fields, sorted({f.severity for f in hits}))


_OPS = {
    "==": lambda a, b: a == b, ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, "<": lambda a, b: a < b,
}


@dataclass(frozen=True)
class Fact:
    """A number the scenario measured (``facts[name]``) compared with a
    value: ``Fact("eaddrnotavail", ">=", 1)``; ``between`` is (lo, hi)."""

    name: str
    op: str
    value: object = None
    between: tuple | None = None

    @property
    def id(self) -> str:
        return f"fact:{self.name}"

    def evaluate(self, r: Observed) -> CheckResult:
        got = r.facts.get(self.name)
        if self.between is not None:
            lo, hi = self.between
            ok = got is not None and lo <= got <= hi
            return CheckResult(self.id, ok, "lab.check.fact_between",
                               {"name": self.name, "lo": json_seconds(lo), "hi": json_seconds(hi)}, got)
        ok = got is not None and _OPS[self.op](got, self.value)
        return CheckResult(self.id, ok, "lab.check.fact",
                           {"name": self.name, "op": self.op, "value": self.value}, got)


def evaluate(checks, observed: Observed) -> list[CheckResult]:
    return [c.evaluate(observed) for c in checks]
