"""``tcplinger pcap --html`` on a real capture, rendered by a real browser.

In a namespace this test creates, tcpdump (``-i any``, as ``tcplinger
capture`` runs it) records 12 s of real sockets on the loopback:

* port 7401: three clients shut their side down (SHUT_WR) and the server
  never closes: half-close-unanswered (S2; FIN_WAIT2 against CLOSE_WAIT);
* port 7402: the client closes, the server then aborts with SO_LINGER 0:
  rst-after-fin;
* port 7403: the server (4 KiB receive buffer) never reads what the client
  sends, then shuts its side down: its window stays 0 to the end while the
  client probes it: zero-window-at-close;
* port 7404: an nftables rule in the namespace drops FINs on input, after
  tcpdump saw them (the tap is before netfilter): the client's FIN is sent
  again and again, never acknowledged: fin-unacked;
* port 7405: a connection that says hello and then nothing: open-at-end
  (a byte on port 7406 marks the end of the capture, 12 s later).

The page, in English and Chinese, goes through test_report_html's
``seen_in_browser`` (no console message, a screenshot that is not blank);
every finding's sentence and packets, and every fix and command of its
rule, must be in the rendered text.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged(needs=("chromium", "tcpdump", "nft"))

import harness  # noqa: E402
from test_report_html import seen_in_browser  # noqa: E402

CAPTURE_S = 12.0
SCRIPT = r"""
import socket, struct, sys, time
S = socket
def server(port, rcvbuf=None):
    l = S.socket(); l.setsockopt(S.SOL_SOCKET, S.SO_REUSEADDR, 1)
    if rcvbuf:
        l.setsockopt(S.SOL_SOCKET, S.SO_RCVBUF, rcvbuf)
    l.bind(("127.0.0.1", port)); l.listen(16); return l
ls = {p: server(p, 4096 if p == 7403 else None) for p in range(7401, 7407)}
def pair(port):
    c = S.create_connection(("127.0.0.1", port)); s, _ = ls[port].accept(); return c, s
print("ready", flush=True)
sys.stdin.readline()
keep = []
tick = pair(7406)
c, s = pair(7405); c.sendall(b"hello"); s.recv(5); keep += [c, s]
for _ in range(3):
    c, s = pair(7401); c.shutdown(S.SHUT_WR); keep += [c, s]
c, s = pair(7402); c.close(); time.sleep(0.2)
s.setsockopt(S.SOL_SOCKET, S.SO_LINGER, struct.pack("ii", 1, 0)); s.close()
c, s = pair(7403); c.setblocking(False)
try:
    while True:
        c.send(b"x" * 65536)
except BlockingIOError:
    pass
time.sleep(0.3); s.shutdown(S.SHUT_WR); keep += [c, s]
c, s = pair(7404); c.shutdown(S.SHUT_WR); keep += [c, s]
print("done", flush=True)
sys.stdin.readline()
tick[0].sendall(b"!"); tick[1].recv(1)  # the capture's last packets: 7405 idle until then
print("ticked", flush=True)
sys.stdin.readline()
"""
NFT = """table inet tl_wire_html {
  chain input { type filter hook input priority 0; tcp dport 7404 tcp flags & fin == fin drop; }
}"""
RULES = {"half-close-unanswered", "rst-after-fin", "zero-window-at-close", "fin-unacked",
         "open-at-end"}


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wire-html")
    path = tmp / "real.pcap"
    with harness.netns() as ns:
        ns.run(["nft", "-f", "-"], input=NFT)
        peer = ns.spawn([sys.executable, "-c", SCRIPT], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, text=True)
        assert peer.stdout.readline().strip() == "ready"
        # as collect/capture.py runs it (-Z root: the file in a root-only directory)
        dump = ns.spawn(["tcpdump", "-i", "any", "-n", "-Z", "root", "-s", "200",
                         "--immediate-mode", "-U", "-w", str(path), "tcp"],
                        stderr=subprocess.PIPE, text=True)
        said = [dump.stderr.readline() for _ in range(2)]  # "data link type" may come first
        assert any("listening on" in line for line in said), said
        t0 = time.monotonic()
        peer.stdin.write("go\n")
        peer.stdin.flush()
        assert peer.stdout.readline().strip() == "done"
        time.sleep(max(0.0, CAPTURE_S - (time.monotonic() - t0)))
        peer.stdin.write("tick\n")
        peer.stdin.flush()
        assert peer.stdout.readline().strip() == "ticked"
        time.sleep(0.5)
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=20)
        peer.stdin.write("end\n")
        peer.stdin.flush()
        peer.wait(timeout=10)
    yield path, tmp


def expected_text(path: Path, lang: str) -> list[str]:
    """Every finding's sentence and packets, every fix of its rule and the
    commands, as the page must show them (from the library, the same
    analysis)."""
    from tcplinger.app.pcap import PcapOptions, analyse_file
    from tcplinger.i18n import Messages
    from tcplinger.ui import wire as wire_view
    from tcplinger.wire.fixes import FIXES, fields

    msg = Messages(lang)
    res = analyse_file(path, PcapOptions((path,)))
    out, first = [], {}
    for f in res.summary.sorted_findings():
        names = dict(zip(("orig", "resp"), f.conn.split(" → ")))
        out.append(wire_view.finding_text(f, names, msg))
        if f.rule not in first:
            first[f.rule] = f
            out += [wire_view.evidence_line(p, f.ts, names, msg) for p in f.evidence]
    for rule, f in first.items():
        for fx in FIXES[rule]:
            out.append(msg(fx.key, **fields(f)))
            if fx.command:
                out.append(fx.command.format(**fields(f)))
    return out


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_wire_page_of_a_real_capture_in_a_real_browser(capture, lang):
    path, tmp = capture
    page, shot = tmp / f"wire-{lang}.html", tmp / f"wire-{lang}.png"
    p = subprocess.run(harness.tcplinger_argv("--lang", lang, "pcap", str(path), "--json",
                                              "--html", str(page)),
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "LANG": "C"})
    assert p.returncode == 0, p.stderr
    [doc] = json.loads(p.stdout)["files"]
    assert {f["rule"] for f in doc["findings"]} == RULES, doc["findings"]
    source = page.read_text()
    assert "<script" not in source and "default-src 'none'" in source

    dom, text = seen_in_browser(page, shot)
    for piece in expected_text(path, lang):
        assert " ".join(piece.split()) in text, piece
    assert dom.count("<details") == len(RULES)  # each rule's connections, folded
    assert "<svg" in dom and "FIN_WAIT2" in dom and "CLOSE_WAIT" in dom
    assert ("Zeek's history letters" if lang == "en" else "Zeek 的 history 字母") in text
