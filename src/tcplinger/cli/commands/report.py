"""``tcplinger report`` (and plain ``tcplinger``): what is lingering, why,
for how long, and what to change — per namespace, most severe first.
The diagnosis is app/diagnosis.py's; this module parses and renders."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ...app.diagnosis import DiagnoseOptions, diagnose
from ...collect.roots import Roots
from ...diagnose.summary import namespace_summary
from ...export import findings as findings_export
from ...ui import report as report_view
from ..errors import Exit
from ..options import add_diagnose_args, diagnose_options
from ..output import report_problems, snapshot_meta

NAME = "report"


@dataclass(frozen=True)
class ReportOptions:
    diagnose: DiagnoseOptions
    json: bool
    sockets: int  # shown per finding in text


def register(sub) -> None:
    p = sub.add_parser(NAME, help="explain lingering connections: cause, evidence, lifetime, fix "
                                  "(the default command)",
                       description="Diagnose lingering TCP connections: a state summary per "
                                   "namespace next to the kernel limits, then findings, most "
                                   "severe first, each with evidence, cause, lifetime and fixes.")
    add_diagnose_args(p)
    p.add_argument("--json", action="store_true", help="JSON output (docs/json.md)")
    p.add_argument("--sockets", type=int, default=5, metavar="N",
                   help="sockets shown per finding in text output (default 5)")
    p.set_defaults(run=lambda args, term, msg: run(
        ReportOptions(diagnose_options(args), args.json, max(args.sockets, 0)), term, msg))


def run(opts: ReportOptions, term, msg, roots: Roots = Roots()) -> int:
    d = diagnose(opts.diagnose, roots)
    summaries = [namespace_summary(i) for i in d.inputs]
    if opts.json:
        doc = findings_export.document(d.findings, summaries, msg, thresholds=d.thresholds)
        doc.update(snapshot_meta(d.view))
        doc["owners_skipped_open_files"] = d.owners_skipped
        term.out(json.dumps(doc, indent=1))
    else:
        for line in report_view.render(summaries, d.findings, msg, width=term.width or 100,
                                       sockets=opts.sockets):
            term.out(line)
        if d.owners_skipped:
            term.out(msg("report.owners_skipped", n=d.owners_skipped))
    report_problems(d.view, term, msg)
    return int(Exit.OK)
