"""``tcplinger top``: a live full-screen view (Textual) of state counts per
namespace with their trend, the owners with the most lingering sockets,
the oldest sockets with their ages, and what grows. Without a terminal (or
without textual) it prints one screen as plain text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...app import kill as kill_app
from ...app import watchdb
from ...app.live_view import LiveOptions, live_view
from ...collect.snapshot import Scope
from ...ui import top as top_ui
from ..options import add_db, add_scope, duration_type, scope_from

NAME = "top"


@dataclass(frozen=True)
class TopOptions:
    scope: Scope
    db: Path | None
    refresh: float
    once: bool
    history: float = 3600.0

    @property
    def live(self) -> LiveOptions:
        return LiveOptions(self.scope, self.db, self.history)


def register(sub, h) -> None:
    p = sub.add_parser(NAME, help=h("help.top"),
                       description=h("help.top.about"))
    add_scope(p, h)
    add_db(p, h)
    p.add_argument("--refresh", type=duration_type(maximum=3600, positive=True), default=2.0,
                   metavar="S",
                   help=h("help.top.refresh"))
    p.add_argument("--once", action="store_true", help=h("help.top.once"))
    p.set_defaults(run=lambda args, term, msg: run(TopOptions(
        scope_from(args), args.db, args.refresh, args.once), term, msg))


def run(opts: TopOptions, term, msg) -> int:
    watchdb.check_given(opts.db)  # an explicit --db that cannot be read: before any screen
    plain = opts.once or not term.is_tty
    if not plain:
        try:
            import textual  # noqa: F401
        except ImportError:
            plain = True
    if plain:
        model = live_view(opts.live, msg)
        for line in top_ui.render_text(model, width=term.width or 80, msg=msg):
            term.out(line)
        return 0
    app = top_ui.make_app(lambda: live_view(opts.live, msg), msg, refresh=opts.refresh,
                          kill=lambda cookies: kill_cookies(cookies, msg, term.env))
    app.run()
    return 0


def kill_cookies(cookies, msg, env) -> str:
    """End sockets by cookie through app/kill.py, in this process (kill's
    refusals, limits and audit log apply); one line for the status bar."""
    from ...act.audit import AuditError

    try:
        done = kill_app.end_cookies(cookies, env)
    except AuditError as exc:
        return msg("kill.err.audit", error=exc.strerror or str(exc))
    except OSError as exc:  # the status bar shows it; top goes on
        return f"{exc.strerror or exc}"
    summary = done.summary
    failed = sum(v for k, v in summary.items() if k not in ("ended", "already_gone"))
    return msg("top.kill_done", n=summary.get("ended", 0), failed=failed)
