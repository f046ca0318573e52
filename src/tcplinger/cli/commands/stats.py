"""``tcplinger stats``: counts by state per namespace (and per owning
process), orphans and TIME_WAIT next to their kernel limits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...app import watchdb
from ...app.view import take
from ...collect.owners import OwnerPolicy
from ...collect.roots import Roots
from ...collect.snapshot import Scope
from ...export import stats as stats_export
from ...ui import stats as stats_view
from ...ui.table import duration
from ..options import add_db, add_owners, add_scope, owner_policy, scope_from
from ..output import report_problems, report_watch_db, snapshot_meta

NAME = "stats"


@dataclass(frozen=True)
class StatsOptions:
    scope: Scope
    owners: OwnerPolicy
    json: bool
    db: Path | None = None  # a watch database (None: the default one, when fresh)


def register(sub, h) -> None:
    p = sub.add_parser(NAME, help=h("help.stats"),
                       description=h("help.stats.about"))
    add_scope(p, h)
    add_owners(p, h, "help.stats.owners")
    p.add_argument("--json", action="store_true", help=h("help.stats.json"))
    add_db(p, h)
    p.set_defaults(run=lambda args, term, msg: run(
        StatsOptions(scope_from(args), owner_policy(args.owners), args.json, args.db), term, msg))


def run(opts: StatsOptions, term, msg, roots: Roots = Roots()) -> int:
    watchdb.check_given(opts.db)  # an explicit --db that cannot be read: before any work
    view = take(opts.scope, tcp_info=False, roots=roots)
    skipped_owners = view.attach_owners(opts.owners, roots).skipped_files
    doc = stats_export.document(view)
    attached = watchdb.attach_ages(view, opts.db)  # ages from `tcplinger watch`
    report_watch_db(attached, opts.db, term, msg)
    if attached.ok:
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
