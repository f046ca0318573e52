"""``tcplinger ls``: every socket in scope, like ``ss -tan``, with age,
owner and namespace."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pathlib import Path

from ...app import watchdb
from ...app.view import Filters, take
from ...collect.owners import OwnerPolicy
from ...collect.roots import Roots
from ...collect.snapshot import Scope
from ...export import socket_array
from ...ui import sockets as sockets_view
from ..options import add_db, add_filters, add_scope, filters_from, scope_from
from ..output import report_problems, report_watch_db, snapshot_meta

NAME = "ls"


@dataclass(frozen=True)
class LsOptions:
    scope: Scope
    filters: Filters
    owners: bool
    json: bool
    db: Path | None = None  # a watch database path (None: the default one, if fresh)


def register(sub, h) -> None:
    p = sub.add_parser(NAME, help=h("help.ls"),
                       description=h("help.ls.about"))
    add_scope(p, h)
    add_filters(p, h)
    p.add_argument("--owners", action="store_true",
                   help=h("help.ls.owners"))
    p.add_argument("--json", action="store_true", help=h("help.ls.json"))
    add_db(p, h)
    p.set_defaults(run=lambda args, term, msg: run(
        LsOptions(scope_from(args), filters_from(args), args.owners, args.json, args.db),
        term, msg))


def run(opts: LsOptions, term, msg, roots: Roots = Roots()) -> int:
    watchdb.check_given(opts.db)  # an explicit --db that cannot be read: before any work
    view = take(opts.scope, opts.filters, roots=roots)
    if opts.owners or opts.filters.pid is not None:
        also = () if opts.filters.pid is None else (opts.filters.pid,)
        view.attach_owners(OwnerPolicy(walk=True), roots, also=also)
    report_watch_db(watchdb.attach_ages(view, opts.db), opts.db, term, msg)
    if opts.json:
        w = term.stdout.write
        w('{"sockets": [')
        array = socket_array.SocketArray(_bytes_writer(term.stdout))
        for part in view.parts:
            array.add(part.table, netns=part.ns.netns, owners=part.owners,
                      ages=part.export_ages())
        w("]")
        for key, value in snapshot_meta(view).items():
            w(", " + json.dumps(key) + ": " + json.dumps(value))
        w("}\n")
    else:
        for line in sockets_view.lines(view, msg, width=term.width):
            term.out(line)
    report_problems(view, term, msg)
    return 0


def _bytes_writer(stream):
    """Write bytes to a text stream: to its binary buffer when it has one
    (the text layer flushed first, so the order holds), else decoded (the
    socket objects are ASCII: json escapes everything else)."""
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        return lambda data: stream.write(bytes(data).decode("ascii"))

    def write(data) -> None:
        stream.flush()
        buffer.write(data)
    return write
