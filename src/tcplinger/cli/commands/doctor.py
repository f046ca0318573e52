"""``tcplinger doctor``: what works on this host, what does not, and what
that costs."""

from __future__ import annotations

import json

from ...ui.table import render as render_table
from ..output import strerror_text

NAME = "doctor"


def register(sub, h) -> None:
    p = sub.add_parser(NAME, help=h("help.doctor"),
                       description=h("help.doctor.about"))
    p.add_argument("--json", action="store_true", help=h("help.doctor.json"))
    p.set_defaults(run=lambda args, term, msg: run(args.json, term, msg))


def run(as_json: bool, term, msg) -> int:
    from ...collect import features  # lazily: probing imports the netlink code

    found = features.probe_all()
    if as_json:
        term.out(json.dumps({"features": [f.to_json() for f in found]}, indent=1))
        return 0
    rows = [[msg("doctor.ok") if f.ok else msg("doctor.missing"), f.name, detail(f, msg),
             "" if f.ok else cost(f, msg)] for f in found]
    for line in render_table([msg("col.status"), msg("col.feature"), msg("col.detail"),
                              msg("col.cost")], rows):
        term.out(line)
    return 0


def detail(feature, msg) -> str:
    """The feature's detail from the catalog; the probe's English text when
    it carries no reason (a Feature built elsewhere)."""
    if not feature.reason:
        return feature.detail
    fields = dict(feature.fields)
    if isinstance(fields.get("error"), str):  # strerror() of a failed call
        fields["error"] = strerror_text(fields["error"], msg)
    return msg(f"doctor.detail.{feature.reason}", **fields)


def cost(feature, msg) -> str:
    """What the missing feature costs, from the catalog ("" when nothing)."""
    if not feature.cost or not feature.key:
        return feature.cost
    return msg(f"doctor.cost.{feature.key}")
