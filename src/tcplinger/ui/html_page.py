"""The parts every tcplinger HTML page is made of (``report --html``,
``lab run --html``, ``pcap --html``): the style, the head with a
Content-Security-Policy that forbids every load, a finding's card head
and its fixes with copyable commands, a table folded under a count.

>>> from tcplinger.i18n import Messages
>>> head = page_head("t <x>", Messages("en"), generated="now", lang="en")
>>> "default-src 'none'" in head[2], "<title>t &lt;x&gt;</title>" in head[3]
(True, True)
"""

from __future__ import annotations

from html import escape

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","Noto Sans","WenQuanYi Zen Hei",sans-serif;
 color:#1d1d1f;background:#fafafa;margin:0}
main{max-width:1100px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:0 0 6px}.meta{color:#666;font-size:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px 16px;margin:12px 0}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px 3px 0;text-align:left;
 vertical-align:top}th{color:#555;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}.bar{background:#eee;width:140px;height:9px;
 display:inline-block;border-radius:3px;vertical-align:middle}.bar i{display:block;height:9px;
 border-radius:3px;background:#4e79a7}.bar i.hot{background:#c0392b}
.sev{display:inline-block;padding:1px 7px;border-radius:10px;color:#fff;font-size:12px;
 font-weight:700;margin-right:6px}.sev-critical{background:#c0392b}.sev-warning{background:#d68910}
.sev-info{background:#2e86c1}.finding{border-left:5px solid #bbb}.finding.critical{border-left-color:#c0392b}
.finding.warning{border-left-color:#d68910}.finding.info{border-left-color:#2e86c1}
ul{margin:4px 0 8px;padding-left:20px}li{margin:2px 0}.kind{color:#555;font-size:12px;
 text-transform:uppercase;margin-right:4px}
pre{background:#f1f3f5;border:1px solid #dde;border-radius:4px;padding:6px 8px;margin:4px 0;
 white-space:pre-wrap;word-break:break-all;font:12.5px/1.4 ui-monospace,"DejaVu Sans Mono",monospace}
pre.cmd{user-select:all;-webkit-user-select:all;cursor:text}.lbl{font-size:12px;color:#555}
details summary{cursor:pointer;color:#2e5d8f}.sw{display:inline-block;width:10px;height:10px;
 margin-right:4px;vertical-align:middle}
"""


PAGE_END = "</main></body></html>\n"


def page_head(title: str, msg, *, generated: str, lang: str = "en") -> list[str]:
    """Everything up to the first section: nothing may be fetched (a
    browser asked to load anything refuses and says so in its console,
    which the browser tests check is empty); CSS inline, no script."""
    return [f'<!DOCTYPE html>\n<html lang="{escape(lang)}"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            'style-src \'unsafe-inline\'; img-src data:">',
            f'<title>{escape(title)}</title><style>{CSS}</style></head><body><main>',
            f'<h1>{escape(title)}</h1>',
            f'<div class="meta">{escape(msg("html.generated", when=generated))}</div>']


def card_head(severity: str, title: str, meta: str, anchor: str, msg) -> list[str]:
    """A finding's (or a group's) card: severity badge, title, one meta line."""
    return [f'<section class="card finding {severity}" id="{escape(anchor)}">',
            f'<h3><span class="sev sev-{severity}">'
            f'{escape(msg("report.severity." + severity))}</span>{escape(title)}</h3>',
            f'<div class="meta">{escape(meta)}</div>']


def fixes_list(fixes: list[dict], msg) -> list[str]:
    """``[{"kind", "text", "command"?, "persist"?}]`` as a list whose
    commands select whole with one click."""
    if not fixes:
        return []
    out = [f'<div class="lbl">{escape(msg("report.fixes"))}</div><ul>']
    for fix in fixes:
        item = (f'<li><span class="kind">{escape(msg("report.fix." + fix["kind"]))}</span>'
                f'{escape(fix["text"])}')
        for key in ("command", "persist"):
            if fix.get(key):
                item += (f'<div class="lbl">{escape(msg("report.fix." + key))}</div>'
                         f'<pre class="cmd">{escape(fix[key])}</pre>')
        out.append(item + "</li>")
    out.append("</ul>")
    return out


def table(head: list[str], rows: list[list[str]], *, numeric: frozenset = frozenset()) -> str:
    """A table of text cells (escaped here); ``numeric``: right-aligned columns."""
    out = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(
            f'<td class="n">{escape(str(c))}</td>' if i in numeric else f"<td>{escape(str(c))}</td>"
            for i, c in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "".join(out)


def folded(summary: str, body: str, *, open_: bool = False) -> str:
    """``<details>``: folded, and opened by a click without JavaScript."""
    return (f'<details{" open" if open_ else ""}><summary>{escape(summary)}</summary>'
            f"{body}</details>")
