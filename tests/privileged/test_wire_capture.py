"""``tcplinger capture`` and ``tcplinger report --capture`` on real sockets
in a namespace this test creates: 20 clients connect to a server that
never closes; 1.5 s into the capture each client shuts its side down
(SHUT_WR). The kernel then holds 20 CLOSE_WAIT (server) and 20 FIN_WAIT2
(clients, still owned): what the wire must say for the same 4-tuples is
that the client's FIN went out and was acknowledged, and that the server
never sent its own (Zeek S2, history ShAFa)."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged(needs=("tcpdump",))

SRC = str(Path(__file__).resolve().parents[2] / "src")
N = 20
SCRIPT = f"""
import socket, sys, time
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 8080)); l.listen(100)
print("ready", flush=True)
sys.stdin.readline()
cs = [socket.create_connection(("127.0.0.1", 8080)) for i in range({N})]
ss = [l.accept()[0] for i in range({N})]
time.sleep(0.3)
for c in cs:
    c.shutdown(socket.SHUT_WR)
print("closed", flush=True)
time.sleep(60)
"""


def _tcpdump_in(ns: str) -> bool:
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    for pid in pids.split():
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "tcpdump":
                return True
        except OSError:
            pass
    return False


def _run(ns, argv):
    """Start tcplinger, then (once its tcpdump runs in the namespace) the
    connections; returns tcplinger's exit code and output."""
    peer = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SCRIPT],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert peer.stdout.readline().strip() == "ready"
        env = {**os.environ, "PYTHONPATH": SRC, "LANG": "C"}
        tl = subprocess.Popen([sys.executable, "-m", "tcplinger", *argv], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 20
        while not _tcpdump_in(ns) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # "listening" comes a moment after the process exists
        peer.stdin.write("go\n")
        peer.stdin.flush()
        assert peer.stdout.readline().strip() == "closed"
        out, err = tl.communicate(timeout=60)
        return tl.returncode, out, err
    finally:
        peer.kill()
        peer.wait(10)


@pytest.fixture
def netns():
    name = f"tl-wc-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name])


def test_report_capture_puts_the_wire_next_to_the_sockets(netns):
    code, out, err = _run(netns, ["report", "--netns", netns, "--capture", "4", "--json"])
    assert code == 0, err
    doc = json.loads(out)
    rules = [f["rule"] for f in doc["findings"]]
    assert "close-wait-leak" in rules
    wire = doc["wire"]
    [cap] = wire["captures"]
    assert cap["summary"]["conn_states"] == {"S2": N}
    joined = {s["rule"]: s["sockets"] for s in wire["sockets"]}
    cw = joined["close-wait-leak"]
    assert cw and all(s["story"] == "wire.join.peer_fin_unanswered" for s in cw), cw
    for s in cw:
        assert (s["conn_state"], s["history"], s["side"], s["held_on_wire"]) == \
            ("S2", "ShAFa", "resp", "CLOSE_WAIT")
        assert s["local"] == "127.0.0.1:8080"
        # the FIN left ~0.5 s + 0.3 s after the capture began
        assert 0.3 < s["facts"]["at_s"] < 3.9, s
    fw2 = joined.get("half-closed-fin-wait-2", [])
    assert all(s["story"] == "wire.join.closed_unanswered" and s["side"] == "orig" and
               s["held_on_wire"] == "FIN_WAIT2" for s in fw2), fw2


def test_capture_command_analyses_what_it_captured(netns, tmp_path):
    keep = tmp_path / "c.pcap"
    code, out, err = _run(netns, ["capture", "--netns", netns, "--seconds", "3.5", "--write",
                                  str(keep), "--json"])
    assert code == 0, err
    doc = json.loads(out)
    [f] = doc["files"]
    assert f["summary"]["conn_states"] == {"S2": N}
    assert f["summary"]["held_at_end"] == {"FIN_WAIT2": N, "CLOSE_WAIT": N}
    assert keep.exists() and keep.stat().st_size > 24
    assert "captured" in err


@pytest.mark.parametrize("keep", [False, True], ids=["temporary", "written"])
def test_capture_command_writes_the_page(netns, tmp_path, keep):
    """``capture --html``: the page of what was captured, beside the text.
    Its commands name the packets' file only when ``--write`` keeps it: a
    temporary capture is deleted once the page is written."""
    page, pcap = tmp_path / "wire.html", tmp_path / "kept.pcap"
    code, out, err = _run(netns, ["capture", "--netns", netns, "--seconds", "3.5",
                                  "--html", str(page), *(["--write", str(pcap)] if keep else [])])
    assert code == 0, err
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "</html>" in html
    assert "CLOSE_WAIT" in html and "FIN_WAIT2" in html and ">S2<" in html, html[-3000:]
    assert "half-close-unanswered" in html
    assert not re.search(r"(src|href)=\"https?:", html)  # nothing to load
    assert str(page) in err  # "page written" said on stderr
    assert "S2" in out  # the text report is still printed
    draws = re.findall(r"tcplinger pcap (\S+) --uid C\d+ --svg", html)
    if keep:
        assert draws and set(draws) == {str(pcap)} and pcap.exists()
    else:
        assert not draws and "temporary file" in html
