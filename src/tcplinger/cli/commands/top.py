"""``tcplinger top``: a live full-screen view (Textual) of state counts per
namespace with their trend, the owners with the most lingering sockets,
the oldest sockets with their ages, and what grows. Without a terminal (or
without textual) it prints one screen as plain text."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...collect.snapshot import Scope
from ...model.states import TcpState, name as state_name
from ...track import trends
from ...track.store import Store
from ...ui import top as top_ui
from .. import query, watchdb
from ..options import Filters, add_scope, positive_float, scope_from

NAME = "top"
LINGERING = frozenset({TcpState.CLOSE_WAIT, TcpState.FIN_WAIT1, TcpState.FIN_WAIT2,
                       TcpState.LAST_ACK, TcpState.CLOSING, TcpState.TIME_WAIT})


@dataclass(frozen=True)
class TopOptions:
    scope: Scope
    db: Path | None
    refresh: float
    once: bool
    history: float = 3600.0


def register(sub) -> None:
    p = sub.add_parser(NAME, help="live full-screen view: states, owners, oldest sockets, growth",
                       description="A live view: counts per state and namespace with their trend "
                                   "(from `tcplinger watch`), the owners with the most lingering "
                                   "sockets, the oldest sockets with their ages, and what grows. "
                                   "Keys: q quit, s sort, f/o/n filter by state/owner/netns, c clear, "
                                   "k end the sockets shown (after y). Without a terminal: one "
                                   "screen as text.")
    add_scope(p)
    watchdb.add_argument(p)
    p.add_argument("--refresh", type=positive_float, default=2.0, metavar="S",
                   help="seconds between refreshes (default 2)")
    p.add_argument("--once", action="store_true", help="print one screen as text and exit")
    p.set_defaults(run=lambda args, term, msg: run(TopOptions(
        scope_from(args), args.db, args.refresh, args.once), term, msg))


def build_model(opts: TopOptions, msg, limit: int = 50) -> top_ui.TopModel:
    view = query.collect(opts.scope, Filters(), want_owners=False)
    tracked = watchdb.attach(view, opts.db)
    history: dict = {}
    growth: list[str] = []
    path = watchdb.path_of(opts.db)
    note = None
    if path.exists():
        try:
            store = Store(path, readonly=True)
            try:
                now = time.time()
                for (ns, st), (t, v) in store.counts_by_netns_state(now - opts.history).items():
                    history[(ns, st)] = v[-60:].tolist()
                by_so = store.series(now - opts.history, by="state_owner")
                for f in trends.growing({k: v for k, v in by_so.items()
                                         if not k.endswith(" ") and not k.endswith(" -")},
                                        owners=store.owner_info())[:3]:
                    text = f"{state_name(f.state)} of {f.owner} {f.growth.per_minute:+.3g}/min"
                    if f.ttl is not None:
                        from ...ui.table import duration
                        text += f"; {f.limit_name} {f.limit:g} in ~{duration(f.ttl)}"
                    growth.append(text)
            finally:
                store.db.close()
        except Exception:  # noqa: BLE001 - a damaged or locked database must not stop top
            note = msg("top.no_db")
    else:
        note = msg("top.no_db")
    states, owners_count, oldest = [], {}, []
    source = "trace/first_seen" if tracked else "timer/last_recv"
    lingering = [int(s) for s in LINGERING]
    for part in view.parts:
        label = part.ns.netns.label()
        rows = part.table.rows
        for st, n in sorted(part.table.state_counts().items()):
            states.append((label, state_name(st), n,
                           tuple(history.get((part.ns.netns.inode, st), ()))))
        mask = np.isin(rows["state"], lingering)
        idx = np.flatnonzero(mask)
        if part.tracked is not None:
            secs = part.tracked.seconds
            sources = part.tracked.source
            low = part.tracked.at_least
        else:
            exact, bound = part.age_arrays()
            secs = np.where(np.isnan(exact), bound, exact)
            sources = np.where(np.isnan(exact), np.where(np.isnan(bound), 0, 2), 1)
            low = np.isnan(exact) & ~np.isnan(bound)
        order = idx[np.argsort(-np.nan_to_num(secs[idx], nan=-1.0))][:limit]
        from ...track.tracker import SOURCE_CODES
        for i in order.tolist():
            rec = part.table.record(i)
            oldest.append(top_ui.OldSocket(
                None if np.isnan(secs[i]) else float(secs[i]), bool(low[i]),
                SOURCE_CODES[int(sources[i])].value, state_name(rec.state), str(rec.local),
                str(rec.remote), label, "-" if rec.inode == 0 else f"inode {rec.inode}",
                rec.cookie))
    if path.exists():
        try:
            store = Store(path, readonly=True)
            try:
                t = store.db.execute("SELECT MAX(t) FROM counts").fetchone()[0]
                for owner, st, n in store.db.execute(
                        "SELECT owner, state, SUM(n) FROM counts WHERE t = ? AND owner NOT IN"
                        " ('', '-') GROUP BY owner, state ORDER BY 3 DESC LIMIT 20", (t,)):
                    owners_count[(owner, state_name(st))] = int(n)
            finally:
                store.db.close()
        except Exception:  # noqa: BLE001
            pass
    return top_ui.TopModel(view.total, len(view.parts), source, tuple(states),
                           tuple((o, s, n) for (o, s), n in owners_count.items()),
                           tuple(oldest), tuple(growth), note)


def run(opts: TopOptions, term, msg) -> int:
    plain = opts.once or not term.is_tty
    if not plain:
        try:
            import textual  # noqa: F401
        except ImportError:
            plain = True
    if plain:
        model = build_model(opts, msg)
        for line in top_ui.render_text(model, width=term.width or 80, msg=msg):
            term.out(line)
        return 0
    app = top_ui.make_app(lambda: build_model(opts, msg), msg, refresh=opts.refresh,
                          kill=lambda cookies: kill_cookies(cookies, msg))
    app.run()
    return 0


def kill_cookies(cookies, msg) -> str:
    """End sockets by cookie with ``tcplinger kill`` itself (its refusals,
    limits and audit log apply): cookies are unique on the host, so
    ``--all-netns`` finds each in its own namespace."""
    import json
    import subprocess
    import sys
    argv = [sys.executable, "-m", "tcplinger", "kill", "--all-netns", "--yes", "--json",
            "--max", str(len(cookies))]
    for c in cookies:
        argv += ["--cookie", str(c)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    try:
        summary = json.loads(done.stdout)["summary"]
    except (ValueError, KeyError):
        return (done.stderr.strip().splitlines() or [f"kill exited {done.returncode}"])[-1]
    failed = sum(v for k, v in summary.items() if k not in ("ended", "already_gone"))
    return msg("top.kill_done", n=summary.get("ended", 0), failed=failed)
