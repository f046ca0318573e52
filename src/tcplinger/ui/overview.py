"""Text of ``tcplinger report`` over many namespaces: the output grows with
the problems, not with the namespaces.

* the overview (diagnose.summary.overview): one line per namespace that
  holds lingering sockets or has a finding (its container or pod, its
  sockets, the lingering states' counts, its worst finding), the quiet
  ones counted in one line, each "not read" note once;
* the findings grouped by rule and program across namespaces
  (diagnose.groups): a headline with the counts ("python3 app.py holds 5
  CLOSE_WAIT in each of 150 pods (750 in all)"), the members folded to
  what fits on a line, their severities, then the worst member's finding
  in full. A group of one is the finding as ui/report.py shows it.

``report --verbose`` (and any report of one namespace) is ui/report.py's
full view instead.
"""

from __future__ import annotations

from ..diagnose.finding import Severity
from ..diagnose.groups import FindingGroup, member_name
from ..diagnose.summary import Overview
from ..model.notice import notice_text
from ..model.text import printable
from .report import SEVERITY_KEYS, WRAP, render_finding, wrap
from .table import render as render_table
from .table import width as text_width

#: Member names listed before "and N more" (then cut to the line width).
MEMBERS_SHOWN = 6


def summary_name(summary: dict) -> str:
    """A namespace as the overview names it (:func:`netns_name`)."""
    return netns_name(summary["netns"])


def netns_name(ns: dict) -> str:
    """A namespace (its JSON: inode, name, container) as the overview and
    the HTML groups name it: the container or pod first, the namespace's
    own name after it in parentheses; one printable line (model/text).

    >>> netns_name({"inode": 7, "name": "cni-1", "container": "pod:shop/cart/app"})
    'pod:shop/cart/app (cni-1)'
    >>> netns_name({"inode": 7, "name": None, "container": None})
    'net:[7]'
    >>> netns_name({"inode": 7, "name": "a\\x1b[2J\\tb", "container": None})
    'a?[2J?b'
    """
    shown = ns.get("container") or ns.get("name") or f"net:[{ns['inode']}]"
    if ns.get("container") and ns.get("name"):
        shown += f" ({ns['name']})"
    return printable(shown)


def render_overview(ov: Overview, msg, *, namespaces: int, sockets: int) -> list[str]:
    lines = [msg("report.overview", n=namespaces, sockets=sockets, shown=len(ov.lines))]
    rows = []
    for line in ov.lines:
        lingering = ", ".join(f"{state} {n}" for state, n in line.lingering) or "-"
        worst = "-"
        if line.worst is not None:
            worst = (f"{msg(SEVERITY_KEYS[line.worst.severity])} {line.worst.rule} "
                     f"({line.worst.count})")
        rows.append([summary_name(line.summary), line.summary["total"], lingering, worst])
    if rows:
        lines += ["  " + row for row in render_table(
            [msg("report.col.namespace"), msg("report.col.sockets"),
             msg("report.col.lingering"), msg("report.col.worst")], rows, align="lrll")]
    if ov.quiet:
        lines.append("  " + msg("report.overview.quiet", n=ov.quiet, sockets=ov.quiet_sockets))
    for what, n in ov.missing:
        lines.append("  " + msg("report.missing_in", n=n, what=notice_text(what, msg)))
    lines.append("  " + msg("report.overview.verbose"))
    return lines


def folded(names: list[str], msg, room: int) -> str:
    """The first names that fit in ``room`` columns (at most
    MEMBERS_SHOWN), then how many more.

    >>> from tcplinger.i18n import Messages
    >>> folded(["a", "b", "c"], Messages("en"), 80)
    'a, b, c'
    >>> folded([f"shop/app-{i:03d}" for i in range(150)], Messages("en"), 60)
    'shop/app-000, shop/app-001, shop/app-002 and 147 more'
    """
    sep = msg("report.group.sep")
    for shown in range(min(len(names), MEMBERS_SHOWN), 0, -1):
        text = sep.join(names[:shown])
        if shown < len(names):
            text = msg("report.group.more", names=text, n=len(names) - shown)
        if text_width(text) <= room or shown == 1:
            return text
    return ""


def render_group(group: FindingGroup, msg, *, width: int = WRAP, sockets: int = 5) -> list[str]:
    if len(group.members) == 1:  # one namespace: its findings as they are
        out: list[str] = []
        for f in group.findings:
            out += ([""] if out else []) + render_finding(f, msg, width=width, sockets=sockets)
        return out
    width = min(width, WRAP)
    sev = msg(SEVERITY_KEYS[group.severity])
    lines = wrap(f"[{sev}] " + group.title(msg), "    ", width, first="")
    kind = msg(f"report.group.kind.{group.kind}")
    room = width - 2 - text_width(msg("report.group.members", rule=group.rule, kind=kind,
                                      names=""))
    names = folded([member_name(m.netns) for m in group.members], msg, room)
    lines.append("  " + msg("report.group.members", rule=group.rule, kind=kind, names=names))
    counts = group.severities()
    by_sev = msg("report.group.sep").join(
        f"{counts[s.label]} {msg(SEVERITY_KEYS[s]).lower()}" for s in reversed(Severity)
        if counts[s.label])
    worst = group.worst
    lines += wrap(msg("report.group.severities", counts=by_sev, worst=member_name(worst.netns),
                       n=worst.count), "    ", width, first="  ")
    lines += ["  " + line if line else line
              for line in render_finding(worst, msg, width=width - 2, sockets=sockets)]
    return lines


def render(ov: Overview, groups: list[FindingGroup], msg, *, namespaces: int, sockets: int,
           width: int = WRAP, socket_rows: int = 5) -> list[str]:
    lines = render_overview(ov, msg, namespaces=namespaces, sockets=sockets)
    lines.append("")
    findings = sum(len(g.findings) for g in groups)
    if not findings:
        lines.append(msg("report.no_findings"))
        return lines
    lines.append(msg("report.groups", n=findings, groups=len(groups)))
    lines.append("")
    for g in groups:
        lines += render_group(g, msg, width=width, sockets=socket_rows)
        lines.append("")
    counts = {s: sum(1 for g in groups for f in g.findings if f.severity == s) for s in Severity}
    lines.append(msg("report.totals", critical=counts[Severity.CRITICAL],
                     warning=counts[Severity.WARNING], info=counts[Severity.INFO]))
    return lines
