"""The ``report --json`` document (docs/json.md, "tcplinger report --json").

Each finding carries its numbers in ``evidence`` (documented per rule) and
its sentences already rendered in the chosen language; ``sockets`` has the
same objects as ``ls --json``. ``groups`` are the findings grouped across
namespaces by rule and program (diagnose/groups.py), each member pointing
at its findings by their index in ``findings``; ``overview`` is the
report's overview of the namespaces (diagnose/summary.py).
"""

from __future__ import annotations

import json

from ..diagnose.finding import Finding, Severity
from ..diagnose.groups import FindingGroup, member_name
from ..diagnose.metadata import BY_ID
from ..diagnose.summary import Overview
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


def group_json(g: FindingGroup, msg, index: dict[int, int]) -> dict:
    """One group; ``worst`` and the members' ``findings`` are indices into
    the document's ``findings``."""
    program = None
    if g.program is not None:
        program = {"comm": g.program.comm, "command": g.program.command or None,
                   "label": g.program.label}
    return {
        "rule": g.rule,
        "severity": g.severity.label,
        "program": program,
        "title": g.title(msg),
        "kind": g.kind,
        "count": {"total": g.total, "min": g.least, "max": g.most},
        "severities": g.severities(),
        "worst": index[id(g.worst)],
        "members": [{"netns": m.netns.to_json(), "name": member_name(m.netns), "count": m.count,
                     "severity": m.severity.label, "findings": [index[id(f)] for f in m.findings]}
                    for m in g.members],
        "evidence": g.evidence_stats(),
    }


def overview_json(ov: Overview, index: dict[int, int]) -> dict:
    return {
        "namespaces": [{"netns": line.summary["netns"], "label": line.summary["label"],
                        "total": line.summary["total"], "lingering": dict(line.lingering),
                        "worst": None if line.worst is None else index[id(line.worst)]}
                       for line in ov.lines],
        "quiet": {"namespaces": ov.quiet, "sockets": ov.quiet_sockets},
        "missing": [{"what": what, "namespaces": n} for what, n in ov.missing],
    }


def document(findings: list[Finding], summaries: list[dict], msg, *,
             thresholds: dict | None = None, groups: list[FindingGroup] | None = None,
             overview: Overview | None = None) -> dict:
    counts = {s.label: sum(1 for f in findings if f.severity == s) for s in Severity}
    worst = max((f.severity for f in findings), default=None)
    index = {id(f): i for i, f in enumerate(findings)}
    doc = {
        "schema": SCHEMA_VERSION,
        "lang": msg.lang,
        "worst": worst.label if worst is not None else None,
        "totals": counts,
        "findings": [finding_json(f, msg) for f in findings],
        "summary": summaries,
        "thresholds": thresholds,
    }
    if groups is not None:
        doc["groups"] = [group_json(g, msg, index) for g in groups]
    if overview is not None:
        doc["overview"] = overview_json(overview, index)
    return doc
