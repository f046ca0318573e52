"""The diagnosis end to end, on real sockets in namespaces this test creates.

Each scenario builds the sockets (tests/privileged/holder.py, or a small
script for the two-namespace ones), runs ``tcplinger`` in process, and
checks the findings against what was built: who holds what, the lifetime
the kernel will give, the counters behind the claim. Namespaces are named
``tl-dx-<pid>-...`` and removed in ``finally``, processes ended by pid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged

from tcplinger.app import counters  # noqa: E402
from tcplinger.app.diagnosis import DiagnoseOptions, diagnose  # noqa: E402
from tcplinger.app.observation import ObserveOptions  # noqa: E402
from tcplinger.collect.owners import OwnerPolicy  # noqa: E402
from tcplinger.collect.snapshot import Scope  # noqa: E402

HOLDER = Path(__file__).with_name("holder.py")
TAG = f"tl-dx-{os.getpid() % 100000}"
_counter = [0]


def _name(what: str) -> str:
    _counter[0] += 1
    return f"{TAG}-{what}{_counter[0]}"


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, capture_output=True, text=True, **kw)


@contextmanager
def netns(what: str, **sysctls):
    name = _name(what)
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        for key, value in sysctls.items():
            sh("ip", "netns", "exec", name, "sysctl", "-qw", f"{key}={value}")
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


class Proc:
    """A Python process in a namespace that prints JSON lines and runs until
    its stdin closes; ended by pid."""

    def __init__(self, ns: str, argv: list[str]):
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, *argv],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def line(self, timeout: float = 20) -> dict:
        import select
        ready, _, _ = select.select([self.p.stdout], [], [], timeout)
        assert ready, "process printed nothing"
        text = self.p.stdout.readline()
        assert text, f"process ended (rc {self.p.poll()})"
        return json.loads(text)

    def send(self, text: str = "\n") -> None:
        self.p.stdin.write(text)
        self.p.stdin.flush()

    def close(self) -> None:
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()  # our own child, by its Popen (pid)
            self.p.wait()


@contextmanager
def holder(ns: str, owners: list[str], items: list[dict]):
    spec = {"name": "tl-holder", "owners": [{"name": o} for o in owners], "items": items}
    proc = Proc(ns, [str(HOLDER), json.dumps(spec)])
    try:
        yield proc.line()
    finally:
        proc.close()


@contextmanager
def script(ns: str, code: str):
    proc = Proc(ns, ["-c", code])
    try:
        yield proc
    finally:
        proc.close()


def report(cli, ns: str, *extra) -> dict:
    rc, out, err = cli("report", "--netns", ns, "--json", *extra)
    assert rc == 0, err
    return json.loads(out)


def by_rule(doc: dict, rule: str) -> list[dict]:
    return [f for f in doc["findings"] if f["rule"] == rule]


def pid_comm(owners: list[dict]) -> list[tuple]:
    """(pid, comm, inferred) of a finding's owners in JSON."""
    return [(o["pid"], o["comm"], o["inferred"]) for o in owners]


def wait_for(predicate, timeout: float, step: float = 0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


# ---------------------------------------------------------------- scenarios

def test_close_wait_leak_names_the_process(cli):
    with netns("cw") as ns, holder(ns, ["tl-leaker"], [
            {"kind": "close_wait", "family": "ipv4", "server": ["tl-leaker"]}] * 12) as built:
        born = time.monotonic()
        pid = built["owners"]["tl-leaker"]
        # young: nothing shows yet that they last (min_age 10 s): not an accusation
        [f] = by_rule(report(cli, ns), "close-wait-leak")
        assert f["severity"] == "info" and f["confidence"] == "low"
        time.sleep(max(0.0, 10.5 - (time.monotonic() - born)))
        doc = report(cli, ns)
        [f] = by_rule(doc, "close-wait-leak")
        assert pid_comm(f["owners"]) == [(pid, "tl-leaker", False)]
        py = os.path.basename(sys.executable)  # the holder runs under the tests' own interpreter
        assert f["owners"][0]["command"].startswith(f"{py} holder.py")
        assert f["count"] == 12 and f["severity"] == "warning"
        # The holder read each EOF before keeping the socket: Recv-Q 0.
        assert f["evidence"]["recv_q"] == {"eof_unread": 0, "eof_read": 12, "data_unread": 0}
        assert f["evidence"]["fds"]["open"] >= 12 and f["evidence"]["fds"]["soft_limit"]
        assert f["evidence"]["keepalive"]["without"] == 12
        assert len(f["sockets"]) == 12 and all(s["state"] == "CLOSE_WAIT" for s in f["sockets"])
        assert all(s["owners"][0]["pid"] == pid for s in f["sockets"])
        # The clients closed first: their orphaned FIN_WAIT2 are the other ends.
        assert {e["state"] for e in f["evidence"]["other_end"]} == {"FIN_WAIT2"}

        rc, out, _ = cli("report", "--netns", ns)
        flat = " ".join(out.split())  # findings wrap to the terminal
        assert f"tl-leaker (pid {pid}: {py} holder.py" in flat
        assert "holds 12 sockets in CLOSE_WAIT" in flat
        rc, out, _ = cli("--lang", "zh", "report", "--netns", ns)
        flat = " ".join(out.split())
        assert f"tl-leaker（pid {pid}：{py} holder.py" in flat
        assert "持有 12 个 CLOSE_WAIT 套接字" in flat
        rc, out, _ = cli("check", "--netns", ns)
        assert rc == 1 and out.startswith("TCPLINGER WARNING - ") and "close-wait-leak" in out


KEEPALIVE_LEAK = r'''
import json, socket, sys
l = socket.socket(); l.bind(("127.0.0.1", 7070)); l.listen(16)
keep = []
for i in range(12):
    c = socket.create_connection(("127.0.0.1", 7070)); s, _ = l.accept()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    c.close(); keep.append(s)
print(json.dumps({"ready": True}), flush=True); sys.stdin.read()
'''


def test_two_samples_prove_a_keepalive_leak_lasts(cli):
    """CLOSE_WAIT with SO_KEEPALIVE (1 s): the peer's orphan answers every
    probe, so tcp_info's last_ack_recv stays below ~1 s however old the
    socket is (measured: lastack 788-964 ms at 4-16 s). One snapshot
    cannot show the leak lasts; two over --interval 10 can (present in
    both: at least 10 s old, close-wait-leak's min_age)."""
    with netns("ka") as ns, script(ns, KEEPALIVE_LEAK) as proc:
        proc.line()
        time.sleep(3)
        [young] = by_rule(report(cli, ns), "close-wait-leak")
        assert young["severity"] == "info"
        assert young["evidence"]["age"]["oldest_s"] < 3  # the keepalive ACKs' bound
        doc = report(cli, ns, "--interval", "10")
        [f] = by_rule(doc, "close-wait-leak")
        assert f["severity"] == "warning" and f["evidence"]["older_than_min_age"] == 12
        ages = [s["age"] for s in f["sockets"]]
        assert all(a["source"] == "first_seen" and a["at_least"] and a["seconds"] >= 10
                   for a in ages), ages


def test_half_closed_fin_wait2_outlives_fin_timeout(cli):
    with netns("hc", **{"net.ipv4.tcp_fin_timeout": 2}) as ns, holder(ns, ["tl-half", "tl-srv"], [
            {"kind": "fin_wait2", "family": "ipv6", "client": ["tl-half"], "server": ["tl-srv"]}
    ]) as built:
        time.sleep(3.5)  # longer than tcp_fin_timeout: it does not apply
        doc = report(cli, ns)
        [f] = by_rule(doc, "half-closed-fin-wait-2")
        assert pid_comm(f["owners"]) == [(built["owners"]["tl-half"], "tl-half", False)]
        assert f["evidence"]["shutdown"]["send"] == 1 and f["evidence"]["tcp_fin_timeout"] == 2
        assert f["sockets"][0]["state"] == "FIN_WAIT2" and f["sockets"][0]["age"]["seconds"] >= 3
        # The other end is the server's CLOSE_WAIT, named as the cause.
        assert f["evidence"]["other_end"][0]["comm"] == "tl-srv"
        assert by_rule(doc, "orphan-fin-wait-2") == []


def test_orphan_fin_wait2_lifetime_and_time_left(cli):
    with netns("of", **{"net.ipv4.tcp_fin_timeout": 6}) as ns, holder(ns, ["tl-srv"], [
            {"kind": "close_wait", "family": "ipv4", "server": ["tl-srv"]}] * 3):
        built_at = time.monotonic()
        doc = report(cli, ns)
        [f] = by_rule(doc, "orphan-fin-wait-2")
        elapsed = time.monotonic() - built_at
        assert f["count"] == 3 and f["evidence"]["lifetime_s"] == 6.0
        left = f["evidence"]["time_left_s"]
        assert 6.0 - elapsed - 1.0 <= left["min"] <= left["max"] <= 6.0
        assert f["evidence"]["minisockets"] == 3
        # Gone when the lifetime says so (plus the timer wheel's slack).
        gone = wait_for(lambda: not by_rule(report(cli, ns), "orphan-fin-wait-2"),
                        timeout=6.0 - (time.monotonic() - built_at) + 3.0, step=0.5)
        assert gone
        assert time.monotonic() - built_at >= 5.0


def test_orphan_fin_wait2_above_60_s_has_two_phases(cli):
    with netns("of70", **{"net.ipv4.tcp_fin_timeout": 70}) as ns, holder(ns, ["tl-srv"], [
            {"kind": "close_wait", "family": "ipv4", "server": ["tl-srv"]}]):
        doc = report(cli, ns)
        [f] = by_rule(doc, "orphan-fin-wait-2")
        assert f["evidence"]["phases_s"] == {"full": 10.0, "minisocket": 10.0}
        assert f["evidence"]["lifetime_s"] == 20.0
        # A full socket with the keepalive timer, not yet a minisocket.
        assert f["evidence"]["full_sockets"] == 1
        assert f["sockets"][0]["timer"]["kind"] == "keepalive"
        assert 10.0 < f["evidence"]["time_left_s"]["max"] <= 20.0


def test_time_wait_overflow_with_few_buckets(cli):
    with netns("tw", **{"net.ipv4.tcp_max_tw_buckets": 4, "net.ipv4.tcp_fin_timeout": 5}) as ns, \
            holder(ns, [], [{"kind": "time_wait", "family": "ipv4", "client": [], "server": []}] * 10):
        doc = report(cli, ns)
        [f] = by_rule(doc, "time-wait-pressure")
        assert f["severity"] == "critical"
        assert f["evidence"]["time_wait"] == 4 and f["evidence"]["tcp_max_tw_buckets"] == 4
        assert f["evidence"]["TCPTimeWaitOverflow"] == 6
        assert f["evidence"]["client_side"] == 4
        # tcp_fin_timeout = 5 does not shorten TIME_WAIT: the timers say ~60 s.
        assert all(s["timer"]["expires_ms"] > 50_000 for s in f["sockets"])
        # Rising between two runs of `check --state`.
        state = Path(f"/tmp/{ns}.state")
        try:
            rc, out, _ = cli("check", "--netns", ns, "--state", str(state))
            assert rc == 2 and "time_wait=4" in out
            with holder(ns, [], [{"kind": "time_wait", "family": "ipv4", "client": [], "server": []}] * 3):
                d = diagnose(DiagnoseOptions(ObserveOptions(Scope(netns=ns))),
                             previous=counters.load(state))
                [f2] = [x for x in d.findings if x.rule == "time-wait-pressure"]
                assert f2.evidence["TCPTimeWaitOverflow_delta"] == 3
                assert any(t.key.endswith("fact.overflow_delta") for t in f2.facts)
        finally:
            state.unlink(missing_ok=True)


@contextmanager
def veth_pair(drop_fin_in_b: bool):
    a, b = _name("a"), _name("b")
    va, vb = f"tdx{os.getpid() % 10000}{_counter[0]}a", f"tdx{os.getpid() % 10000}{_counter[0]}b"
    sh("ip", "netns", "add", a)
    sh("ip", "netns", "add", b)
    try:
        sh("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
        sh("ip", "link", "set", va, "netns", a)
        sh("ip", "link", "set", vb, "netns", b)
        for ns, dev, addr in ((a, va, "10.97.0.1/24"), (b, vb, "10.97.0.2/24")):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        if drop_fin_in_b:
            sh("ip", "netns", "exec", b, "nft",
               "add table inet tldx; add chain inet tldx in { type filter hook input priority 0; }; "
               "add rule inet tldx in tcp flags & fin == fin counter drop")
        yield a, b
    finally:
        sh("ip", "netns", "del", a, check=False)
        sh("ip", "netns", "del", b, check=False)


SERVER = """
import json, socket, sys
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], int(sys.argv[2]))); l.listen(16)
print(json.dumps({"ready": True}), flush=True)
held = []
l.settimeout(30)
for _ in range(int(sys.argv[3])):
    held.append(l.accept()[0])
print(json.dumps({"accepted": len(held)}), flush=True)
sys.stdin.readline()
"""

FIN_WAIT1_CLIENT = """
import ctypes, json, socket, sys
ctypes.CDLL(None).prctl(15, b"tl-fw1", 0, 0, 0)
orphan = socket.socket(); orphan.connect(("10.97.0.2", 9000))
owned = socket.socket(); owned.connect(("10.97.0.2", 9000))
ports = [orphan.getsockname()[1], owned.getsockname()[1]]
orphan.close()                   # FIN dropped: orphan FIN_WAIT1
owned.shutdown(socket.SHUT_WR)   # FIN dropped: FIN_WAIT1 still held
print(json.dumps({"ports": ports}), flush=True)
sys.stdin.readline()
"""


@pytest.mark.privileged(needs=("nft",))
def test_fin_wait1_stuck_behind_a_firewall_dropping_fins(cli):
    with veth_pair(drop_fin_in_b=True) as (a, b):
        with script(b, SERVER.replace("sys.argv[1], int(sys.argv[2])", '"10.97.0.2", 9000')
                    .replace("int(sys.argv[3])", "2")) as srv:
            srv.line()
            with script(a, FIN_WAIT1_CLIENT) as client:
                client.line()
                srv.line()
                time.sleep(2.0)  # 0.2 s RTO doubling: 3 retransmissions by now
                doc = report(cli, a)
                [f] = by_rule(doc, "fin-wait-1-stuck")
                ev = f["evidence"]
                assert ev["stuck"] == 2 and ev["orphans"] == 1 and ev["owned"] == 1
                assert ev["retransmitting"] == 2 and ev["max_retransmits"] >= 2
                assert ev["effective_orphan_retries"] == 8 and ev["tcp_retries2"] == 15
                assert pid_comm(f["owners"]) == [(client.p.pid, "tl-fw1", False)]
                assert ev["peers"][0]["address"] == "10.97.0.2"
                # About 104 s for the orphan with default retries, minus what passed.
                assert 90 < ev["time_left_s"]["min"] < 104


ORPHAN_RETRIES_CLIENT = """
import json, socket, sys
s = socket.socket(); s.connect(("10.97.0.2", 9000)); port = s.getsockname()[1]
s.close()
print(json.dumps({"port": port}), flush=True)
sys.stdin.readline()
"""


@pytest.mark.privileged(needs=("nft",))
def test_orphan_fin_wait1_ends_after_tcp_orphan_retries(cli):
    with veth_pair(drop_fin_in_b=True) as (a, b):
        sh("ip", "netns", "exec", a, "sysctl", "-qw", "net.ipv4.tcp_orphan_retries=2")
        with script(b, SERVER.replace("sys.argv[1], int(sys.argv[2])", '"10.97.0.2", 9000')
                    .replace("int(sys.argv[3])", "1")) as srv:
            srv.line()
            with script(a, ORPHAN_RETRIES_CLIENT) as client:
                client.line()
                start = time.monotonic()
                gone = wait_for(lambda: all(s["state"] != "FIN_WAIT1"
                                            for s in report(cli, a)["summary"][0]["states"]),
                                timeout=10, step=0.2)
                took = time.monotonic() - start
                assert gone
                # Kernel: 4 RTO firings from ~0.2 s, about 3.1-3.3 s (diagnose.lifetimes).
                assert 2.0 < took < 8.0


@contextmanager
def routed(close_wait_timeout: int):
    """client 10.96.1.1 -- router (forwarding, conntrack, drops INVALID) -- server 10.96.2.1"""
    cl, rt, sv = _name("cl"), _name("rt"), _name("sv")
    k = f"{os.getpid() % 10000}{_counter[0]}"
    links = [(f"tdr{k}a", f"tdc{k}"), (f"tdr{k}b", f"tds{k}")]
    for n in (cl, rt, sv):
        sh("ip", "netns", "add", n)
    try:
        for n in (cl, rt, sv):
            sh("ip", "-n", n, "link", "set", "lo", "up")
        (r1, c1), (r2, s1) = links
        sh("ip", "link", "add", r1, "type", "veth", "peer", "name", c1)
        sh("ip", "link", "add", r2, "type", "veth", "peer", "name", s1)
        for dev, n in ((c1, cl), (r1, rt), (r2, rt), (s1, sv)):
            sh("ip", "link", "set", dev, "netns", n)
        for n, dev, addr in ((cl, c1, "10.96.1.1/24"), (rt, r1, "10.96.1.254/24"),
                             (rt, r2, "10.96.2.254/24"), (sv, s1, "10.96.2.1/24")):
            sh("ip", "-n", n, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", n, "link", "set", dev, "up")
        sh("ip", "-n", cl, "route", "add", "default", "via", "10.96.1.254")
        sh("ip", "-n", sv, "route", "add", "default", "via", "10.96.2.254")
        sh("ip", "netns", "exec", rt, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "netns", "exec", rt, "nft",
           "add table inet tldx; add chain inet tldx fw { type filter hook forward priority 0; "
           "policy accept; }; add rule inet tldx fw ct state invalid counter drop")
        sh("ip", "netns", "exec", rt, "sysctl", "-qw",
           f"net.netfilter.nf_conntrack_tcp_timeout_close_wait={close_wait_timeout}")
        yield cl, rt, sv
    finally:
        for n in (cl, rt, sv):
            sh("ip", "netns", "del", n, check=False)


ROUTED_SERVER = """
import ctypes, json, socket, sys
ctypes.CDLL(None).prctl(15, b"tl-ctsrv", 0, 0, 0)
l = socket.socket(); l.bind(("10.96.2.1", 9000)); l.listen(8)
print(json.dumps({"ready": True}), flush=True)
busy, _ = l.accept()            # an idle established flow: conntrack keeps tracking
half, _ = l.accept()
assert half.recv(10) == b""     # the client shut down its side: CLOSE_WAIT
print(json.dumps({"close_wait": half.getsockname()[1]}), flush=True)
sys.stdin.readline()
half.close()                    # the FIN conntrack no longer knows: INVALID
print(json.dumps({"closed": True}), flush=True)
sys.stdin.readline()
"""

ROUTED_CLIENT = """
import json, socket, sys
busy = socket.socket(); busy.connect(("10.96.2.1", 9000))
half = socket.socket(); half.connect(("10.96.2.1", 9000))
half.shutdown(socket.SHUT_WR)   # kept: FIN_WAIT2 until the server's FIN comes
print(json.dumps({"port": half.getsockname()[1]}), flush=True)
sys.stdin.readline()
"""


@pytest.mark.privileged(needs=("nft",))
def test_conntrack_router_forgets_close_wait(cli):
    with routed(close_wait_timeout=3) as (cl, rt, sv):
        with script(sv, ROUTED_SERVER) as srv:
            srv.line()
            with script(cl, ROUTED_CLIENT) as client:
                client.line()
                srv.line()
                time.sleep(4.5)  # older than conntrack's 3 s close_wait timeout
                seen = ObserveOptions(Scope(netns=sv), OwnerPolicy(walk=True))
                d = diagnose(DiagnoseOptions(seen), extra_scopes=(Scope(netns=rt),))
                [f] = [x for x in d.findings if x.rule == "conntrack-mismatch"]
                assert f.netns.name == sv and f.evidence["conntrack_netns"] == rt
                assert f.evidence["nf_conntrack_tcp_timeout_close_wait"] == 3
                assert f.evidence["close_wait"] == 1 and f.evidence["age"]["oldest_s"] > 3
                assert f.confidence.value == "low" and not f.evidence["same_namespace"]
                assert [(o.pid, o.comm) for o in f.owners] == [(srv.p.pid, "tl-ctsrv")]
                # What the finding warns of: the server's FIN now dies at the router.
                srv.send()
                srv.line()
                time.sleep(2.5)
                doc = report(cli, sv)
                [stuck] = by_rule(doc, "last-ack-stuck")
                assert stuck["evidence"]["orphans"] == 1
                assert stuck["evidence"]["max_retransmits"] >= 2
                drops = sh("ip", "netns", "exec", rt, "nft", "list", "chain", "inet", "tldx",
                           "fw").stdout
                assert "counter packets 0 " not in drops
                client_doc = report(cli, cl)
                assert by_rule(client_doc, "half-closed-fin-wait-2")


KEEPALIVE_FACTS = """
import json, socket, sys, time
def w(k, v): open("/proc/sys/net/ipv4/" + k, "w").write(str(v))
w("tcp_keepalive_time", 1); w("tcp_keepalive_intvl", 1); w("tcp_keepalive_probes", 2)
w("tcp_fin_timeout", 1)
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
out = {}
keep = {}
for name, ka in (("plain", 0), ("keepalive", 1)):
    c = socket.socket(); c.connect(l.getsockname()); s, _ = l.accept()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, ka)
    c.close()                  # orphan FIN_WAIT2 for 1 s, then gone: the peer vanishes
    keep[name] = s
time.sleep(4)
for name, s in keep.items():
    st = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
    out[name] = {"tcp_state": st, "so_error": s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR),
                 "fd_open": s.fileno() >= 0}
print(json.dumps(out), flush=True)
sys.stdin.readline()
"""


def test_keepalive_ends_close_wait_only_with_so_keepalive_and_a_gone_peer(cli):
    with netns("ka") as ns, script(ns, KEEPALIVE_FACTS) as p:
        facts = p.line()
        assert facts["plain"] == {"tcp_state": 8, "so_error": 0, "fd_open": True}  # CLOSE_WAIT
        # Reset by the RST the gone peer sent to the probe: CLOSE, EPIPE, fd still open.
        assert facts["keepalive"] == {"tcp_state": 7, "so_error": 32, "fd_open": True}
        doc = report(cli, ns)
        [f] = by_rule(doc, "close-wait-leak")
        assert f["count"] == 1  # the reset one has left the dump, its fd has not
        assert f["evidence"]["keepalive"]["without"] == 1
        [folk] = by_rule(doc, "sysctl-folklore")
        assert folk["evidence"] == {"item": "keepalive_vs_close_wait", "tcp_keepalive_time": 1,
                                    "close_wait_without_keepalive": 1}


def test_healthy_namespace_has_no_warning(cli):
    with netns("ok") as ns, holder(ns, ["tl-web", "tl-cli"], [
            {"kind": "listen", "family": "ipv4", "server": ["tl-web"]},
            {"kind": "established", "family": "ipv4", "client": ["tl-cli"], "server": ["tl-web"]},
            {"kind": "established", "family": "ipv6", "client": ["tl-cli"], "server": ["tl-web"]},
    ]):
        doc = report(cli, ns)
        assert doc["findings"] == [] and doc["worst"] is None
        rc, out, _ = cli("check", "--netns", ns)
        assert rc == 0 and out.startswith("TCPLINGER OK - ")
        rc, out, _ = cli("--netns", ns)  # the default command is report
        assert rc == 0 and "No lingering-connection problem found." in out
