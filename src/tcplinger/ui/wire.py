"""Text for what a capture showed: the counts, conn_states with Zeek's
meanings, the findings with their packets, the connections still holding
a state, and their timelines (drawn by ui/timeline.py, as the lab's and
the simulator's)."""

from __future__ import annotations

from ..model.states import name as state_name
from ..wire.fixes import ROLES
from . import timeline as tl_view
from .table import render

ZEEK_STATES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH",
               "SHR", "OTH")


def _num(n: int) -> str:
    return f"{n:,}"


def side_name(rec, side: str) -> str:
    """``orig``/``resp`` as the address:port the user knows."""
    h, p = (rec.orig_h, rec.orig_p) if side == "orig" else (rec.resp_h, rec.resp_p)
    return f"[{h}]:{p}" if ":" in h else f"{h}:{p}"


def finding_text(f, rec_names: dict, msg) -> str:
    fields = dict(f.field_dict())
    for k in ROLES:
        if k in fields:
            fields[k] = rec_names.get(fields[k], fields[k])
    return msg("wire.finding." + f.rule, **fields)


def evidence_line(p, ts: float, names: dict, msg) -> str:
    return msg("wire.evidence", t=f"{p.t - ts:+.3f}", sender=names.get(p.sender, p.sender),
               flags=p.flag_text, seq=p.seq, ack=p.ack, length=p.length, ttl=p.ttl,
               tag=msg("wire.tag." + p.tag) if p.tag else "")


def render_finding(f, names: dict, msg, indent: str = "") -> list[str]:
    if not names and " → " in f.conn:
        names = dict(zip(("orig", "resp"), f.conn.split(" → ", 1)))
    lines = [indent + f"[{msg('wire.severity.' + f.severity)}] {finding_text(f, names, msg)}"]
    lines.append(indent + "  " + msg("wire.finding_conn", uid=f.uid, conn=f.conn))
    for p in f.evidence:
        lines.append(indent + "    " + evidence_line(p, f.ts, names, msg))
    return lines


def held_text(spans) -> str:
    if spans and spans[-1].end_s is None:
        return state_name(spans[-1].state)
    return "-"


def render_result(res, msg, *, width: int = 100, timelines: int = 3) -> list[str]:
    c, s = res.counts, res.summary
    span = (c.last_t - c.first_t) if c.first_t is not None else 0.0
    lines = [msg("wire.head", path=str(res.path), records=_num(c.records), tcp=_num(c.tcp),
                 connections=_num(s.connections), span=tl_view.fmt_s(span))]
    for n in res.notices:
        lines.append("  " + msg(n.key, **n.fields))
    if s.conn_states:
        rows = [[st, _num(s.conn_states[st]), msg("wire.state." + st)]
                for st in sorted(s.conn_states, key=lambda k: -s.conn_states[k])]
        lines += ["  " + line for line in render(
            [msg("wire.col.conn_state"), msg("wire.col.count"), msg("wire.col.meaning")],
            rows, align="lrl")]
    if s.held_at_end:
        held = ", ".join(f"{k} {v}" for k, v in sorted(s.held_at_end.items()))
        lines.append("  " + msg("wire.held_at_end", held=held))
    lines.append("")
    found = s.sorted_findings()
    recs = {r.uid: r for r in s.records()}
    if not found:
        lines.append(msg("wire.no_findings"))
    else:
        counts = ", ".join(f"{k} {v}" for k, v in s.finding_counts.most_common())
        lines.append(msg("wire.findings_heading", n=sum(s.finding_counts.values()),
                         counts=counts))
        for f in found[:20]:
            rec = recs.get(f.uid)
            names = {"orig": side_name(rec, "orig"), "resp": side_name(rec, "resp")} \
                if rec else {}
            lines += render_finding(f, names, msg, "  ")
        if len(found) > 20:
            lines.append("  " + msg("wire.more_findings", n=len(found) - 20))
    shown = s.records()
    if shown:
        lines += ["", msg("wire.shown_heading", n=len(shown))]
        rows = [[r.uid, side_name(r, "orig"), side_name(r, "resp"), r.conn_state, r.history,
                 f"{r.orig_pkts}/{r.resp_pkts}", held_text(r.orig_spans),
                 held_text(r.resp_spans), tl_view.fmt_s(r.idle_s())] for r in shown]
        lines += ["  " + line for line in render(
            [msg("wire.col.uid"), msg("wire.col.orig"), msg("wire.col.resp"),
             msg("wire.col.conn_state"), msg("wire.col.history"), msg("wire.col.pkts"),
             msg("wire.col.orig_holds"), msg("wire.col.resp_holds"), msg("wire.col.idle")],
            rows)]
        for r in shown[:timelines]:
            lines.append("")
            names = (side_name(r, "orig"), side_name(r, "resp"))
            lines += tl_view.render_text(r.timeline(names), msg, width=width,
                                         title=msg("wire.timeline_title", uid=r.uid,
                                                   state=r.conn_state, history=r.history))
    return lines


# ---- report --capture ----

def _socket_line(sw, msg) -> list[str]:
    story = msg(sw.key, **sw.field_dict())
    out = [msg("wire.join.socket", local=sw.local, remote=sw.remote, story=story)]
    if sw.uid is not None:
        out.append("  " + msg("wire.join.conn", uid=sw.uid, conn_state=sw.conn_state,
                              history=sw.history, side=sw.side, held=sw.held or "-"))
    return out


def render_join(joined, msg, sockets: int = 5) -> list[str]:
    """After the report: each finding's sockets next to their packets, then
    the findings the packets alone support."""
    lines = []
    for cap in joined.captures:
        lines += ["", msg("wire.join.heading", seconds=joined.seconds,
                          packets=f"{cap.result.counts.tcp:,}", netns=cap.label)]
        for i, f in enumerate(joined.diagnosis.findings):
            rows = joined.sockets.get(i)
            if not rows or f.netns.inode != cap.inode:
                continue
            lines.append("  " + msg("wire.join.finding", title=f.title.render(msg)))
            for sw in rows[:sockets]:
                lines += ["    " + x for x in _socket_line(sw, msg)]
        found = cap.result.summary.sorted_findings()
        if found:
            lines.append("  " + msg("wire.join.packet_findings"))
            for f in found[:10]:
                lines += render_finding(f, {}, msg, "    ")
    return lines


def join_json(joined, msg) -> dict:
    return {"seconds": joined.seconds,
            "captures": [{"netns_inode": c.inode, "netns": c.label,
                          "packets": c.result.counts.tcp, "captured": c.captured,
                          "summary": c.result.summary.to_json(),
                          "findings": [{**f.to_json(), "text": finding_text(f, {}, msg)}
                                       for f in c.result.summary.sorted_findings()]}
                         for c in joined.captures],
            "sockets": [{"finding": i, "rule": joined.diagnosis.findings[i].rule,
                         "sockets": [{**s.to_json(), "text": msg(s.key, **s.field_dict())}
                                     for s in rows]}
                        for i, rows in sorted(joined.sockets.items())]}
