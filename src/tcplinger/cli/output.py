"""What every snapshot-based command adds to its output: where the data
came from, and what could not be seen."""

from __future__ import annotations

import os

from .query import View


def snapshot_meta(view: View) -> dict:
    """Metadata keys of the JSON documents (docs/json.md)."""
    return {
        "namespaces": [{"netns": p.ns.netns.to_json(), "source": p.ns.source,
                        "sockets": len(p.table), "taken_at": round(p.ns.taken_at, 3)}
                       for p in view.parts],
        "owners_resolved": view.owners_resolved,
        "skipped": [{"netns": ref.to_json() if ref else None, "reason": why}
                    for ref, why in view.snapshot.skipped],
        "warnings": [w for p in view.parts for w in p.ns.warnings],
    }


def report_problems(view: View, term, msg) -> None:
    """Warnings go to stderr so that stdout stays clean for pipes."""
    for p in view.parts:
        for w in p.ns.warnings:
            term.err(msg("warn.namespace", netns=p.ns.netns.label(), text=w))
    for ref, why in view.snapshot.skipped:
        if ref is None:
            term.err(msg("warn.general", text=why))
        else:
            term.err(msg("warn.skipped", netns=ref.label(), text=why))
    if view.unreadable_pids:
        key = "warn.unreadable_pids" if os.geteuid() == 0 else "warn.unreadable_pids_user"
        term.err(msg(key, n=view.unreadable_pids))
