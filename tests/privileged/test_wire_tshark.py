"""``tcplinger pcap`` against tshark on a real capture: the same
conversations, packets and bytes.

Real traffic in a namespace this test creates (``tl-wt-<pid>``): a Python
server on loopback and 60 client connections of several kinds (a request
and an answer then a close from either side, a half-close left open, a
reset by SO_LINGER 0, a keep-alive probe), captured by tcpdump on ``lo``.
tshark's ``conv,tcp`` table counts frames and frame bytes per 4-tuple;
tcplinger's connections (Zeek's, which may split a 4-tuple on port reuse)
are summed per 4-tuple and their IP bytes plus 14 bytes of Ethernet
header per packet (the loopback's link layer) must give the same numbers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged(needs=("tcpdump", "tshark"))

SRC = str(Path(__file__).resolve().parents[2] / "src")

TRAFFIC = r"""
import socket, struct, sys, threading, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 8080)); srv.listen(128)
held = []
def serve():
    while True:
        s, _ = srv.accept()
        data = s.recv(100)
        if data.startswith(b"GET"):
            s.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 3000)
            if data.startswith(b"GET /close"):
                s.close()
            else:
                held.append(s)
        else:
            held.append(s)
threading.Thread(target=serve, daemon=True).start()
for i in range(60):
    # a port of its own each: connect() may otherwise take again a port a
    # reset (SO_LINGER 0: no TIME_WAIT) freed, and the two connections
    # share a 4-tuple (a CI run: 59 4-tuples, 14 RSTO)
    c = socket.create_connection(("127.0.0.1", 8080), source_address=("127.0.0.1", 40000 + i))
    kind = i % 4
    if kind == 0:
        c.sendall(b"GET /close"); c.recv(10000); time.sleep(0.01); c.close()
    elif kind == 1:
        c.sendall(b"GET /keep"); c.recv(10000); c.close()
    elif kind == 2:
        c.sendall(b"HALF"); c.shutdown(socket.SHUT_WR); held.append(c)
    else:
        c.sendall(b"GET /keep"); c.recv(10000)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
time.sleep(0.5)
print("done", flush=True)
time.sleep(60)  # held sockets stay open until the capture has stopped
"""


def _conv(text: str) -> dict:
    """tshark's conv,tcp rows: {(a, b): (frames, bytes)} with a < b."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"\s*(\S+)\s+<->\s+(\S+)\s+(.*)", line)
        if not m:
            continue
        cells = [n for n in re.split(r"\s+", m.group(3).strip())]
        # frames, bytes (with a unit word) for each direction and the total
        ints = []
        i = 0
        while i < len(cells) and len(ints) < 6:
            if cells[i].replace(",", "").isdigit():
                ints.append(int(cells[i].replace(",", "")))
                if i + 1 < len(cells) and cells[i + 1] in ("bytes", "kB", "MB"):
                    assert cells[i + 1] == "bytes", "use -o gui.conv... for large values"
                    i += 1
            i += 1
        out[tuple(sorted((m.group(1), m.group(2))))] = (ints[4], ints[5])
    return out


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    ns = f"tl-wt-{os.getpid()}"
    path = tmp_path_factory.mktemp("tshark") / "lo.pcap"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    dump = traffic = None
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        dump = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-i", "lo", "-n", "-U",
                                 "--immediate-mode", "-w", str(path), "tcp"],
                                stderr=subprocess.PIPE)
        while "listening" not in dump.stderr.readline().decode():
            pass
        traffic = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", TRAFFIC],
                                   stdout=subprocess.PIPE, text=True)
        assert traffic.stdout.readline().strip() == "done"
        time.sleep(0.2)
    finally:
        if dump is not None:
            dump.send_signal(2)
            dump.wait(10)
            dump.stderr.close()
        if traffic is not None:
            traffic.kill()
            traffic.wait(10)
            traffic.stdout.close()
        subprocess.run(["ip", "netns", "del", ns])
    return path


def test_conversations_packets_and_bytes_match_tshark(capture):
    env = {**os.environ, "PYTHONPATH": SRC, "LANG": "C"}
    ours = subprocess.run([sys.executable, "-m", "tcplinger", "pcap", "--json", str(capture)],
                          capture_output=True, text=True, env=env, check=True)
    theirs = subprocess.run(["tshark", "-n", "-r", str(capture), "-q", "-z", "conv,tcp"],
                            capture_output=True, text=True, check=True)
    conv = _conv(theirs.stdout)
    doc = json.loads(ours.stdout)["files"][0]
    mine: dict = {}
    for c in doc["connections"]:
        a = f"{c['id']['orig_h']}:{c['id']['orig_p']}"
        b = f"{c['id']['resp_h']}:{c['id']['resp_p']}"
        key = tuple(sorted((a, b)))
        pk = c["orig_pkts"] + c["resp_pkts"]
        by = c["orig_ip_bytes"] + c["resp_ip_bytes"] + 14 * pk
        old = mine.get(key, (0, 0))
        mine[key] = (old[0] + pk, old[1] + by)
    # 60 connections (the conn_states below) on 60 4-tuples (a source port each)
    assert len(conv) == 60
    assert mine == conv
    states = doc["summary"]["conn_states"]
    # closed both ways (SF); closed by the client only, the server holding
    # its socket (S2: the client's close, or its shutdown); reset (RSTO)
    assert states == {"SF": 15, "S2": 30, "RSTO": 15}, states
