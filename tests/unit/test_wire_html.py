"""The wire page (``pcap --html``, ui/html_wire.py) from the hand-built
captures of tests/data/wire: self-contained, every finding's sentence
and packets, fixes with their commands, conn_states next to end states,
escaped, in Chinese too, and bounded when a capture has thousands of
findings."""

from __future__ import annotations

import dataclasses
import html
import re
import shutil
from pathlib import Path

import pytest

from tcplinger.app.pcap import PcapOptions, analyse_file
from tcplinger.i18n import Messages
from tcplinger.ui import html_wire
from tcplinger.ui import wire as wire_view
from tcplinger.wire.fixes import FIXES, fields as fix_fields
from tcplinger.wire.findings import RULES

DATA = Path(__file__).resolve().parents[1] / "data" / "wire"
CAPTURES = sorted(p for p in DATA.iterdir() if p.suffix in (".pcap", ".pcapng"))


def analyse(path: Path, **kw):
    return analyse_file(path, PcapOptions((path,), **kw))


def page(results, lang="en", **kw) -> str:
    return html_wire.render_wire_page(results, Messages(lang), generated="2026-12-07 20:00",
                                      lang=lang, **kw)


def text(page_html: str) -> str:
    """What a reader sees: tags out, entities decoded, blanks folded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page_html)).split())


def self_contained(out: str) -> None:
    assert out.startswith("<!DOCTYPE html>") and "<script" not in out
    assert "default-src 'none'" in out
    assert not re.search(r'\b(src|href)\s*=', out)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_every_finding_its_packets_and_fixes_are_on_the_page(path):
    res = analyse(path, checksums=path.name.startswith("bad_checksums"))
    out = page([res])
    self_contained(out)
    seen = text(out)
    msg = Messages("en")
    for st, n in res.summary.conn_states.items():
        assert f"{st} {n:,} {msg('wire.state.' + st)}" in seen
    for st, n in res.summary.held_at_end.items():
        assert f"{st} {n:,}" in seen
    by_rule = {}
    for f in res.summary.sorted_findings():
        by_rule.setdefault(f.rule, []).append(f)
    for rule, found in by_rule.items():
        assert msg("wire.html.rule_title", rule=rule, n=res.summary.finding_counts[rule]) in seen
        for f in found:  # each finding's sentence, with the ends by address
            names = dict(zip(("orig", "resp"), f.conn.split(" → ")))
            assert wire_view.finding_text(f, names, msg) in seen, f
        for f in found[:html_wire.FULL]:
            for p in f.evidence:
                assert " ".join(wire_view.evidence_line(p, f.ts, names, msg).split()) in seen
        first = fix_fields(found[0])
        for fx in FIXES[rule]:
            assert msg(fx.key, **first) in seen
            if fx.command:
                assert f'<pre class="cmd">{html.escape(fx.command.format(**first))}</pre>' in out
    assert out.count("<svg") == len(res.summary.held_for) + min(
        len(res.summary.records()), html_wire.TIMELINES)
    assert ("S s" in seen and msg("wire.history.S") in seen)  # the letters explained


def test_the_fixtures_cover_the_rules_that_have_fixes():
    found = set()
    for path in CAPTURES:
        found |= set(analyse(path).summary.finding_counts)
    assert set(FIXES) == set(RULES)
    # rst-after-fin and open-at-end: the real capture of the browser test
    assert {"fin-unacked", "half-close-unanswered", "keepalive-one-sided", "keepalive-foreign",
            "reset-foreign", "zero-window-at-close"} <= found


def test_the_capture_what_was_skipped_and_why(tmp_path):
    res = analyse(DATA / "retransmitted_fin.pcap", filter=None)
    seen = text(page([res]))
    assert "link types 1 ETHERNET" in seen and "interfaces 1 (number 0)" in seen
    assert "records 7" in seen and "TCP packets 7" in seen
    assert "2023-11-14 22:13:20.000 to 2023-11-14 22:13:22.400 UTC (2.400s)" in seen
    assert "Nothing: every record was a TCP packet and was analysed." in seen
    # a capture cut mid-record, a filter: said with their numbers
    cut = tmp_path / "cut.pcap"
    cut.write_bytes((DATA / "retransmitted_fin.pcap").read_bytes()[:-30])
    from tcplinger.wire.filter import compile_filter
    res = analyse(cut, filter=compile_filter("src host 10.1.0.1"))
    seen = text(page([res], filter_text="src host 10.1.0.1"))
    assert "TCP packets left out by --filter src host 10.1.0.1" in seen
    assert "ends in the middle of a record" in seen
    empty = tmp_path / "header_only.pcap"
    empty.write_bytes((DATA / "retransmitted_fin.pcap").read_bytes()[:24])
    seen = text(page([analyse(empty)]))
    assert "link types - interfaces - records 0" in seen and "Findings from the packets (0)" in seen
    two = analyse(DATA / "pcapng_two_interfaces.pcapng")
    assert "interfaces 2 (number 0 eth0, 1)" in text(page([two]))  # if_name of 0


def test_hostile_names_are_escaped(tmp_path):
    evil = tmp_path / "<script>alert(1)<\\script>&'.pcap"
    shutil.copy(DATA / "seed000_ipfw_keepalives.pcap", evil)
    out = page([analyse(evil)], filter_text='"><img src=x onerror=alert(2)>')
    self_contained(out)
    assert "<script>alert" not in out and "&lt;script&gt;alert(1)&lt;\\script&gt;&amp;" in out
    assert "<img" not in out
    # the command quotes the name for a shell, then the page escapes it
    assert html.escape(f"tcplinger pcap '{evil}'\"'\"'.pcap") not in out
    assert "tcplinger pcap " + html.escape("'" + str(evil).replace("'", "'\"'\"'") + "'") in out


def _with_idb_options(src: bytes, options: bytes) -> bytes:
    """A little-endian pcapng with each Interface Description Block's
    options replaced by ``options`` (code u16, length u16, value padded to
    4; the caller ends them)."""
    import struct

    out, pos = b"", 0
    while pos < len(src):
        btype, blen = struct.unpack_from("<II", src, pos)
        if btype == 1:
            body = src[pos + 8:pos + 16] + options
            out += struct.pack("<II", 1, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
        else:
            out += src[pos:pos + blen]
        pos += blen
    return out


def _option(code: int, value: bytes) -> bytes:
    import struct

    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


@pytest.mark.parametrize("options,shown", [
    # if_tsoffset 2^62 s with if_tsresol of whole seconds: gmtime() raised
    # EOVERFLOW, "tcplinger: Value too large for defined data type", exit 1
    (_option(9, b"\x00") + _option(14, (1 << 62).to_bytes(8, "little")),
     "4.61339e+18 s to 6.31169e+18 s UTC"),
    (_option(14, (-(1 << 62)).to_bytes(8, "little", signed=True)),
     "-4.61169e+18 s to -4.61168e+18 s UTC"),
], ids=["offset-2^62-s", "offset-minus-2^62-s"])
def test_timestamps_no_clock_can_show(tmp_path, options, shown):
    path = tmp_path / "odd.pcapng"
    path.write_bytes(_with_idb_options((DATA / "pcapng_two_interfaces.pcapng").read_bytes(),
                                       options + _option(0, b"")))
    seen = text(page([analyse(path)]))
    assert shown in seen


def test_interface_names_one_printable_line(tmp_path):
    """An if_name with a newline, an escape sequence, a tab, a byte that
    is no UTF-8 and a right-to-left override: "?" each (U+FFFD for the
    byte) on the page and in the JSON; before, the page carried them raw."""
    path = tmp_path / "names.pcapng"
    path.write_bytes(_with_idb_options((DATA / "pcapng_two_interfaces.pcapng").read_bytes(),
                                       _option(2, b"eth\n0\x1b[31m\t\xff\xe2\x80\xaez")
                                       + _option(0, b"")))
    res = analyse(path)
    assert res.counts.to_json()["interfaces"] == [{"number": 0, "name": "eth?0?[31m?\ufffd?z"},
                                                 {"number": 1, "name": "eth?0?[31m?\ufffd?z"}]
    out = page([res])
    assert "\x1b" not in out and "interfaces 2 (number 0 eth?0?[31m?\ufffd?z, 1 eth?0?[31m?" \
        in text(out)


def test_chinese_page():
    res = analyse(DATA / "seed000_ipfw_keepalives.pcap")
    out = page([res], lang="zh")
    seen = text(out)
    msg = Messages("zh")
    assert '<html lang="zh">' in out and "报文中的发现（4）" in seen
    assert "按 Zeek conn_state 统计的连接" in seen and "Zeek 的 history 字母" in seen
    for f in res.summary.findings:
        names = dict(zip(("orig", "resp"), f.conn.split(" → ")))
        assert wire_view.finding_text(f, names, msg) in seen
    [one_sided] = [f for f in res.summary.findings if f.rule == "keepalive-one-sided"]
    assert msg("wire.fix.firewall_keepalive", **fix_fields(one_sided)) in seen


def test_bounded_when_a_capture_has_thousands_of_findings():
    """10,000 findings of one rule (Summary keeps that many): the card
    lists ROWS of them and counts the rest; the page stays small."""
    res = analyse(DATA / "retransmitted_fin.pcap")
    f = res.summary.findings[0]
    many = [dataclasses.replace(f, uid=f"C{i}") for i in range(10_000)]
    res.summary.findings[:] = many
    res.summary.finding_counts[f.rule] = 250_000  # exact count, beyond what is kept
    out = page([res])
    seen = text(out)
    assert "The connections behind it (250000)" in seen
    assert f"... and {250_000 - html_wire.ROWS} more (--json lists them all)" in seen
    behind = out[out.index("The connections behind it"):]
    assert behind[:behind.index("</details>")].count("<tr><td>C") == html_wire.ROWS
    assert len(out.encode()) < 400_000
