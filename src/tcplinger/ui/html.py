"""``tcplinger report --html``: one self-contained page to attach to a ticket.

Pure: it takes the report's JSON document (docs/json.md, the same data the
terminal shows), the age histograms and, when a fresh watch database was
there, the history series, and returns one HTML string.  Everything is
inline (CSS in a <style>, charts as <svg>); there is no script, no web
font and no link that loads anything, so the page reads the same offline,
in a mail client, or with JavaScript off.  Commands sit in <pre> blocks
whose text selects whole with one click (``user-select: all``).

>>> from tcplinger.i18n import Messages
>>> doc = {"worst": None, "totals": {"critical": 0, "warning": 0, "info": 0},
...        "findings": [], "summary": [], "namespaces": []}
>>> page = render_page(doc, Messages("en"), generated="2026-12-07 12:00:00", host="h")
>>> page.startswith("<!DOCTYPE html>") and "<script" not in page and "No lingering" in page
True
"""

from __future__ import annotations

from html import escape

import numpy as np

from ..model.states import LINGERING, name as state_name, parse_state
from ..model.text import printable
from ..model.timeline import AGE_BUCKETS
from ..track.age import age_arrays
from .html_groups import group_section, grouped, overview_section
from .html_page import PAGE_END, card_head, fixes_list, page_head
from .report import workload_line
from .svgchart import histogram_svg, series_svg
from .ticks import time_label
from .timeline import COLOUR, GREY
from .table import duration

SEVERITIES = ("critical", "warning", "info")


def state_colour(name: str) -> str:
    try:
        return COLOUR.get(parse_state(name), GREY)[0]
    except ValueError:
        return GREY[0]


def age_histograms(inputs) -> dict[int, dict[str, list[int]]]:
    """``{netns inode: {state: [count per AGE_BUCKETS bucket, beyond, unknown]}}``
    for the lingering states present; ages as the report knows them (a
    watch database's, else timers exactly and tcp_info lower bounds)."""
    out = {}
    edges = np.array(AGE_BUCKETS, dtype=float)
    for inp in inputs:
        table = inp.table
        if inp.ages is not None:
            secs = np.array([np.nan if a.seconds is None else a.seconds for a in inp.ages],
                            dtype=float)
        else:
            exact, lower = age_arrays(table, inp.kernel)
            secs = np.where(np.isnan(exact), lower, exact)
        states = table.rows["state"]
        per = {}
        for st in sorted(LINGERING):
            mask = states == int(st)
            if not mask.any():
                continue
            vals = secs[mask]
            known = vals[~np.isnan(vals)]
            counts = np.bincount(np.searchsorted(edges, known, side="right"),
                                 minlength=len(edges) + 1).tolist()
            per[state_name(int(st))] = counts + [int(np.isnan(vals).sum())]
        if per:
            out[inp.netns.inode] = per
    return out


def age_buckets() -> list[str]:
    """Bucket labels by upper bound, short enough for narrow bars.

    >>> age_buckets()
    ['<1s', '<5s', '<15s', '<1m', '<5m', '<30m', '<2h', '≥2h']
    """
    return [f"<{time_label(hi)}" for hi in AGE_BUCKETS] + [f"≥{time_label(AGE_BUCKETS[-1])}"]


def render_page(doc: dict, msg, *, generated: str, host: str, lang: str = "en",
                ages: dict | None = None, history: dict | None = None) -> str:
    """The whole page. ``ages``: ``{netns inode: {state: [count per bucket]}}``;
    ``history``: ``{"series": [...], "limits": [...], "since": t, "until": t}``."""
    out = page_head(msg("html.title", host=host), msg, generated=generated, lang=lang)
    out += _overview(doc, msg)
    many = grouped(doc)  # several namespaces: the overview, the rest folded
    if many:
        out += overview_section(doc, msg)
        out.append(f'<details><summary>{escape(msg("html.namespaces_all", n=len(doc["summary"])))}'
                   '</summary>')
    else:
        out.append(f'<h2>{escape(msg("html.namespaces"))}</h2>')
    for s in doc.get("summary", []):
        out += _namespace(s, msg, (ages or {}).get(s["netns"]["inode"]))
    if many:
        out.append("</details>")
    out.append(f'<h2>{escape(msg("html.findings", n=len(doc.get("findings", []))))}</h2>')
    if not doc.get("findings"):
        out.append(f'<p>{escape(msg("report.no_findings"))}</p>')
    elif many:
        out.append(f'<p class="meta">{escape(msg("report.groups", n=len(doc["findings"]), groups=len(doc["groups"])))}</p>')
        for i, g in enumerate(doc["groups"]):
            out += group_section(g, doc, msg, i, _finding)
    else:
        for i, f in enumerate(doc.get("findings", [])):
            out += _finding(f, msg, i)
    if history and history.get("series"):
        out += _history(history, msg)
    out.append(f'<p class="meta">{escape(msg("html.footer"))}</p>{PAGE_END}')
    return "\n".join(out)


def _overview(doc: dict, msg) -> list[str]:
    totals = doc.get("totals", {})
    badges = " ".join(f'<span class="sev sev-{s}">{totals.get(s, 0)} '
                      f'{escape(msg("report.severity." + s))}</span>' for s in SEVERITIES)
    return [f'<div class="card">{badges}</div>']


def _gauge(used, limit) -> str:
    if not isinstance(used, (int, float)) or not limit:
        return ""
    frac = max(0.0, min(1.0, used / limit))
    hot = " hot" if frac >= 0.8 else ""
    return f'<span class="bar"><i class="{hot.strip()}" style="width:{frac * 100:.1f}%"></i></span>'


def _limit_rows(s: dict, msg) -> list[list]:
    rows = [[msg("html.limit.timewait"), s.get("timewait_type"), "tcp_max_tw_buckets",
             s.get("tcp_max_tw_buckets")],
            [msg("html.limit.orphans"), s.get("sockstat_orphans"), "tcp_max_orphans",
             s.get("tcp_max_orphans")]]
    ct = s.get("conntrack") or {}
    if ct.get("max"):
        rows.append([msg("html.limit.conntrack"), ct.get("count"), "nf_conntrack_max",
                     ct.get("max")])
    pr = s.get("ip_local_port_range")
    if pr:
        rows.append([msg("html.limit.ports"), None, "ip_local_port_range",
                     f"{pr[0]}–{pr[1]} ({pr[1] - pr[0] + 1})"])
    return rows


def _namespace(s: dict, msg, ages: dict | None) -> list[str]:
    head = msg("report.header", netns=s["label"], inode=s["netns"]["inode"], total=s["total"])
    out = ['<section class="card">', f'<h3>{escape(head)}</h3>']
    if s.get("workload"):
        out.append(f'<div class="meta">{escape(workload_line(s["workload"], msg))}</div>')
    out.append('<div class="grid"><table>')
    out.append("<tr>" + "".join(f"<th>{escape(msg(k))}</th>" for k in
                                ("report.col.state", "report.col.count", "report.col.limit"))
               + "</tr>")
    for st in s["states"]:
        limit = "" if not st["limit"] or st["limit_value"] is None else \
            f'{st["limit"]} {st["limit_value"]}'
        out.append(f'<tr><td><span class="sw" style="background:{state_colour(st["state"])}">'
                   f'</span>{escape(st["state"])}</td><td class="n">{st["count"]}</td>'
                   f'<td>{escape(limit)}</td></tr>')
    out.append("</table><table>")
    out.append(f'<tr><th>{escape(msg("html.limit.what"))}</th><th>{escape(msg("html.limit.used"))}'
               f'</th><th>{escape(msg("html.limit.name"))}</th><th></th></tr>')
    for what, used, name, limit in _limit_rows(s, msg):
        shown = "-" if used is None else used
        out.append(f'<tr><td>{escape(what)}</td><td class="n">{shown}</td>'
                   f'<td>{escape(name)} {escape(str(limit if limit is not None else "-"))}</td>'
                   f'<td>{_gauge(used, limit if isinstance(limit, int) else None)}</td></tr>')
    out.append("</table></div>")
    if ages:
        out.append(f'<p class="lbl">{escape(msg("html.ages"))}</p><div class="grid">')
        labels = age_buckets()
        for state, counts in ages.items():
            bars = list(zip(labels, counts[:-1]))
            if counts[-1]:
                bars.append((msg("html.age_unknown"), counts[-1]))
            out.append(histogram_svg(bars, state_colour(state), title=state,
                                     unit=" " + msg("html.sockets_unit")))
        out.append("</div>")
    out.append("</section>")
    return out


def _finding(f: dict, msg, index: int) -> list[str]:
    sev = f["severity"]
    where = msg("report.where", rule=f["rule"], netns=printable(
        f["netns"].get("name") or f["netns"].get("container") or f"net:[{f['netns']['inode']}]"))
    out = card_head(sev, f["title"], where, f"finding-{index + 1}", msg)
    for key, items in (("report.evidence", f.get("facts")), ("report.cause", f.get("cause")),
                       ("report.lifetime", f.get("lifetime"))):
        if items:
            out.append(f'<div class="lbl">{escape(msg(key))}</div><ul>'
                       + "".join(f"<li>{escape(t)}</li>" for t in items) + "</ul>")
    out += fixes_list(f.get("fixes"), msg)
    out.append(f'<p class="lbl">{escape(msg("report.confidence", level=msg("report.confidence." + f["confidence"]), reason=f.get("confidence_reason") or ""))}</p>')
    if f.get("sockets"):
        out += _sockets(f, msg)
    refs = f.get("references") or []
    if refs:
        out.append(f'<div class="lbl">{escape(msg("report.explain.references"))} '
                   + "; ".join(escape(r["label"]) + f' <span class="meta">{escape(r["url"])}</span>'
                               for r in refs) + "</div>")
    out.append(f'<pre class="cmd">tcplinger explain {escape(f["rule"])}</pre></section>')
    return out


def _sockets(f: dict, msg) -> list[str]:
    rows = f["sockets"]
    head = msg("report.sockets", shown=len(rows), total=f.get("sockets_total", len(rows)))
    out = [f"<details><summary>{escape(head)}</summary><table>",
           "<tr>" + "".join(f"<th>{escape(msg(k))}</th>" for k in
                            ("col.state", "col.recvq", "col.local", "col.remote", "col.age",
                             "col.owner")) + "</tr>"]
    for s in rows:
        age = s.get("age") or {}
        secs = age.get("seconds")
        age_text = "?" if secs is None else ("≥" if age.get("at_least") else "") + \
            f"{duration(secs)} ({age.get('source')})"
        owner = ", ".join(f"{o['comm']} ({o['pid']})" for o in s.get("owners") or []) or "-"
        out.append(f'<tr><td>{escape(s["state"])}</td><td class="n">{s["recv_q"]}</td>'
                   f'<td>{escape(_ep(s["local"]))}</td><td>{escape(_ep(s["remote"]))}</td>'
                   f'<td>{escape(age_text)}</td><td>{escape(owner)}</td></tr>')
    out.append("</table></details>")
    return out


def _ep(e: dict) -> str:
    a = e["address"]
    return f"[{a}]:{e['port']}" if ":" in a else f"{a}:{e['port']}"


def _history(history: dict, msg) -> list[str]:
    out = [f'<h2>{escape(msg("html.history"))}</h2>', '<section class="card">']
    for part in history.get("plots", [history]):
        out.append(series_svg([{"label": s["label"], "times": s["times"], "values": s["values"],
                                "colour": state_colour(s["label"])} for s in part["series"]],
                              limits=part.get("limits", []), title=part.get("title", ""),
                              y_label=msg("html.sockets_unit")))
    out.append(f'<p class="meta">{escape(msg("html.history_note"))}</p></section>')
    return out


def render_timeline_page(title: str, svg: str, lines: list[str], msg, *, generated: str,
                         lang: str = "en") -> str:
    """A lab run (or any timeline) as one self-contained page: the picture,
    then the text report as the terminal shows it."""
    return "\n".join(page_head(title, msg, generated=generated, lang=lang) + [
        f'<section class="card" style="overflow-x:auto">{svg}</section>',
        f'<section class="card"><pre>{escape(chr(10).join(lines))}</pre></section>',
        PAGE_END])
