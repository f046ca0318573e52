"""``tcplinger explain RULE``: the long explanation, thresholds, references."""

from __future__ import annotations

import textwrap

from ...diagnose.metadata import BY_ID, RULES
from ...ui.rules import threshold_lines
from ..errors import CliError, Exit

NAME = "explain"


def register(sub, h) -> None:
    p = sub.add_parser(NAME, help=h("help.explain"),
                       description=h("help.explain.about"))
    p.add_argument("rule", metavar="RULE", help=h("help.explain.rule"))
    p.set_defaults(run=lambda args, term, msg: run(args.rule, term, msg))


def run(rule: str, term, msg) -> int:
    meta = BY_ID.get(rule)
    if meta is None:
        raise CliError(msg("report.explain.unknown", rule=rule,
                           rules=", ".join(r.id for r in RULES)), Exit.NOT_FOUND)
    term.out(f"{meta.id}: {msg(meta.summary_key)}")
    term.out("")
    width = min(term.width or 100, 100)
    for line in msg(meta.explain_key).strip("\n").split("\n"):
        for out in _wrap(line, width):
            term.out(out)
    term.out("")
    term.out(msg("report.explain.thresholds"))
    for line in threshold_lines(meta, msg):
        term.out(line)
    term.out("")
    term.out(msg("report.explain.references"))
    for ref in meta.references:
        term.out(f"  - {ref.label}: {ref.url}")
    return 0


def _wrap(line: str, width: int) -> list[str]:
    """A paragraph or a "  - item" line wrapped to ``width``."""
    if not line.strip():
        return [""]
    stripped = line.lstrip()
    lead = line[: len(line) - len(stripped)]
    hang = lead + ("  " if stripped.startswith("- ") else "")
    return textwrap.wrap(stripped, width=width, initial_indent=lead, subsequent_indent=hang,
                         break_long_words=False, break_on_hyphens=False) or [line]
