"""``tcplinger kill`` against a real kernel, in throwaway namespaces ``tl-k-…``.

Three holder processes (the script below, run with ``ip netns exec``) each
listen on their own port and hold three CLOSE_WAIT sockets (their clients
closed: those are orphaned FIN_WAIT2 minisockets, unowned), one
ESTABLISHED pair, and leave one TIME_WAIT and one orphaned FIN_WAIT1 (FIN
stuck behind a zero window). On command a holder reports what its
CLOSE_WAIT sockets now see: send(), recv(), send() again.

What Linux 6.18 did when these tests were written (docs/act.md):

* ``kill --pid P --yes`` ended exactly P's three CLOSE_WAIT sockets; the
  other holders' were untouched; P's first send() on each failed with
  ECONNABORTED, recv() still returned b"" (end of file), a second send()
  EPIPE; P's peers (orphaned FIN_WAIT2) got the RST and were gone too.
* TIME_WAIT, orphaned FIN_WAIT2 and orphaned FIN_WAIT1 were ended (the
  probe on sockets of tcplinger's own said they could be); ending a
  FIN_WAIT2 minisocket sent nothing: its CLOSE_WAIT peer stayed.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged

import harness  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"
PORTS = (7101, 7102, 7103)

HOLDER = r'''
import errno, json, socket, sys, time
port = int(sys.argv[1])
lst = socket.socket(); lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("127.0.0.1", port)); lst.listen(64)

def pair():
    c = socket.create_connection(("127.0.0.1", port)); s, _ = lst.accept(); return c, s

close_wait = []
for _ in range(3):
    c, s = pair(); c.close(); close_wait.append(s)          # s: CLOSE_WAIT, c: orphan FIN_WAIT2
est = pair()                                               # ESTABLISHED both ends
c, s = pair(); c.close(); time.sleep(0.05); s.close()      # c: TIME_WAIT
c, s = pair()                                              # s: orphan FIN_WAIT1 (zero window)
c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.setblocking(False)
try:
    while True:
        s.send(b"\0" * 65536)
except BlockingIOError:
    pass
fw1 = s.getsockname()[1], s.getpeername()[1]
s.close()
stuck_reader = c                                           # never reads: keeps the window at 0
print(json.dumps({"close_wait": [x.getpeername()[1] for x in close_wait],
                  "fin_wait1_peer": stuck_reader.getsockname()[1]}), flush=True)

def name(e):
    return errno.errorcode.get(e.errno, str(e.errno))

for line in sys.stdin:
    if line.strip() != "probe":
        continue
    out = []
    for x in close_wait:
        r = {}
        try:
            x.send(b"x"); r["send"] = "ok"
        except OSError as e:
            r["send"] = name(e)
        x.settimeout(2)
        try:
            r["recv"] = repr(x.recv(10))
        except OSError as e:
            r["recv"] = name(e)
        try:
            x.send(b"x"); r["send2"] = "ok"
        except OSError as e:
            r["send2"] = name(e)
        out.append(r)
    print(json.dumps(out), flush=True)
'''


class Holder:
    def __init__(self, ns: harness.Netns, port: int):
        self.port = port
        self.proc = ns.spawn([sys.executable, "-c", HOLDER, str(port)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        self.info = self._line()

    def _line(self, timeout: float = 10) -> object:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError(f"holder {self.port} silent: {self.proc.stderr.read()}")
        return json.loads(self.proc.stdout.readline())

    def probe(self) -> list[dict]:
        self.proc.stdin.write("probe\n")
        self.proc.stdin.flush()
        return self._line()


@pytest.fixture
def world():
    with harness.netns(prefix="tl-k-") as ns:
        holders = [Holder(ns, p) for p in PORTS]
        _wait(lambda: len(_ss(ns, "fin-wait-1")) == 3 and len(_ss(ns, "close-wait")) == 9)
        yield ns, holders


def _wait(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def _ss(ns: harness.Netns, state: str | None = None) -> set[tuple]:
    """(state, local, remote) of every socket, as ss sees it."""
    argv = ["ss", "-N", ns.name, "-t", "-a", "-n", "-H"]
    if state:
        argv += ["state", state]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rows = set()
    for line in out.splitlines():
        f = line.split()
        if state:
            rows.add((state, f[2], f[3]))
        else:
            rows.add((f[0], f[3], f[4]))
    return rows


def _ports(rows, port: int, side: int = 1) -> set[tuple]:
    return {r for r in rows if r[side].endswith(f":{port}")}


def tcplinger(*args, input=None) -> tuple[int, dict | str, str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "LANG": "C"}
    p = subprocess.run(harness.tcplinger_argv(*args), capture_output=True, text=True,
                       env=env, input=input, timeout=120)
    try:
        out = json.loads(p.stdout)
    except json.JSONDecodeError:
        out = p.stdout
    return p.returncode, out, p.stderr


def test_dry_run_changes_nothing(world, tmp_path):
    ns, holders = world
    log = tmp_path / "audit.jsonl"
    before = _ss(ns)
    code, doc, err = tcplinger("kill", "--netns", ns.name, "--state",
                               "close-wait,fin-wait-2,time-wait,fin-wait-1", "--json",
                               "--audit-log", str(log))
    assert code == 0, err
    assert doc["dry_run"] is True and "results" not in doc
    assert sorted(t["state"] for t in doc["targets"]) == sorted(
        ["CLOSE_WAIT"] * 9 + ["FIN_WAIT2"] * 9 + ["TIME_WAIT"] * 3 + ["FIN_WAIT1"] * 3)
    cw = [t for t in doc["targets"] if t["state"] == "CLOSE_WAIT"]
    assert all(t["peer_sees"] == "rst" and t["owners"] for t in cw)
    assert {t["owners"][0]["pid"] for t in cw} == {h.pid for h in holders}
    assert all(t["peer_sees"] == "nothing" for t in doc["targets"]
               if t["state"] in ("TIME_WAIT", "FIN_WAIT2"))
    assert _ss(ns) == before
    assert not log.exists()


def test_kill_pid_ends_exactly_its_sockets(world, tmp_path):
    ns, holders = world
    victim = holders[1]
    log = tmp_path / "audit.jsonl"
    before = _ss(ns)
    fds_before = len(os.listdir(f"/proc/{victim.pid}/fd"))
    code, doc, err = tcplinger("kill", "--netns", ns.name, "--pid", str(victim.pid), "--yes",
                               "--json", "--audit-log", str(log))
    assert code == 0, err
    assert doc["summary"]["ended"] == 3 and len(doc["results"]) == 3
    # The connections are gone, the owner's fds are not (docs/act.md): the
    # process keeps every fd until it calls close().
    fds_after = len(os.listdir(f"/proc/{victim.pid}/fd"))
    assert fds_after == fds_before
    assert doc["owner_fds"] == [{"pid": victim.pid, "comm": "python3", "sockets": 3,
                                 "fds_before": fds_before, "fds_after": fds_after,
                                 "nofile_limit": doc["owner_fds"][0]["nofile_limit"]}]
    print(f"\nowner pid {victim.pid}: {fds_before} open fds before ending its 3 CLOSE_WAIT, "
          f"{fds_after} after")
    assert {t["owners"][0]["pid"] for t in doc["targets"]} == {victim.pid}
    after = _ss(ns)
    gone = before - after
    # its three CLOSE_WAIT, and their peers (orphaned FIN_WAIT2) reset by tcp_abort()'s RST
    assert {r[0] for r in gone} == {"CLOSE-WAIT", "FIN-WAIT-2"} and len(gone) == 6
    assert all(victim.port in (int(r[1].rsplit(":", 1)[1]), int(r[2].rsplit(":", 1)[1]))
               for r in gone)
    for h in holders:
        left = {r for r in _ss(ns, "close-wait") if r[1].endswith(f":{h.port}")}
        assert len(left) == (0 if h is victim else 3)
    # the victim's listener and ESTABLISHED pair are untouched
    assert any(r[0] == "LISTEN" and r[1].endswith(f":{victim.port}") for r in after)
    # the pair, and the reader that keeps the orphaned FIN_WAIT1 at a zero window
    assert len([r for r in after if r[0] == "ESTAB" and f":{victim.port}" in r[1] + r[2]]) == 3
    # what the owner sees (docs/act.md)
    assert victim.probe() == [{"send": "ECONNABORTED", "recv": "b''", "send2": "EPIPE"}] * 3
    # the audit log: intent, then result, same run, the same cookies
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["event"] for r in recs] == ["kill.start", "kill.result"]
    assert recs[0]["run"] == recs[1]["run"] == doc["run"]
    assert recs[0]["who"]["uid"] == 0 and "kill" in recs[0]["who"]["argv"]
    assert sorted(s["cookie"] for s in recs[0]["sockets"]) == sorted(
        r["cookie"] for r in recs[1]["results"])
    assert {r["result"] for r in recs[1]["results"]} == {"ended"}


def test_max_is_honoured(world, tmp_path):
    ns, _ = world
    code, doc, err = tcplinger("kill", "--netns", ns.name, "--state", "close-wait", "--max", "2",
                               "--yes", "--json", "--audit-log", str(tmp_path / "a.jsonl"))
    assert code == 0, err
    assert doc["summary"]["ended"] == 2 and doc["left_out"]["over_max"] == 7
    assert len(_ss(ns, "close-wait")) == 7


def test_listen_and_established_refused(world, tmp_path):
    ns, holders = world
    log = tmp_path / "a.jsonl"
    before = _ss(ns)
    code, doc, err = tcplinger("kill", "--netns", ns.name, "--state", "listen,established",
                               "--yes", "--json", "--audit-log", str(log))
    assert code == 6, err  # every selected socket refused: nothing done
    assert err.splitlines()[-1] == ("kill: nothing was done: every selected socket was "
                                    "refused (exit 6)")
    assert doc["targets"] == [] and doc["results"] == []
    reasons = sorted(r["reason"] for r in doc["refused"])
    # per holder: the pair, and the reader keeping the FIN_WAIT1 orphan at a zero window
    assert reasons == ["established"] * 9 + ["listen"] * 3
    assert _ss(ns) == before
    assert not log.read_text()  # nothing done, nothing logged
    port = holders[0].port
    code, doc, err = tcplinger("kill", "--netns", ns.name, "--state", "listen,established",
                               "--port", str(port), "--include-established", "--yes", "--json",
                               "--audit-log", str(log))
    assert code == 0, err
    assert [r["reason"] for r in doc["refused"]] == ["listen"]
    # both ends of the pair are in this namespace: ending one resets the other
    # (tcp_abort's RST), so the second destroy finds it gone (ENOENT)
    assert len(doc["targets"]) == 3
    assert (doc["summary"]["ended"], doc["summary"]["already_gone"]) == (2, 1)
    assert not any(r[0] == "ESTAB" for r in _ports(_ss(ns), port, 1) | _ports(_ss(ns), port, 2))
    assert any(r[0] == "LISTEN" for r in _ports(_ss(ns), port))


def test_timewait_and_orphans_where_the_kernel_can(world, tmp_path):
    ns, holders = world
    code, doc, err = tcplinger("kill", "--netns", ns.name, "--state",
                               "time-wait,fin-wait-2,fin-wait-1", "--port", str(holders[2].port),
                               "--yes", "--json", "--audit-log", str(tmp_path / "a.jsonl"))
    assert code == 0, err
    kernel = doc["kernel"]
    assert kernel["probed_in"] == "private"
    for kind, states, n in (("timewait", ("TIME-WAIT", "FIN-WAIT-2"), 4),
                            ("orphan", ("FIN-WAIT-1",), 1)):
        left = [r for r in _ports(_ss(ns), holders[2].port, 2) | _ports(_ss(ns), holders[2].port)
                if r[0] in states]
        if kernel[kind]["status"] == "works":
            assert sum(1 for t in doc["targets"] if t["kind"] == kind) == n
            assert not left
        else:  # a kernel that cannot: refused, warned, left alone
            assert sum(1 for r in doc["refused"] if r["kind"] == kind) == n
            assert any("warning" in w for w in doc["kernel_warnings"])
            assert len(left) == n
    assert doc["summary"]["ended"] == len(doc["targets"])
    # a minisocket's end sends nothing: the holder's CLOSE_WAIT sockets are still there
    assert len(_ports(_ss(ns, "close-wait"), holders[2].port)) == 3


def test_older_than_uses_known_ages_only(world):
    ns, _ = world
    code, doc, err = tcplinger("kill", "--netns", ns.name, "--state", "time-wait,close-wait",
                               "--older-than", "1h", "--json")
    assert code == 0, err
    assert doc["targets"] == []
    # TIME_WAIT ages are exact (timer) and younger: not counted as unknown;
    # CLOSE_WAIT ages are only lower bounds (tcp_info), below 1 h: left out, counted
    assert doc["left_out"]["age_unknown"] == 9
    code, doc, err = tcplinger("kill", "--netns", ns.name, "--state", "time-wait",
                               "--older-than", "0s", "--json")
    assert len(doc["targets"]) == 3 and all(t["age"]["source"] == "timer" for t in doc["targets"])


def test_cookie_ends_one_socket(world, tmp_path):
    ns, _ = world
    code, doc, _ = tcplinger("kill", "--netns", ns.name, "--state", "close-wait", "--json")
    one = doc["targets"][4]
    code, doc, err = tcplinger("kill", "--netns", ns.name, "--cookie", str(one["cookie"]),
                               "--yes", "--json", "--audit-log", str(tmp_path / "a.jsonl"))
    assert code == 0, err
    assert [r["cookie"] for r in doc["results"]] == [one["cookie"]]
    assert doc["results"][0]["result"] == "ended"
    assert len(_ss(ns, "close-wait")) == 8
    # the same cookie again: gone now, nothing else matches
    code, doc, err = tcplinger("kill", "--netns", ns.name, "--cookie", str(one["cookie"]),
                               "--yes", "--json", "--audit-log", str(tmp_path / "a.jsonl"))
    assert code == 0 and doc["targets"] == [] and len(_ss(ns, "close-wait")) == 8


def test_unprivileged_dry_run_and_refused_act(world, tmp_path):
    """Without capabilities, run inside the namespace (no setns needed): the
    plan is made (a sock_diag dump needs no privilege), every destroy
    answers EPERM (exit 4), and the probe, which cannot unshare a private
    namespace, says SOCK_DESTROY is denied."""
    ns, _ = world
    env = {**os.environ, "PYTHONPATH": str(SRC), "LANG": "C"}
    argv = ["ip", "netns", "exec", ns.name, "setpriv", "--bounding-set=-all",
            "--inh-caps=-all", *harness.tcplinger_argv(
                "kill", "--state", "close-wait", "--yes", "--json",
                "--audit-log", str(tmp_path / "a.jsonl"))]
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    doc = json.loads(p.stdout)
    assert p.returncode == 4, p.stderr
    assert {r["result"] for r in doc["results"]} == {"not_permitted"}
    assert doc["kernel"]["full"]["status"] == "denied"
    assert len(_ss(ns, "close-wait")) == 9
