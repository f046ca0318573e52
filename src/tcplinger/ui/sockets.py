"""The ``ls`` table."""

from __future__ import annotations

from ..model.socket import AgeSource, SocketRecord, TimerKind
from ..model.states import BY_STATE, TcpState
from .table import duration, render as render_table


def age_text(rec: SocketRecord) -> str:
    a = rec.age
    if a.seconds is None:
        return "?"
    return ("≥" if a.at_least else "") + duration(a.seconds) + f" ({a.source.value})"


def timer_text(rec: SocketRecord) -> str:
    t = rec.timer
    if t.kind == TimerKind.OFF:
        return "-"
    return f"{t.kind.name.lower()},{t.expires_ms / 1000:.1f}s,{t.retransmits}"


def owner_text(rec: SocketRecord, resolved: bool, msg) -> str:
    if rec.inode == 0:
        return msg("ls.no_owner_tw") if rec.state == TcpState.TIME_WAIT else msg("ls.no_owner_orphan")
    if not resolved:
        return ""
    if not rec.owners:
        return msg("ls.owner_unknown")
    return ",".join(f"{o.comm}/{o.pid}:{o.fd}" for o in rec.owners)


def render(view, msg, *, width: int = 200) -> list[str]:
    multi = len(view.parts) > 1
    headers = [msg("col.state"), msg("col.recvq"), msg("col.sendq"), msg("col.local"),
               msg("col.remote"), msg("col.timer"), msg("col.age"), msg("col.owner")]
    if multi:
        headers.insert(0, msg("col.netns"))
    rows = []
    for part in view.parts:
        label = part.ns.netns.label()
        for rec in part.records(tcp_info=False):
            row = [BY_STATE[TcpState(rec.state)].ss_name if rec.state in BY_STATE else rec.state_name,
                   rec.recv_q, rec.send_q, str(rec.local), str(rec.remote), timer_text(rec),
                   age_text(rec), owner_text(rec, view.owners_resolved, msg)]
            if multi:
                row.insert(0, label)
            rows.append(row)
    align = ("l" if multi else "") + "lrrlllll"
    lines = render_table(headers, rows, align=align, max_width=width)
    lines.append(msg("ls.footer", n=len(rows)) +
                 ("" if view.owners_resolved else " " + msg("ls.hint_owners")))
    return lines
