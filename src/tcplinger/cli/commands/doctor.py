"""``tcplinger doctor``: what works on this host, what does not, and what
that costs."""

from __future__ import annotations

import json
from dataclasses import asdict

from ...ui.table import render as render_table

NAME = "doctor"


def register(sub) -> None:
    p = sub.add_parser(NAME, help="what this host and user allow tcplinger to do",
                       description="Probe kernel features (sock_diag, SOCK_DESTROY, tcp_info, "
                                   "tracefs, namespaces, conntrack) and say what each missing "
                                   "one costs.")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(run=lambda args, term, msg: run(args.json, term, msg))


def run(as_json: bool, term, msg) -> int:
    from ...collect import probe  # lazily: probing imports the netlink code

    features = probe.probe_all()
    if as_json:
        term.out(json.dumps({"features": [asdict(f) for f in features]}, indent=1))
        return 0
    rows = [[msg("doctor.ok") if f.ok else msg("doctor.missing"), f.name, f.detail,
             "" if f.ok else f.cost] for f in features]
    for line in render_table([msg("col.status"), msg("col.feature"), msg("col.detail"),
                              msg("col.cost")], rows):
        term.out(line)
    return 0
