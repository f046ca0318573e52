"""The ``report --json`` document (docs/json.md, "tcplinger report --json").

Each finding carries its numbers in ``evidence`` (documented per rule) and
its sentences already rendered in the chosen language; ``sockets`` has the
same objects as ``ls --json``.
"""

from __future__ import annotations

import json

from ..diagnose.finding import Finding, Severity
from ..diagnose.metadata import BY_ID
from . import jsonout

SCHEMA_VERSION = 1


def finding_json(f: Finding, msg) -> dict:
    sockets = []
    total = 0
    if f.sockets is not None:
        total = f.sockets.total
        sockets = [json.loads(obj) for obj in jsonout.socket_objects(
            f.sockets.table, netns=f.netns, owners=f.sockets.owners, ages=list(f.sockets.ages))]
    return {
        "rule": f.rule,
        "severity": f.severity.label,
        "netns": f.netns.to_json(),
        "count": f.count,
        "owners": [o.to_json() for o in f.owners],
        "evidence": f.evidence,
        "title": f.title.render(msg),
        "facts": [t.render(msg) for t in f.facts],
        "cause": [t.render(msg) for t in f.cause],
        "lifetime": [t.render(msg) for t in f.lifetime],
        "fixes": [x.to_json(msg) for x in f.fixes],
        "confidence": f.confidence.value,
        "confidence_reason": f.confidence_reason.render(msg),
        "sockets": sockets,
        "sockets_total": total,
        "references": [{"label": r.label, "url": r.url} for r in BY_ID[f.rule].references],
    }


def document(findings: list[Finding], summaries: list[dict], msg, *,
             thresholds: dict | None = None) -> dict:
    counts = {s.label: sum(1 for f in findings if f.severity == s) for s in Severity}
    worst = max((f.severity for f in findings), default=None)
    return {
        "schema": SCHEMA_VERSION,
        "lang": msg.lang,
        "worst": worst.label if worst is not None else None,
        "totals": counts,
        "findings": [finding_json(f, msg) for f in findings],
        "summary": summaries,
        "thresholds": thresholds,
    }
