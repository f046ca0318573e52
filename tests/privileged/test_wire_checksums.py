"""``tcplinger pcap --checksums`` against tshark's checksum verdicts on a
real capture where one side's checksums are right and the other's are not.

Two namespaces joined by a veth pair; the client's end has transmit
checksum offload turned off (SIOCETHTOOL ETHTOOL_STXCSUM, the ioctl behind
``ethtool -K IFACE tx off``), so the kernel fills in its checksums; the
server's end keeps the offload, and a veth never fills them in (the skb
stays CHECKSUM_PARTIAL: the capture holds the pseudo-header's sum only).
tcpdump on the client's end sees both. tshark (``tcp.check_checksum``)
judges every frame; tcplinger's bad-checksum count must equal tshark's
count of bad frames, all from the server, and Zeek's history follows: the
server's packets are dropped (one ``c``, at the 1st; ``resp_pkts`` 0),
while without ``--checksums`` (``zeek -C``) the same file is a normal
connection.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import netns

pytestmark = pytest.mark.privileged(needs=("tcpdump", "tshark"))

SRC = str(Path(__file__).resolve().parents[2] / "src")

TX_CSUM_OFF = r"""
import ctypes, fcntl, socket, struct, sys
# struct ethtool_value {u32 cmd; u32 data;}: ETHTOOL_STXCSUM (0x17), 0
val = ctypes.create_string_buffer(struct.pack("II", 0x17, 0), 8)
ifr = struct.pack("16sP", sys.argv[1].encode(), ctypes.addressof(val))
fcntl.ioctl(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), 0x8946, ifr)  # SIOCETHTOOL
"""

SERVER = r"""
import socket
s = socket.socket(); s.bind(("10.77.0.2", 9000)); s.listen(8); print("up", flush=True)
for _ in range(3):
    a, _ = s.accept(); a.recv(100); a.sendall(b"w" * 300); a.close()
"""

CLIENT = r"""
import socket
for _ in range(3):
    c = socket.create_connection(("10.77.0.2", 9000)); c.sendall(b"hello"); c.recv(1000); c.close()
"""


def _sh(*argv):
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    path = tmp_path_factory.mktemp("csum") / "veth.pcap"
    tag = secrets.token_hex(3)
    cli_if, srv_if = f"tl-cc{tag}", f"tl-cs{tag}"
    with netns() as cli, netns() as srv:
        _sh("ip", "link", "add", cli_if, "netns", cli.name, "type", "veth", "peer", "name",
            srv_if, "netns", srv.name)
        _sh("ip", "-n", cli.name, "addr", "add", "10.77.0.1/24", "dev", cli_if)
        _sh("ip", "-n", srv.name, "addr", "add", "10.77.0.2/24", "dev", srv_if)
        _sh("ip", "-n", cli.name, "link", "set", cli_if, "up")
        _sh("ip", "-n", srv.name, "link", "set", srv_if, "up")
        cli.run([sys.executable, "-c", TX_CSUM_OFF, cli_if])
        dump = cli.spawn(["tcpdump", "-i", cli_if, "-n", "-U", "--immediate-mode", "-w",
                          str(path), "tcp"], stderr=subprocess.PIPE)
        while "listening" not in dump.stderr.readline().decode():
            pass
        server = srv.spawn([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "up"
        cli.run([sys.executable, "-c", CLIENT])
        server.wait(30)
        time.sleep(0.3)
        dump.send_signal(2)
        dump.wait(10)
        dump.stderr.close()
        server.stdout.close()
    return path


def _tcplinger(*args) -> dict:
    env = {**os.environ, "PYTHONPATH": SRC, "LANG": "C"}
    out = subprocess.run([sys.executable, "-m", "tcplinger", "pcap", "--json", *args],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)["files"][0]


def test_checksum_verdicts_match_tshark(capture):
    rows = subprocess.run(["tshark", "-n", "-r", str(capture), "-o", "tcp.check_checksum:TRUE",
                           "-T", "fields", "-e", "ip.src", "-e", "tcp.checksum.status"],
                          capture_output=True, text=True, check=True).stdout.split("\n")
    verdicts = [tuple(r.split("\t")) for r in rows if r]
    bad = [src for src, status in verdicts if status == "0"]  # 0 Bad, 1 Good, 2 unverified
    good = [src for src, status in verdicts if status == "1"]
    # the premise: the client's checksums filled in, the server's not
    assert bad and set(bad) == {"10.77.0.2"} and set(good) == {"10.77.0.1"}
    assert len(bad) + len(good) == len(verdicts)
    doc = _tcplinger("--checksums", str(capture))
    assert doc["counts"]["bad_checksum"] == len(bad)
    conns = doc["connections"]
    assert len(conns) == 3
    for c in conns:
        # the server's packets are dropped: its SYN-ACK never seen, its FIN
        # neither: the client's side alone, Zeek's SH with one c
        assert c["history"].count("c") == 1 and "C" not in c["history"], c["history"]
        assert c["resp_pkts"] == 0 and c["conn_state"] == "SH", c
    assert sum(c["orig_pkts"] for c in conns) == len(good)
    plain = _tcplinger(str(capture))  # as zeek -C: every packet counts
    assert plain["counts"]["bad_checksum"] == 0
    assert [c["conn_state"] for c in plain["connections"]] == ["SF"] * 3
    assert all("c" not in c["history"].lower() for c in plain["connections"])
    assert sum(c["resp_pkts"] for c in plain["connections"]) == len(bad)
