"""``tcplinger stats``: counts by state per namespace (and per owning
process), orphans and TIME_WAIT next to their kernel limits."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ...collect import files
from ...collect.snapshot import Roots, Scope
from ...ui import stats as stats_view
from ...ui.table import duration
from ...export import stats as stats_export
from .. import query, watchdb
from ..options import Filters, add_owners, add_scope, scope_from
from ..output import report_problems, snapshot_meta

NAME = "stats"



@dataclass(frozen=True)
class StatsOptions:
    scope: Scope
    owners: bool | None  # None: automatic
    json: bool
    db: object = None  # a watch database (None: the default one, when fresh)


def register(sub) -> None:
    p = sub.add_parser(NAME, help="counts by state per namespace and owner, next to kernel limits",
                       description="Count TCP sockets by state per network namespace and per "
                                   "owning process; orphans and TIME_WAIT next to their limits.")
    add_scope(p)
    add_owners(p, "always count per owning process", per_namespace=False)
    p.add_argument("--json", action="store_true", help="JSON output (docs/json.md)")
    watchdb.add_argument(p)
    p.set_defaults(run=lambda args, term, msg: run(
        StatsOptions(scope_from(args), args.owners, args.json, args.db), term, msg))


def run(opts: StatsOptions, term, msg, roots: Roots = Roots()) -> int:
    view = query.collect(opts.scope, Filters(), tcp_info=False, roots=roots)
    owners = opts.owners
    skipped_owners = None
    if owners is None:
        n = files.open_files(roots.proc)
        owners = n is not None and n < files.AUTO_OWNERS_MAX_FILES
        if not owners:
            skipped_owners = n
    if owners:
        query.attach_owners(view, roots.proc)
    doc = stats_export.document(view)
    if watchdb.attach(view, opts.db, term, msg):  # ages from `tcplinger watch`
        doc["oldest"] = watchdb.oldest(view)
    if opts.json:
        meta = snapshot_meta(view)
        del meta["namespaces"]  # stats has its own, richer, per-namespace entries
        doc.update(meta)
        doc["owners_skipped_open_files"] = skipped_owners
        term.out(json.dumps(doc, indent=1))
    else:
        for line in stats_view.render(doc, msg, skipped_owners=skipped_owners):
            term.out(line)
        for o in doc.get("oldest", ()):
            term.out(msg("watch.oldest", state=o["state"], source=o["source"], netns=o["netns"],
                         age=("≥" if o["at_least"] else "") + duration(o["seconds"])))
    report_problems(view, term, msg)
    return 0
