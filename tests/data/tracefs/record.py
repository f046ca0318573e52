"""Record real trace_pipe lines for tests/unit/test_tracefs_parse.py.

Run as root: ``python tests/data/tracefs/record.py``. In a throwaway
namespace (``tl-lab-rec-<pid>``) it opens a loopback connection, closes the
client first (FIN_WAIT2 handed to a minisock), then the server (LAST_ACK),
then resets a second connection with SO_LINGER {1, 0}; once with the
default print format and once with ``options/fields``. Writes
``default.trace``/``fields.trace`` (the raw lines) and ``*.expected.json``
(what parse_line made of them, to review by eye once, then kept).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import time
from pathlib import Path

from tcplinger.collect import trace_events, tracefs
from tcplinger.collect.setns import run_in_netns

HERE = Path(__file__).resolve().parent
PORT = 20999


def traffic() -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", PORT))
    srv.listen()
    c = socket.create_connection(("127.0.0.1", PORT))
    a, _ = srv.accept()
    c.close()
    time.sleep(0.05)
    a.close()
    c = socket.create_connection(("127.0.0.1", PORT))
    a, _ = srv.accept()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    time.sleep(0.05)
    a.close()
    srv.close()


def record(name: str, fields: bool, ns: str) -> None:
    with tracefs.TraceSession(f"rec-{name}", filter=trace_events.port_filter([PORT]),
                              keep_raw=True, fields=fields) as ts:
        run_in_netns(f"/run/netns/{ns}", traffic)
        time.sleep(0.3)
    lines = [ln for ln in ts.raw if ln.strip()]
    (HERE / f"{name}.trace").write_text("\n".join(lines) + "\n")
    expected = []
    for ln in lines:
        ev = trace_events.parse_line(ln)
        expected.append(None if ev is None else {
            "t": ev.t, "event": ev.event, "local": list(ev.local), "remote": list(ev.remote),
            "oldstate": ev.oldstate, "newstate": ev.newstate, "cookie": ev.cookie})
    (HERE / f"{name}.expected.json").write_text(json.dumps(expected, indent=1) + "\n")


def main() -> None:
    ns = f"tl-lab-rec-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        record("default", False, ns)
        record("fields", True, ns)
    finally:
        subprocess.run(["ip", "netns", "del", ns])


if __name__ == "__main__":
    main()
