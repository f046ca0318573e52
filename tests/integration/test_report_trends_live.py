"""`tcplinger report --db FILE --json` in process, on a real CLOSE_WAIT
socket on loopback held by this process, with a synthetic watch database
saying that this process's CLOSE_WAIT grow +12/min: the finding carries
the growth and the time to this process's real RLIMIT_NOFILE."""

from __future__ import annotations

import json
import os
import resource
import socket
import time

import pytest

from tcplinger.track.store import CountRow, SampleInfo, Store


@pytest.fixture
def close_wait():
    """One accepted socket whose peer closed: CLOSE_WAIT, held by us."""
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(1)
    cli = socket.create_connection(lsn.getsockname())
    conn, _ = lsn.accept()
    cli.close()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # the FIN is processed in softirq
        time.sleep(0.01)
        if conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
            break
    try:
        yield conn
    finally:
        conn.close()
        lsn.close()


def build(path, ns: int, pid: int, now: float, step: float = 60.0, hours: float = 3.0):
    with Store(path) as s:
        n = int(hours * 3600 / step)
        for i in range(n + 1):
            t = now - hours * 3600 + i * step
            cw = int(1 + 12 * i * step / 60)
            s.write_sample(SampleInfo(t, step, cw, 0, "first_seen"),
                           [CountRow(ns, 8, f"{pid}/python", cw)], [(ns, "ephemeral_ports", 28232)],
                           owners=[(f"{pid}/python", pid, "python", 1024, cw + 10)])


def test_report_json_has_growth_against_the_real_fd_limit(cli, tmp_path, close_wait):
    ns = os.stat("/proc/thread-self/ns/net").st_ino
    pid = os.getpid()
    build(tmp_path / "w.db", ns, pid, time.time())
    code, out, err = cli("report", "--db", str(tmp_path / "w.db"), "--json", "--owners",
                         "--rule", "close-wait-leak", width=100)
    assert code == 0, err
    doc = json.loads(out)
    [f] = [f for f in doc["findings"] if f["evidence"]["pid"] == pid]
    g = f["evidence"]["growing"]
    assert g["per_minute"] == pytest.approx(12, rel=0.02)
    assert g["window_s"] == pytest.approx(3 * 3600)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    fds = f["evidence"]["fds"]
    if soft == resource.RLIM_INFINITY:
        assert g["limit"] is None and g["time_to_limit_s"] is None
    else:
        # the fd usage read now, not the database's (1024)
        assert g["limit"] == soft == fds["soft_limit"] and g["current"] == fds["open"]
        assert g["time_to_limit_s"] == pytest.approx((soft - fds["open"]) / 0.2, rel=0.02)
        assert any("RLIMIT_NOFILE" in x and "+12/min" in x for x in f["facts"])
