"""Clients that connect once and exit (curl or wget in a shell loop, cron
jobs) leave their TIME_WAIT behind with no process: the report names them
from the state-change tracepoint, with the details read while they lived,
next to a process that holds a connection to the same destination now.

Real sockets in a namespace this test creates and removes: a server that
answers and waits for the client to close (so the client closes first and
holds the TIME_WAIT), one long-lived client holding a connection, and a
shell loop of one-shot Python clients, each its own process that exits
within ~50 ms. Before, the one-shot clients were gone when the tracepoint's
threads were placed at the end of ``--interval`` (counted "unplaced"), and
a holder of a connection to the destination hid every connecting process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
from harness import netns, run_json, tcplinger_argv

pytestmark = pytest.mark.privileged

PORT = 8090

SERVER = textwrap.dedent(f"""
    import socket, threading
    def serve(c):
        with c:
            while c.recv(4096):  # answer each request; close after the client
                c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", {PORT})); s.listen(128)
    print("ready", flush=True)
    while True:
        threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
""")

HOLDER = textwrap.dedent(f"""
    import socket, time
    s = socket.create_connection(("127.0.0.1", {PORT}))
    print("ready", flush=True)
    time.sleep(600)
""")

ONE_SHOT = (f"import socket; s = socket.create_connection(('127.0.0.1', {PORT})); "
            "s.sendall(b'GET / HTTP/1.1\\r\\n\\r\\n'); s.recv(100); s.close()  # oneshot-client")


def time_waits(ns) -> int:
    return len(ns.ss("tan", states=("TIME_WAIT",)))


def test_one_shot_clients_are_named_after_they_exit():
    with netns() as ns:
        for script in (SERVER, HOLDER):
            proc = ns.spawn([sys.executable, "-c", script], stdout=-1, text=True)
            assert proc.stdout.readline().strip() == "ready"
        loop = ns.spawn(["sh", "-c", f'while :; do "$0" -c "$1"; done', sys.executable,
                         ONE_SHOT], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time_waits(ns) < 10:
            assert time.monotonic() < deadline, "no TIME_WAIT from the one-shot clients"
            assert loop.poll() is None
            time.sleep(0.2)
        doc = run_json(tcplinger_argv("report", "--netns", ns.name, "--json", "--interval", "3",
                                      "--threshold", "time-wait-pressure.info_count=1"),
                       timeout=120)
    [f] = [f for f in doc["findings"] if f["rule"] == "time-wait-pressure"]
    groups = {g["where"]: g for g in f["evidence"]["groups"]}
    culprits = groups[f"127.0.0.1:{PORT}"]["culprits"]
    # the holder first, by the connection it holds now
    assert culprits[0]["basis"] == "destination", culprits
    assert culprits[0]["command"].startswith("python3 -c import socket, time"), culprits
    # then the one-shot clients, gone before the interval ended, named by
    # the command line read while they lived: one entry for all of them
    [seen] = culprits[1:]
    assert seen["basis"] == "connects" and seen["comm"] == "python3", culprits
    assert seen["command"].startswith("python3 -c import socket; s ="), seen
    window = f["evidence"]["connects_sample"]["window_s"]
    # each process connected once at least (the rate is rounded to 0.001/s)
    assert seen["processes"] >= 2 and round(seen["connects_per_s"] * window) >= seen["processes"]
    assert f["evidence"]["connects_sample"]["unplaced"] <= seen["processes"]
    facts = " ".join(f["facts"])
    assert f"processes, e.g. pid {seen['pid']}" in facts and "seen opening" in facts
