"""Text rendering of ``tcplinger report``: the state summary per namespace,
then each finding (title, evidence, cause, lifetime, fixes, confidence,
a few sockets), most severe first."""

from __future__ import annotations

import textwrap

from ..diagnose.finding import Finding, FixKind, Severity
from ..model.notice import notice_text
from ..model.states import BY_STATE, TcpState
from .sockets import age_text, owner_text, timer_text
from .table import render as render_table

WRAP = 100  # sentences wrap here even on wide terminals: they are prose
SEVERITY_KEYS = {Severity.INFO: "report.severity.info", Severity.WARNING: "report.severity.warning",
                 Severity.CRITICAL: "report.severity.critical"}
FIX_KEYS = {FixKind.APP: "report.fix.app", FixKind.SYSCTL: "report.fix.sysctl",
            FixKind.SOCKET: "report.fix.socket", FixKind.OPS: "report.fix.ops"}


def wrap(text: str, indent: str, width: int, first: str | None = None) -> list[str]:
    first = indent if first is None else first
    return textwrap.wrap(text, width=max(width, 40), initial_indent=first,
                         subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False) or [first.rstrip()]


def workload_line(w: dict, msg) -> str:
    """What runs in the namespace: runtime, container or pod, image."""
    parts = [msg("report.workload.runtime", runtime=w["runtime"])]
    if w["pod"]:
        parts.append(msg("report.workload.pod", pod=f"{w['pod']['namespace']}/{w['pod']['name']}"))
    if w["name"]:
        parts.append(msg("report.workload.container", name=w["name"]))
    if w["containers"]:
        parts.append(msg("report.workload.containers", names=", ".join(w["containers"])))
    if w["image"]:
        parts.append(msg("report.workload.image", image=w["image"]))
    if w["id"]:
        parts.append(msg("report.workload.id", id=w["id"]))
    return msg("report.workload.sep").join(parts)


def render_summary(summary: dict, msg) -> list[str]:
    inode = summary["netns"]["inode"]
    if summary["netns"]["name"] or summary["netns"]["container"]:
        lines = [msg("report.header", netns=summary["label"], inode=inode, total=summary["total"])]
    else:
        lines = [msg("report.header_unnamed", inode=inode, total=summary["total"])]
    if summary.get("workload"):
        lines.append("  " + workload_line(summary["workload"], msg))
    rows = []
    for s in summary["states"]:
        limit = "" if not s["limit"] or s["limit_value"] is None else f"{s['limit']} {s['limit_value']}"
        rows.append([s["state"], s["count"], limit])
    if rows:
        lines += ["  " + line for line in render_table(
            [msg("report.col.state"), msg("report.col.count"), msg("report.col.limit")], rows,
            align="lrl")]
    lines.append("  " + msg("report.orphans", orphans=summary["orphans_full"],
                            sockstat=_dash(summary["sockstat_orphans"]),
                            max=_dash(summary["tcp_max_orphans"]), tw=summary["timewait_type"],
                            buckets=_dash(summary["tcp_max_tw_buckets"])))
    if summary["conntrack"]:
        lines.append("  " + msg("report.conntrack", **summary["conntrack"]))
    for what in summary["missing"]:
        lines.append("  " + msg("report.missing", what=notice_text(what, msg)))
    return lines


def _dash(value) -> str:
    return "-" if value is None else str(value)


def render_finding(f: Finding, msg, *, width: int = WRAP, sockets: int = 5) -> list[str]:
    width = min(width, WRAP)
    sev = msg(SEVERITY_KEYS[f.severity])
    lines = wrap(f"[{sev}] " + f.title.render(msg), "    ", width, first="")
    lines.append("  " + msg("report.where", rule=f.rule, netns=f.netns.label()))
    for label, texts in (("report.evidence", f.facts), ("report.cause", f.cause),
                         ("report.lifetime", f.lifetime)):
        if not texts:
            continue
        lines.append("  " + msg(label))
        for t in texts:
            lines += wrap(t.render(msg), "      ", width, first="    - ")
    if f.fixes:
        lines.append("  " + msg("report.fixes"))
        for fix in f.fixes:
            lines += wrap(f"[{msg(FIX_KEYS[fix.kind])}] " + fix.text.render(msg), "      ",
                           width, first="    - ")
            if fix.command:
                lines.append("        " + msg("report.fix.command") + " " + fix.command)
            if fix.persist:
                lines.append("        " + msg("report.fix.persist") + " " + fix.persist)
    lines += wrap(msg("report.confidence", level=msg(f"report.confidence.{f.confidence.value}"),
                       reason=f.confidence_reason.render(msg)), "    ", width, first="  ")
    if f.sockets is not None and len(f.sockets.table) and sockets > 0:
        lines += _socket_lines(f, msg, sockets)
    lines.append("  " + msg("report.explain_hint", rule=f.rule))
    return lines


def _socket_lines(f: Finding, msg, limit: int) -> list[str]:
    sample = f.sockets
    shown = min(limit, len(sample.table))
    rows = []
    cache: dict = {}
    for i in range(shown):
        ino = int(sample.table.rows["inode"][i])
        rec = sample.table.record(i, netns=f.netns, owners=sample.owners.get(ino, ()),
                                  age=sample.ages[i], address_cache=cache)
        state = BY_STATE[TcpState(rec.state)].ss_name if rec.state in BY_STATE else rec.state_name
        rows.append([state, rec.recv_q, rec.send_q, str(rec.local), str(rec.remote),
                     timer_text(rec), age_text(rec), owner_text(rec, True, msg)])
    out = ["  " + msg("report.sockets", shown=shown, total=sample.total)]
    out += ["    " + line for line in render_table(
        [msg("col.state"), msg("col.recvq"), msg("col.sendq"), msg("col.local"),
         msg("col.remote"), msg("col.timer"), msg("col.age"), msg("col.owner")], rows,
        align="lrrlllll")]
    return out


def render(summaries: list[dict], findings: list[Finding], msg, *, width: int = WRAP,
           sockets: int = 5) -> list[str]:
    lines: list[str] = []
    for s in summaries:
        lines += render_summary(s, msg)
        lines.append("")
    if not findings:
        lines.append(msg("report.no_findings"))
        return lines
    lines.append(msg("report.findings", n=len(findings)))
    lines.append("")
    for f in findings:
        lines += render_finding(f, msg, width=width, sockets=sockets)
        lines.append("")
    counts = {s: sum(1 for f in findings if f.severity == s) for s in Severity}
    lines.append(msg("report.totals", critical=counts[Severity.CRITICAL],
                     warning=counts[Severity.WARNING], info=counts[Severity.INFO]))
    return lines
