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


def register(sub) -> None:
    p = sub.add_parser(NAME, help="the daemon: remember ages in state, transitions and trends",
                       description="Sample the host every interval, track each socket's age in "
                                   "state (exact with the state-change tracepoint, else from "
                                   "sampling) and keep counts, limits and transitions in an "
                                   "SQLite database that ls, stats, report, history and top "
                                   "read (docs/watch.md).")
    add_scope(p)
    # at least 0.1 s: faster is a tight loop that fills the WAL (issue 13:
    # --interval 1e-7 took 10 000 samples a second), not a measurement
    p.add_argument("--interval", type=duration_type(minimum=MIN_INTERVAL_S, maximum=DAY),
                   default=10.0, metavar="S",
                   help="seconds between samples (default 10)")
    add_db(p, daemon=True)
    p.add_argument("--no-trace", action="store_true",
                   help="do not use the tracepoint: ages from sampling only")
    p.add_argument("--no-owners", action="store_true",
                   help="do not attribute lingering sockets to processes")
    p.add_argument("--samples", type=count_type(minimum=1, maximum=10**9), default=None,
                   metavar="N",
                   help="stop after N samples (default: run until SIGTERM)")
    p.add_argument("--full-every", type=duration_type(maximum=DAY), default=10.0,
                   metavar="DURATION",
                   help="dump ESTABLISHED sockets this often; the samples between dump the "
                        "other states only (default 10s; 0: every sample)")
    p.add_argument("--keep", type=duration_type(maximum=LONGEST, positive=True),
                   default=30 * 24 * 3600.0, metavar="DURATION",
                   help="how long history is kept (default 30d)")
    p.add_argument("--raw-keep", type=duration_type(maximum=LONGEST, positive=True),
                   default=6 * 3600.0, metavar="DURATION",
                   help="how long every sample is kept before 5-minute roll-ups (default 6h)")
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
