"""``tcplinger pcap --html``: the wire view of capture files as one
self-contained page, built from the parts of every tcplinger page
(ui/html_page.py: no script, nothing loaded, commands copyable).

Per file: the capture (link types, interfaces, packets, time range, what
was skipped and why), the connections by Zeek conn_state next to the
endpoints by the state the packets leave them in, histograms of how long
each endpoint had held its state when the capture ended, one card per
finding rule (its first findings in full with their packets, the
connections behind it folded, the fixes), the connections kept with
their timelines (ui/timeline.py), and Zeek's history letters explained.

Bounded on any capture: a rule's card lists at most ``rows`` of its
connections (the count is exact), the kept connections are ``--show``'s,
and the summary's histograms are counts; the page does not grow with
the connections of the file.
"""

from __future__ import annotations

import shlex
import time
from html import escape

from ..wire.decode import LINKTYPE_NAMES
from ..wire.fixes import FIXES, fields as fix_fields
from ..wire.summary import SEVERITY_ORDER
from . import timeline as tl_view
from . import wire as wire_view
from .html import age_buckets, state_colour
from .html_page import PAGE_END, card_head, fixes_list, folded, page_head, table
from .svgchart import histogram_svg

#: Findings of a rule shown in full, with their packets.
FULL = 3
#: Connections listed per rule (folded); the rest counted.
ROWS = 100
#: Timelines drawn (of the kept connections, those with findings first).
TIMELINES = 3
HISTORY_LETTERS = ("S", "H", "A", "D", "F", "R", "C", "T", "W", "G", "I", "Q", "^")


def render_wire_page(results, msg, *, generated: str, lang: str = "en",
                     filter_text: str | None = None, rows: int = ROWS,
                     kept: bool = True) -> str:
    """``results``: app/pcap.py's FileResult per file (path, counts,
    summary, notices). ``kept=False``: the files were a live capture's
    temporary ones (``capture`` without ``--write``), gone once the page is
    written, so no command on the page names them."""
    title = msg("wire.html.title", files=", ".join(r.path.name for r in results))
    out = page_head(title, msg, generated=generated, lang=lang)
    histories = set()
    for i, res in enumerate(results):
        out += _capture(res, msg, filter_text, kept)
        out += _states(res.summary, msg)
        out += _lingers(res.summary, msg)
        out += _findings(res, msg, rows, i, kept)
        out += _kept(res, msg)
        histories.update(r.history for r in res.summary.records())
        histories.update(f.history for f in res.summary.findings[:rows * 8])
    out += _letters(histories, msg)
    out.append(f'<p class="meta">{escape(msg("wire.html.footer"))}</p>{PAGE_END}')
    return "\n".join(out)


def _clock(t: float) -> str:
    """UTC time of a packet's timestamp; the number of seconds where the
    file's says a time the C library cannot show (a pcapng if_tsoffset or
    an if_tsresol of seconds can put it 10^18 s either side of 1970:
    gmtime() raises EOVERFLOW).

    >>> _clock(1700000000.25), _clock(-4.6e18)
    ('2023-11-14 22:13:20.250', '-4.6e+18 s')
    """
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}"
    except (OverflowError, OSError, ValueError):  # ValueError: NaN
        return f"{t:g} s"


def _interfaces(c, msg) -> str:
    """"2 (number 0 eth0, 1 lo)": pcapng's if_name where the file gives one."""
    if not c.interfaces:
        return "-"
    names = c.interface_names
    return msg("wire.html.interfaces_value", n=len(c.interfaces), numbers=", ".join(
        f"{n} {names[n]}" if n in names else str(n) for n in sorted(c.interfaces)))


def _capture(res, msg, filter_text, kept: bool) -> list[str]:
    c = res.counts
    links = ", ".join(f"{lt} {LINKTYPE_NAMES.get(lt, '?')}" for lt in sorted(c.linktypes))
    name = str(res.path) if kept else msg("wire.html.file_not_kept", path=str(res.path))
    rows = [[msg("wire.html.file"), name],
            [msg("wire.html.link_types"), links or "-"],
            [msg("wire.html.interfaces"), _interfaces(c, msg)],
            [msg("wire.html.records"), f"{c.records:,}"], [msg("wire.html.tcp"), f"{c.tcp:,}"],
            [msg("wire.html.connections"), f"{res.summary.connections:,}"]]
    if c.first_t is not None:
        rows.append([msg("wire.html.range"), msg(
            "wire.html.range_value", first=_clock(c.first_t), last=_clock(c.last_t),
            span=tl_view.fmt_s(c.last_t - c.first_t))])
    skipped = [(n, msg(f"wire.html.skip.{k}", expr=filter_text or "")) for k, n in (
        ("other", c.other), ("cut", c.cut), ("unsupported", c.unsupported),
        ("filtered", c.filtered), ("bad_checksum", c.bad_checksum)) if n]
    out = [f'<h2>{escape(msg("wire.html.capture", path=str(res.path)))}</h2>',
           '<section class="card"><div class="grid">', table(["", ""], rows), "<div>",
           f'<div class="lbl">{escape(msg("wire.html.skipped"))}</div>']
    if skipped or res.notices:
        out.append("<ul>" + "".join(f"<li>{n:,} {escape(text)}</li>" for n, text in skipped)
                   + "".join(f"<li>{escape(msg(n.key, **n.fields))}</li>" for n in res.notices)
                   + "</ul>")
    else:
        out.append(f'<p>{escape(msg("wire.html.skip.none"))}</p>')
    s = res.summary
    counts = {sev: 0 for sev in SEVERITY_ORDER}
    for f in s.findings:
        counts[f.severity] += 1
    badges = " ".join(f'<span class="sev sev-{sev}">{n} '
                      f'{escape(msg("report.severity." + sev))}</span>' for sev, n in counts.items())
    out += [f"<p>{badges}</p>", "</div></div></section>"]
    return out


def _bar(n: int, total: int, colour: str) -> str:
    frac = n / total if total else 0.0
    return (f'<span class="bar"><i style="width:{frac * 100:.1f}%;background:{colour}">'
            "</i></span>")


def _states(s, msg) -> list[str]:
    out = [f'<h2>{escape(msg("wire.html.states"))}</h2>', '<section class="card"><div class="grid">']
    out.append(table([msg(k) for k in ("wire.col.conn_state", "wire.col.count",
                                       "wire.col.meaning")],
                     [[st, f"{n:,}", msg("wire.state." + st)] for st, n in
                      sorted(s.conn_states.items(), key=lambda kv: -kv[1])],
                     numeric=frozenset({1})))
    held = sum(s.held_at_end.values())
    if held:
        out.append("<table><tr>" + "".join(f"<th>{escape(msg(k))}</th>" for k in (
            "wire.html.col.end_state", "wire.html.col.endpoints")) + "<th></th></tr>")
        for st, n in s.held_at_end.most_common():
            colour = state_colour(st)
            out.append(f'<tr><td><span class="sw" style="background:{colour}"></span>'
                       f'{escape(st)}</td><td class="n">{f"{n:,}"}</td>'
                       f"<td>{_bar(n, held, colour)}</td></tr>")
        out.append("</table>")
    out.append("</div>")
    key = "wire.html.end_note" if held else "wire.html.none_held"
    out.append(f'<p class="meta">{escape(msg(key))}</p></section>')
    return out


def _lingers(s, msg) -> list[str]:
    if not s.held_for:
        return []
    out = [f'<h2>{escape(msg("wire.html.lingers"))}</h2>', '<section class="card"><div class="grid">']
    labels = age_buckets()
    for st, _ in s.held_at_end.most_common():
        out.append(histogram_svg(list(zip(labels, s.held_for[st])), state_colour(st), title=st,
                                 unit=" " + msg("wire.html.endpoints_unit")))
    out.append(f'</div><p class="meta">{escape(msg("wire.html.lingers_note"))}</p></section>')
    return out


def _by_rule(s) -> list[tuple[str, list]]:
    """(rule, its kept findings) worst first, then by count."""
    rules: dict[str, list] = {}
    for f in s.sorted_findings():
        rules.setdefault(f.rule, []).append(f)
    return sorted(rules.items(), key=lambda kv: (SEVERITY_ORDER[kv[1][0].severity],
                                                 -s.finding_counts[kv[0]]))


def _findings(res, msg, rows: int, file_no: int, kept: bool) -> list[str]:
    s = res.summary
    n = sum(s.finding_counts.values())
    out = [f'<h2>{escape(msg("wire.html.findings", n=n))}</h2>']
    if not n:
        return out + [f'<p>{escape(msg("wire.no_findings"))}</p>']
    for rule, found in _by_rule(s):
        total = s.finding_counts[rule]
        head = msg("wire.html.rule_title", rule=rule, n=total)
        out += card_head(found[0].severity, head, msg("wire.html.rule_meta", rule=rule),
                         f"f{file_no + 1}-{rule}", msg)
        for f in found[:FULL]:
            out += _full(f, res.path if kept else None, msg)
        listed = found[:rows]
        body = table([msg(k) for k in ("wire.col.uid", "wire.html.col.connection",
                                       "wire.col.conn_state", "wire.col.history",
                                       "wire.html.col.finding")],
                     [[f.uid, f.conn, f.conn_state, f.history,
                       f"[{msg('report.severity.' + f.severity)}] "
                       + wire_view.finding_text(f, _names(f), msg)] for f in listed])
        if total > len(listed):
            body += f'<p class="meta">{escape(msg("wire.more_findings", n=total - len(listed)))}</p>'
        out.append(folded(msg("wire.html.behind", n=total), body))
        first = fix_fields(found[0])
        out += fixes_list([{"kind": fx.kind, "text": msg(fx.key, **first),
                            "command": fx.command.format(**first)}
                           for fx in FIXES.get(rule, ())], msg)
        out.append("</section>")
    return out


def _names(f) -> dict:
    return dict(zip(("orig", "resp"), f.conn.split(" → ", 1)))


def _full(f, path, msg) -> list[str]:
    names = _names(f)
    lines = [wire_view.evidence_line(p, f.ts, names, msg) for p in f.evidence]
    out = [f'<p><b>{escape(f.uid)}</b> <span class="meta">{escape(f.conn)} · '
           f'{escape(f.conn_state)} {escape(f.history)}</span><br>'
           f'{escape(wire_view.finding_text(f, names, msg))}</p>']
    if lines:
        out.append(f'<div class="lbl">{escape(msg("wire.html.evidence"))}</div>'
                   f'<pre>{escape(chr(10).join(lines))}</pre>')
    if path is not None:  # None: a file the page outlives (render_wire_page's kept)
        draw = f"tcplinger pcap {shlex.quote(str(path))} --uid {f.uid} --svg {f.uid}.svg"
        out.append(f'<div class="lbl">{escape(msg("wire.html.draw"))}</div>'
                   f'<pre class="cmd">{escape(draw)}</pre>')
    return out


def _kept(res, msg) -> list[str]:
    recs = res.summary.records()
    if not recs:
        return []
    rows = [[r.uid, wire_view.side_name(r, "orig"), wire_view.side_name(r, "resp"),
             r.conn_state, r.history, f"{r.orig_pkts}/{r.resp_pkts}",
             wire_view.held_text(r.orig_spans), wire_view.held_text(r.resp_spans),
             tl_view.fmt_s(r.idle_s())] for r in recs]
    out = [f'<h2>{escape(msg("wire.shown_heading", n=len(recs)).rstrip(":："))}</h2>',
           '<section class="card" style="overflow-x:auto">',
           table([msg(k) for k in ("wire.col.uid", "wire.col.orig", "wire.col.resp",
                                   "wire.col.conn_state", "wire.col.history", "wire.col.pkts",
                                   "wire.col.orig_holds", "wire.col.resp_holds",
                                   "wire.col.idle")], rows, numeric=frozenset({5}))]
    # the first connection of each rule as the page lists them, then the rest
    order = [found[0].uid for _, found in _by_rule(res.summary)]
    rank = {uid: i for i, uid in reversed(list(enumerate(order)))}
    for r in sorted(recs, key=lambda r: rank.get(r.uid, len(rank)))[:TIMELINES]:
        names = (wire_view.side_name(r, "orig"), wire_view.side_name(r, "resp"))
        title = msg("wire.timeline_title", uid=r.uid, state=r.conn_state, history=r.history)
        out.append(tl_view.render_svg(r.timeline(names), title=title, width=1000, msg=msg))
    out.append("</section>")
    return out


def _letters(seen: set, msg) -> list[str]:
    used = {c.upper() for h in seen for c in h}
    rows = [[f"{x} {x.lower()}" if x.isalpha() else x, msg(f"wire.history.{x}"),
             "✓" if x in used else ""] for x in HISTORY_LETTERS]
    return [f'<h2>{escape(msg("wire.html.history"))}</h2>', '<section class="card">',
            table([msg(k) for k in ("wire.html.col.letter", "wire.html.col.means",
                                    "wire.html.col.seen")], rows),
            f'<p class="meta">{escape(msg("wire.html.history_note"))}</p></section>']
