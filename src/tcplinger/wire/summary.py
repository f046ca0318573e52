"""What one capture showed, gathered while its connections stream past:
counts by conn_state, the findings, and the connections worth showing
(those with a finding, then those still holding a teardown state when the
capture ended), at most ``keep`` of them. Memory is bounded by ``keep``
and the number of findings kept, never by the number of connections.

>>> s = Summary(keep=1)
>>> s.conn_states, s.connections
({}, 0)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..model.states import name as state_name
from ..model.timeline import AGE_BUCKETS, TEARDOWN_STATES, age_bucket
from .findings import WireFinding, findings
from .record import ConnRecord

#: Findings kept per capture (their count is always exact).
FINDINGS_MAX = 10_000
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


@dataclass
class Summary:
    keep: int = 20
    conn_states: dict = field(default_factory=dict)
    connections: int = 0
    orig_bytes: int = 0
    resp_bytes: int = 0
    findings: list = field(default_factory=list)
    finding_counts: Counter = field(default_factory=Counter)
    shown: list = field(default_factory=list)  # (rank, ConnRecord)
    held_at_end: Counter = field(default_factory=Counter)  # state name -> endpoints
    #: state name -> endpoints per AGE_BUCKETS bucket of how long they had
    #: held it when the capture ended (the pages' histograms; bounded)
    held_for: dict = field(default_factory=dict)

    def add(self, rec: ConnRecord) -> list[WireFinding]:
        self.connections += 1
        self.conn_states[rec.conn_state] = self.conn_states.get(rec.conn_state, 0) + 1
        self.orig_bytes += rec.orig_bytes
        self.resp_bytes += rec.resp_bytes
        found = [] if rec.conn_state in ("SF", "S0", "REJ") and _plain(rec) else findings(rec)
        for f in found:
            self.finding_counts[f.rule] += 1
            if len(self.findings) < FINDINGS_MAX:
                self.findings.append(f)
        held = []
        if rec.conn_state not in ("SF", "REJ", "RSTO", "RSTR", "RSTOS0", "RSTRH"):
            for spans in (rec.orig_spans, rec.resp_spans):
                if spans and spans[-1].end_s is None:
                    held.append(spans[-1].state)
                    st = state_name(spans[-1].state)
                    self.held_at_end[st] += 1
                    buckets = self.held_for.setdefault(st, [0] * (len(AGE_BUCKETS) + 1))
                    buckets[age_bucket(rec.capture_end - rec.ts - spans[-1].start_s)] += 1
        rank = 0 if found else 1 if any(s in TEARDOWN_STATES for s in held) else None
        if rank is not None and (len(self.shown) < self.keep  # --show 0 keeps none
                                 or (self.shown and rank < self.shown[-1][0])):
            self.shown.append((rank, rec))
            self.shown.sort(key=lambda x: (x[0], x[1].ts))
            del self.shown[self.keep:]
        return found

    def records(self) -> list[ConnRecord]:
        return [r for _, r in sorted(self.shown, key=lambda x: x[1].ts)]

    def sorted_findings(self) -> list[WireFinding]:
        return sorted(self.findings, key=lambda f: (SEVERITY_ORDER[f.severity], f.ts))

    def to_json(self) -> dict:
        return {"connections": self.connections, "conn_states": dict(sorted(
                    self.conn_states.items(), key=lambda kv: -kv[1])),
                "orig_bytes": self.orig_bytes, "resp_bytes": self.resp_bytes,
                "held_at_end": dict(self.held_at_end),
                "findings": dict(self.finding_counts)}


def _plain(rec: ConnRecord) -> bool:
    """Nothing a finding could be about (the common, finished connection)."""
    o, r = rec.orig_side, rec.resp_side
    return not (o.foreign or r.foreign or o.ka or r.ka or o.zero_t is not None
                or r.zero_t is not None or o.rst_t is not None or r.rst_t is not None
                or o.fin_sent > 1 or r.fin_sent > 1)
