"""``tcplinger report`` (and plain ``tcplinger``): what is lingering, why,
for how long, and what to change — per namespace, most severe first.
The diagnosis is app/diagnosis.py's; this module parses and renders.

Over several namespaces the text is the overview and the findings grouped
by rule and program (ui/overview.py), so that it grows with the problems,
not with the namespaces; ``--verbose``, and any report of one namespace,
is the full view (ui/report.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...app.diagnosis import DiagnoseOptions, diagnose
from ...collect.roots import Roots
from ...export import findings as findings_export
from ...ui import overview as overview_view
from ...ui import report as report_view
from ..errors import CliError, Exit
from ..options import (DAY, add_diagnose_args, count_type, diagnose_options, duration_type,
                       output_file)
from ..output import generated, report_problems, snapshot_meta, write_page

NAME = "report"


@dataclass(frozen=True)
class ReportOptions:
    diagnose: DiagnoseOptions
    json: bool
    sockets: int  # shown per finding in text
    html: Path | None = None  # also write the self-contained HTML page there
    capture: float | None = None  # seconds of packets to put next to the sockets
    verbose: bool = False  # every namespace's table and every finding, ungrouped


def register(sub, h) -> None:
    p = sub.add_parser(NAME, help=h("help.report"),
                       description=h("help.report.about"))
    add_diagnose_args(p, h)
    p.add_argument("--json", action="store_true", help=h("help.report.json"))
    p.add_argument("-v", "--verbose", action="store_true",
                   help=h("help.report.verbose"))
    p.add_argument("--sockets", type=count_type(maximum=10**6), default=5, metavar="N",
                   help=h("help.report.sockets"))
    p.add_argument("--html", type=output_file, default=None, metavar="FILE",
                   help=h("help.report.html"))
    p.add_argument("--capture", type=duration_type(maximum=DAY, positive=True),
                   metavar="SECONDS",
                   help=h("wire.help.report_capture"))
    p.set_defaults(run=lambda args, term, msg: run(
        ReportOptions(diagnose_options(args), args.json, args.sockets, args.html, args.capture,
                      args.verbose), term, msg))


def run(opts: ReportOptions, term, msg, roots: Roots = Roots()) -> int:
    joined = None
    if opts.capture is not None:
        joined = capture_join(opts, msg, roots)
        d = joined.diagnosis
    else:
        d = diagnose(opts.diagnose, roots)
    if opts.json:
        doc = json_document(d, msg)
        doc["owners_skipped_open_files"] = d.owners_skipped
        if joined is not None:
            from ...ui import wire as wire_view  # with a capture only: timelines, ~10 ms

            doc["wire"] = wire_view.join_json(joined, msg)
        term.out(json.dumps(doc, indent=1))
    else:
        for line in text(d, msg, opts, width=term.width or 100):
            term.out(line)
        if d.owners_skipped:
            term.out(msg("report.owners_skipped", n=d.owners_skipped))
        if joined is not None:
            from ...ui import wire as wire_view

            for line in wire_view.render_join(joined, msg, sockets=opts.sockets):
                term.out(line)
    if opts.html is not None:
        write_html(opts.html, d, opts.diagnose.observe.db, msg)
        term.err(msg("html.written", path=opts.html))
    report_problems(d.view, term, msg)
    return int(Exit.OK)


def text(d, msg, opts: ReportOptions, *, width: int) -> list[str]:
    """The overview and the groups over several namespaces, else (and with
    ``--verbose``) every namespace and every finding."""
    if opts.verbose or len(d.summaries) <= 1:
        return report_view.render(d.summaries, d.findings, msg, width=width,
                                  sockets=opts.sockets)
    return overview_view.render(d.overview, d.groups, msg, namespaces=len(d.summaries),
                                sockets=sum(s["total"] for s in d.summaries), width=width,
                                socket_rows=opts.sockets)


def json_document(d, msg) -> dict:
    doc = findings_export.document(d.findings, d.summaries, msg, thresholds=d.thresholds,
                                   groups=d.groups, overview=d.overview)
    doc.update(snapshot_meta(d.view))
    return doc


def write_html(path: Path, d, db, msg) -> None:
    """The report as one HTML page (ui/html.py), written atomically."""
    import socket

    from ...app.watchdb import state_plots
    from ...ui import html

    doc = json_document(d, msg)
    page = html.render_page(doc, msg, generated=generated(),
                            host=socket.gethostname(), lang=msg.lang,
                            ages=html.age_histograms(d.inputs), history=state_plots(db))
    write_page(path, page, msg)


def capture_join(opts: ReportOptions, msg, roots: Roots):
    """``--capture``: packets first, then the diagnosis, joined by 4-tuple."""
    from ...app.wire_join import JoinOptions, report_with_capture
    from ..wire_output import capture_errors

    with capture_errors(msg):
        return report_with_capture(JoinOptions(opts.diagnose, opts.capture), roots)
