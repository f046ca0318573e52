"""What every snapshot-based command adds to its output: where the data
came from, and what could not be seen."""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from ..model.notice import notice_text

if TYPE_CHECKING:
    from ..app.view import View

#: errno values whose strerror the catalogs hold ("errno.<NAME>")
ERRNO_NAMES = ("EPERM", "EACCES", "ENOENT", "ESRCH", "EOPNOTSUPP", "EPROTONOSUPPORT",
               "EBUSY", "EINVAL", "ENOMEM", "ENOSPC", "EROFS", "EISDIR", "ENOTDIR",
               "ENAMETOOLONG")
_BY_STRERROR = {os.strerror(getattr(errno, n)): n for n in ERRNO_NAMES}


def strerror_text(text: str, msg) -> str:
    """The C library's English strerror() text in the catalog's language
    (any other text as it is).

    >>> from tcplinger.i18n import Messages
    >>> strerror_text(os.strerror(errno.EACCES), Messages("zh")), strerror_text("x", Messages("zh"))
    ('权限不足', 'x')
    """
    name = _BY_STRERROR.get(text)
    return msg(f"errno.{name}") if name else text


def snapshot_meta(view: View) -> dict:
    """Metadata keys of the JSON documents (docs/json.md)."""
    return {
        "namespaces": [{"netns": p.ns.netns.to_json(),
                        "workload": p.ns.netns.workload.to_json() if p.ns.netns.workload
                        else None, "source": p.ns.source,
                        "sockets": len(p.table), "taken_at": round(p.ns.taken_at, 3)}
                       for p in view.parts],
        "owners_resolved": view.owners_resolved,
        "skipped": [{"netns": ref.to_json() if ref else None, "reason": str(why)}
                    for ref, why in view.snapshot.skipped],
        "warnings": [str(w) for p in view.parts for w in p.ns.warnings],
        # the same warnings and skip reasons as stable keys + fields (added
        # beside the English texts above, which stay as they were)
        "notices": [{"netns": p.ns.netns.to_json(), **_notice_json(w)}
                    for p in view.parts for w in p.ns.warnings]
        + [{"netns": ref.to_json() if ref else None, **_notice_json(why)}
           for ref, why in view.snapshot.skipped],
    }


def _notice_json(text: str) -> dict:
    return {"key": getattr(text, "key", None), "fields": dict(getattr(text, "fields", {})),
            "text": str(text)}


def report_problems(view: View, term, msg) -> None:
    """Warnings go to stderr so that stdout stays clean for pipes."""
    for p in view.parts:
        for w in p.ns.warnings:
            term.err(msg("warn.namespace", netns=p.ns.netns.label(), text=notice_text(w, msg)))
    for ref, why in view.snapshot.skipped:
        if ref is None:
            term.err(msg("warn.general", text=notice_text(why, msg)))
        else:
            term.err(msg("warn.skipped", netns=ref.label(), text=notice_text(why, msg)))
    if view.unreadable_pids:
        key = "warn.unreadable_pids" if os.geteuid() == 0 else "warn.unreadable_pids_user"
        term.err(msg(key, n=view.unreadable_pids))


def report_watch_db(attached, given, term, msg) -> None:
    """Why a watch database named with ``--db`` gave no ages (a missing or
    unreadable default one is silent: most hosts run no daemon)."""
    if given is None or attached.ok:
        return
    if attached.error is not None:
        term.err(f"warning: cannot read watch database {attached.path}: {attached.error}")
    elif attached.stale:
        ago = "never" if attached.ago is None else f"{attached.ago:.0f}s"
        term.err(msg("watch.stale", path=attached.path, ago=ago))


def write_page(path, page: str, msg) -> None:
    """An HTML page (``--html``) written whole or not at all by the one
    atomic writer; a failure is one line and the errno's exit code."""
    from ..fsutil import atomic_write
    from .errors import CliError, exit_for

    try:
        atomic_write(path, page.encode("utf-8"))
    except OSError as exc:
        raise CliError(msg("html.unwritable", path=path, reason=exc.strerror or str(exc)),
                       exit_for(exc)) from None


def generated() -> str:
    """When a page was made, as its head says it (local time and zone)."""
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S %Z")
