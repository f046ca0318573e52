"""The HTML report over many namespaces (``report --html`` with
``--all-netns``): the same overview and groups as the terminal
(ui/overview.py), from the report's JSON document (``overview`` and
``groups``, docs/json.md).

* the overview: a table with one row per namespace that holds lingering
  sockets or has a finding (its worst finding links to that finding's
  group), the quiet ones counted;
* one card per group: the headline, the members in a folded table
  (``<details>``, readable without JavaScript), the group's numbers, then
  the worst member's finding as a card of its own (``card``: ui/html.py's
  finding renderer, passed in so the two modules do not import each other).

>>> from tcplinger.i18n import Messages
>>> doc = {"summary": [{}, {}], "findings": [], "groups": [],
...        "overview": {"namespaces": [], "quiet": {"namespaces": 2, "sockets": 9}, "missing": []}}
>>> "Quiet namespaces" in "".join(overview_section(doc, Messages("en")))
True
"""

from __future__ import annotations

from html import escape
from typing import Callable

from ..model.notice import notice_text
from .html_page import card_head
from .overview import netns_name


def grouped(doc: dict) -> bool:
    """The page shows the overview and groups: more than one namespace."""
    return "overview" in doc and "groups" in doc and len(doc.get("summary", [])) > 1


def overview_section(doc: dict, msg) -> list[str]:
    ov = doc["overview"]
    group_of = {i: g for g, group in enumerate(doc.get("groups", []))
                for m in group["members"] for i in m["findings"]}
    n = len(doc.get("summary", []))
    out = [f'<h2>{escape(msg("html.overview", shown=len(ov["namespaces"]), n=n))}</h2>',
           '<section class="card"><table>',
           "<tr>" + "".join(f"<th>{escape(msg(k))}</th>" for k in (
               "report.col.namespace", "report.col.sockets", "report.col.lingering",
               "report.col.worst")) + "</tr>"]
    for line in ov["namespaces"]:
        lingering = ", ".join(f"{s} {c}" for s, c in line["lingering"].items()) or "-"
        worst = "-"
        if line["worst"] is not None:
            f = doc["findings"][line["worst"]]
            worst = (f'<a href="#group-{group_of.get(line["worst"], 0) + 1}">'
                     f'<span class="sev sev-{f["severity"]}">'
                     f'{escape(msg("report.severity." + f["severity"]))}</span>'
                     f'{escape(f["rule"])} ({f["count"]})</a>')
        out.append(f'<tr><td>{escape(netns_name(line["netns"]))}</td><td class="n">{line["total"]}'
                   f'</td><td>{escape(lingering)}</td><td>{worst}</td></tr>')
    out.append("</table>")
    quiet = ov["quiet"]
    if quiet["namespaces"]:
        text = msg("report.overview.quiet", n=quiet["namespaces"], sockets=quiet["sockets"])
        out.append(f"<p>{escape(text)}</p>")
    for m in ov.get("missing", []):
        text = msg("report.missing_in", n=m["namespaces"], what=notice_text(m["what"], msg))
        out.append(f'<p class="meta">{escape(text)}</p>')
    out.append("</section>")
    return out


def group_section(g: dict, doc: dict, msg, index: int, card: Callable) -> list[str]:
    """One group; a group of one namespace is its findings' own cards."""
    if len(g["members"]) == 1:
        out = [f'<div id="group-{index + 1}"></div>']
        for i in g["members"][0]["findings"]:
            out += card(doc["findings"][i], msg, i)
        return out
    sev = g["severity"]
    kind = msg(f"report.group.kind.{g['kind']}")
    members = msg("report.group.members", rule=g["rule"], kind=kind, names=len(g["members"]))
    out = card_head(sev, g["title"], members, f"group-{index + 1}", msg)
    out += [f'<details><summary>{escape(msg("html.group.members", n=len(g["members"])))}</summary>'
           '<table>', "<tr>" + "".join(f"<th>{escape(msg(k))}</th>" for k in (
               "report.col.namespace", "report.col.count", "report.col.worst")) + "</tr>"]
    for m in g["members"]:
        out.append(f'<tr><td>{escape(m["name"])} <span class="meta">'
                   f'{escape(netns_name(m["netns"]))}</span></td><td class="n">{m["count"]}</td>'
                   f'<td><span class="sev sev-{m["severity"]}">'
                   f'{escape(msg("report.severity." + m["severity"]))}</span></td></tr>')
    out.append("</table></details>")
    if g.get("evidence"):
        out.append(f'<details><summary>{escape(msg("html.group.evidence"))}</summary><table>'
                   + "<tr>" + "".join(f"<th>{escape(msg(k))}</th>" for k in (
                       "html.group.col.evidence", "html.group.col.total", "html.group.col.min",
                       "html.group.col.max")) + "</tr>")
        for key, st in g["evidence"].items():
            out.append(f'<tr><td><code>{escape(key)}</code></td><td class="n">{st["total"]}</td>'
                       f'<td class="n">{st["min"]}</td><td class="n">{st["max"]}</td></tr>')
        out.append("</table></details>")
    worst = doc["findings"][g["worst"]]
    name = next(m["name"] for m in g["members"] if g["worst"] in m["findings"])
    out.append(f'<p class="lbl">{escape(msg("html.group.worst", name=name))}</p>')
    out += card(worst, msg, g["worst"])
    out.append("</section>")
    return out
