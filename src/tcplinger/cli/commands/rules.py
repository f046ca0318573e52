"""``tcplinger rules``: the rules, from their metadata."""

from __future__ import annotations

import json

from ...diagnose.metadata import RULES
from ...ui.rules import threshold_lines
from ...ui.table import render as render_table

NAME = "rules"


def register(sub, h) -> None:
    p = sub.add_parser(NAME, help=h("help.rules"),
                       description=h("help.rules.about"))
    p.add_argument("--json", action="store_true", help=h("help.rules.json"))
    p.set_defaults(run=lambda args, term, msg: run(args.json, term, msg))


def metadata_json(msg) -> list[dict]:
    return [{
        "id": r.id,
        "summary": msg(r.summary_key),
        "states": [s for s in r.states if s],
        "host_wide": r.host_wide,
        "min_age": (None if r.min_age is None
                    else {"seconds": r.min_age, "from": r.age_from}),
        "thresholds": [{"name": t.name, "default": t.default, "unit": t.unit,
                        "description": msg(r.threshold_key(t.name))} for t in r.thresholds],
        "references": [{"label": ref.label, "url": ref.url} for ref in r.references],
    } for r in RULES]


def min_age_text(rule, msg) -> str:
    """``10s``, ``5s after close()``, or ``-``: how old a socket must be
    before the rule accuses anyone (--threshold RULE.min_age=S)."""
    if rule.min_age is None:
        return "-"
    key = "report.rules.min_age_close" if rule.age_from == "close" else "report.rules.min_age"
    return msg(key, s=f"{rule.min_age:g}")


def run(as_json: bool, term, msg) -> int:
    if as_json:
        term.out(json.dumps({"rules": metadata_json(msg)}, indent=1))
        return 0
    rows = [[r.id, ",".join(s for s in r.states if s) or "-", min_age_text(r, msg),
             msg(r.summary_key)] for r in RULES]
    for line in render_table([msg("report.rules.col.rule"), msg("report.rules.col.states"),
                              msg("report.rules.col.min_age"), msg("report.rules.col.summary")],
                             rows):
        term.out(line)
    term.out("")
    term.out(msg("report.rules.thresholds"))
    for r in RULES:
        for line in threshold_lines(r, msg):
            term.out(line)
    return 0
