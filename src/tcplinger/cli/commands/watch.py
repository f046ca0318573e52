"""``tcplinger watch``: the daemon that remembers (docs/watch.md). The
loop is app/watcher.py's; this module parses, starts the tracepoint,
turns SIGTERM and SIGINT into the end of the loop after the sample in
progress, and says what it does on stderr."""

from __future__ import annotations

import signal
import sqlite3

from ...app.watchdb import db_path, open_writing
from ...app.watcher import Watcher, WatchOptions
from ...collect import snapshot as snap_mod
from ..errors import CliError, Exit, exit_for
from ..options import DAY, LONGEST, add_db, add_scope, count_type, duration_type, scope_from

NAME = "watch"
#: the shortest sampling interval (docs/watch.md)
MIN_INTERVAL_S = 0.1


def register(sub, h) -> None:
    p = sub.add_parser(NAME, help=h("help.watch"), description=h("help.watch.about"))
    add_scope(p, h)
    # at least 0.1 s: faster is a tight loop that fills the WAL (issue 13:
    # --interval 1e-7 took 10 000 samples a second), not a measurement
    p.add_argument("--interval", type=duration_type(minimum=MIN_INTERVAL_S, maximum=DAY),
                   default=10.0, metavar="S", help=h("help.watch.interval"))
    add_db(p, h, daemon=True)
    p.add_argument("--no-trace", action="store_true",
                   help=h("help.watch.no-trace"))
    p.add_argument("--no-owners", action="store_true",
                   help=h("help.watch.no-owners"))
    p.add_argument("--samples", type=count_type(minimum=1, maximum=10**9), default=None,
                   metavar="N",
                   help=h("help.watch.samples"))
    p.add_argument("--full-every", type=duration_type(maximum=DAY), default=10.0,
                   metavar="DURATION",
                   help=h("help.watch.full-every"))
    p.add_argument("--keep", type=duration_type(maximum=LONGEST, positive=True),
                   default=30 * 24 * 3600.0, metavar="DURATION",
                   help=h("help.watch.keep"))
    p.add_argument("--raw-keep", type=duration_type(maximum=LONGEST, positive=True),
                   default=6 * 3600.0, metavar="DURATION",
                   help=h("help.watch.raw-keep"))
    p.set_defaults(run=lambda args, term, msg: run(WatchOptions(
        scope_from(args), args.interval, db_path(args.db), not args.no_trace, args.samples,
        not args.no_owners, args.raw_keep, args.keep, full_every=args.full_every), term, msg))


def run(opts: WatchOptions, term, msg) -> int:
    # Bad input first, before a line is said or a file made: a namespace,
    # container or pod that does not exist (exit 3), then the database.
    snap_mod.resolve(opts.scope)
    try:
        store = open_writing(opts.db)
    except OSError as exc:
        raise CliError(msg("watch.error.db", path=opts.db, text=exc.strerror or str(exc)),
                       exit_for(exc)) from None
    except sqlite3.Error as exc:  # locked, or refused by SQLite itself: one line
        raise CliError(msg("watch.error.db", path=opts.db, text=str(exc)), Exit.ERROR) from None
    watcher = Watcher(opts, log=term.err)
    stop = watcher.stop

    def on_signal(signum, frame):
        stop.set()
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        watcher.start_trace()
        if watcher.session is None:
            term.err(msg("watch.fallback", reason=watcher.trace_error))
        term.err(msg("watch.start", db=opts.db, interval=opts.interval,
                     source=watcher.age_source))
        n = watcher.run(store)
        lost = watcher.session.lost() if watcher.session is not None else 0
        term.err(msg("watch.stop", n=n, lost=lost))
    finally:
        watcher.close()
        store.close()
        for s, h in old.items():
            signal.signal(s, h)
    return 0
