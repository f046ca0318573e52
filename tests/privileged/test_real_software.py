"""The diagnosis against real servers and clients (issue 11), each case in
namespaces the test creates and removes (realsoft.py, harness.netns):

* Apache 2.4 with clients that never close (seed 002): one
  keepalive-timeout-fin-wait-2 finding naming apache2 as the listener's
  owner and the client by pid and command line; its lingering close
  (owned FIN_WAIT2 for ~2 s) is at most INFO.
* nginx in front of a backend that never closes: close-wait-leak on the
  backend's pid and command line; none with upstream keep-alive.
* requests.Session per job, never closed, against nginx's keepalive_timeout.
* nginx without upstream keep-alive under ``ab -c 10`` with
  tcp_max_tw_buckets = 512: the active-close rate within ±30 % of TcpExt
  TW + TCPTimeWaitOverflow over the same interval (measured 4,300-8,600/s
  in 3 s windows against 512 / 60 s = 8.5/s from the count).

Expectations are the kernel's own numbers (ss, /proc/net/netstat) read
here, never tcplinger's. Timing: waits are "until ss shows it" with
generous deadlines; ages are compared with margins measured in
docs/real-software.md.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest
import realsoft as rs
from harness import netns, run_json, tcplinger_argv

from tcplinger.track.store import Store

pytestmark = [pytest.mark.privileged(needs=("apache2", "nginx", "ab")), pytest.mark.slow]


def report(ns, *extra) -> dict:
    return run_json(tcplinger_argv("report", "--netns", ns.name, "--json", *extra), timeout=120)


def by_rule(doc: dict, rule: str) -> list[dict]:
    return [f for f in doc["findings"] if f["rule"] == rule]


# Ground truth without `ss -p`: it reads every fd of the host, 13-17 s a
# call here while other work held many sockets (measured), longer than
# Apache's 2 s lingering close and a tenth of an orphan's life. `ss -e`
# gives each socket's inode (0: no file, an orphan); a process's own
# /proc/PID/fd gives the inodes it holds.

def orphans_on(ns, port: int) -> int:
    rows = ns.ss("tanoe", f"sport = :{port}", states=("FIN_WAIT2",))
    return sum(1 for r in rows if not r.get("inode"))


def socket_inodes(pid: int) -> set[int]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(int(link[8:-1]))
    return out


def held_by(ns, pid: int, state: str) -> int:
    rows = ns.ss("tanoe", states=(state,))
    mine = socket_inodes(pid)
    return sum(1 for r in rows if r.get("inode") in mine)


# ---- Apache: buggy clients, seed 002 -------------------------------------------------------

def test_apache_buggy_clients_seed_002():
    n = 20
    with netns() as ns, rs.workdir() as d:
        srv = rs.start_apache(ns, d, 8080, keepalive_timeout=2)
        client = rs.start_app(ns, "buggy_client", "127.0.0.1", 8080, n, ready_line=True)
        # keep-alive timeout 2 s, lingering close ~2 s: all orphaned by ~4.5 s (measured 4.25 s)
        rs.wait_for(lambda: orphans_on(ns, 8080) == n, 30, what="20 orphans on :8080")
        time.sleep(6)  # past min_age (5 s) after close()
        doc = report(ns)
        assert orphans_on(ns, 8080) == n
        [f] = by_rule(doc, "keepalive-timeout-fin-wait-2")
        assert f["severity"] == "warning"
        assert f["count"] == n
        server = f["owners"][0]
        assert server["comm"] == "apache2" and server["inferred"] and server["basis"] == "listener"
        assert server["pid"] in {srv.pid} | set(_children(srv.pid))
        clients = f["evidence"]["clients"]
        assert clients and clients[0]["pid"] == client.pid
        assert "buggy_client.py 127.0.0.1 8080 20" in clients[0]["command"]
        assert f["evidence"]["clients_close_wait"] == held_by(ns, client.pid, "CLOSE_WAIT") == n
        # Apache closed on its idle timeout: the clients' tcp_info shows the
        # FIN KeepAliveTimeout (2 s) after the response (measured 2.19 s)
        idle = f["evidence"]["idle_before_close"]
        assert idle["clients"] == n and 2.0 <= idle["median_s"] <= 3.0, idle
        assert not f["evidence"]["closed_after_response"]
        assert any(x["key"].endswith("fix.server_timeout") for x in f["fixes"])
        # the orphans are no longer orphan-fin-wait-2's
        assert not by_rule(doc, "orphan-fin-wait-2")
        # every age of the orphans is "since close", a lower bound
        ages = [s["age"] for s in f["sockets"]]
        assert ages and all(a["source"] == "since_close" and a["at_least"] for a in ages), ages
        # the clients' own leak is theirs (CLOSE_WAIT ~10 s old here: a
        # warning once past close-wait-leak's min_age), never Apache's
        assert all(x["owners"][0]["pid"] == client.pid for x in by_rule(doc, "close-wait-leak"))
        assert not [x for x in doc["findings"] if x["severity"] != "info"
                    and x["owners"] and x["owners"][0]["comm"] == "apache2"
                    and not x["owners"][0]["inferred"]]


def test_http_server_closes_after_each_response():
    """Python's http.server (HTTP/1.0: it closes every connection after its
    response) with the same clients: seed 002's orphans and CLOSE_WAIT,
    but no keep-alive timeout to blame or lower (the clients saw the FIN
    0 ms after the response; gunicorn's sync worker the same)."""
    n = 10
    with netns() as ns, rs.workdir() as d:
        srv = ns.spawn([sys.executable, "-m", "http.server", "8000", "--bind", "127.0.0.1",
                        "--directory", str(d)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        rs.wait_listen(ns, 8000)
        client = rs.start_app(ns, "buggy_client", "127.0.0.1", 8000, n, ready_line=True)
        rs.wait_for(lambda: orphans_on(ns, 8000) == n, 30, what="orphans on :8000")
        time.sleep(6)  # past min_age (5 s) after close()
        doc = report(ns)
        [f] = by_rule(doc, "keepalive-timeout-fin-wait-2")
        assert f["count"] == orphans_on(ns, 8000) == n
        assert f["severity"] == "warning"
        server = f["owners"][0]
        assert server["pid"] == srv.pid and server["basis"] == "listener"
        assert "-m http.server 8000" in server["command"]
        assert f["evidence"]["clients"][0]["pid"] == client.pid
        idle = f["evidence"]["idle_before_close"]
        assert idle["clients"] == n and idle["median_s"] < 0.5, idle
        assert f["evidence"]["closed_after_response"]
        assert "right after its response" in f["title"]
        # no keep-alive timeout to lower: the clients are the fix
        assert [x["key"].rsplit(".", 1)[-1] for x in f["fixes"] if x["kind"] == "app"] \
            == ["clients"], f["fixes"]


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


def test_apache_lingering_close_is_not_a_warning(cli):
    """Apache holds FIN_WAIT2 for its lingering close (~2 s, measured 2.05 s):
    a report taken inside that window must not accuse it."""
    with netns() as ns, rs.workdir() as d:
        rs.start_apache(ns, d, 8080, keepalive_timeout=2)
        for attempt in range(3):
            rs.start_app(ns, "buggy_client", "127.0.0.1", 8080, 20, ready_line=True)
            rs.wait_for(lambda: held_by_any(ns, 8080) > 0, 20, step=0.02,
                        what="apache2 holding FIN_WAIT2")
            code, out, err = cli("report", "--netns", ns.name, "--json")
            assert code == 0, err
            doc = json.loads(out)
            half = by_rule(doc, "half-closed-fin-wait-2")
            if half:
                break
            rs.wait_for(lambda: held_by_any(ns, 8080) == 0, 20, what="lingering close over")
        else:
            pytest.fail("three reports missed Apache's lingering close window")
        assert all(f["severity"] == "info" for f in half), [f["title"] for f in half]
        assert all(f["severity"] != "warning" or f["rule"] != "half-closed-fin-wait-2"
                   for f in doc["findings"])


def held_by_any(ns, port: int) -> int:
    """FIN_WAIT2 on ``port`` still held by a process (an inode: a file)."""
    rows = ns.ss("tanoe", f"sport = :{port}", states=("FIN_WAIT2",))
    return sum(1 for r in rows if r.get("inode"))


# ---- nginx in front of a backend that never closes ---------------------------------------

@pytest.mark.parametrize("upstream_keepalive", [False, True])
def test_nginx_leaky_backend(upstream_keepalive):
    requests_n = 40
    with netns() as ns, rs.workdir() as d:
        backend = rs.start_app(ns, "leaky_backend", 8084, listen=8084)
        rs.start_nginx(ns, d, 8080, 8084, upstream_keepalive=upstream_keepalive)
        ns.run(["ab", "-q", "-c", "1", "-n", str(requests_n), "http://127.0.0.1:8080/"])
        time.sleep(11)  # past close-wait-leak's min_age (10 s)
        doc = report(ns)
        held = held_by(ns, backend.pid, "CLOSE_WAIT")
        leaks = by_rule(doc, "close-wait-leak")
        if upstream_keepalive:
            assert held == 0 and not leaks
            return
        assert held == requests_n
        [f] = leaks
        assert f["severity"] == "warning"
        assert f["count"] == held
        assert f["owners"][0]["pid"] == backend.pid and not f["owners"][0]["inferred"]
        assert f["owners"][0]["command"].endswith("leaky_backend.py 8084")
        assert f["evidence"]["command"].endswith("leaky_backend.py 8084")
        assert "leaky_backend.py 8084" in f["title"]
        # nginx's orphans towards the backend, grouped by its address:port
        [o] = by_rule(doc, "orphan-fin-wait-2")
        assert o["count"] == len(ns.ss("tan", "dport = :8084", states=("FIN_WAIT2",)))
        assert o["evidence"]["groups"][0]["where"] == "127.0.0.1:8084"
        assert not any("Local ports" in fact for fact in o["facts"])


# ---- requests.Session per job, never closed ---------------------------------------------------

def test_requests_session_leak():
    jobs = 12
    with netns() as ns, rs.workdir() as d:
        srv = rs.start_nginx(ns, d, 8080, 8084, origin=True, keepalive_timeout=2)
        worker = rs.start_app(ns, "session_worker", "http://127.0.0.1:8084/", jobs, 0.05,
                              ready_line=True)
        rs.wait_for(lambda: held_by(ns, worker.pid, "CLOSE_WAIT") == jobs, 30,
                    what="the worker's CLOSE_WAIT")
        time.sleep(11)  # past min ages (close-wait-leak 10 s, orphans 5 s after close())
        doc = report(ns)
        [f] = by_rule(doc, "close-wait-leak")
        assert f["severity"] == "warning"
        assert f["count"] == held_by(ns, worker.pid, "CLOSE_WAIT") == jobs
        assert f["owners"][0]["pid"] == worker.pid
        assert "session_worker.py" in f["owners"][0]["command"]
        [k] = by_rule(doc, "keepalive-timeout-fin-wait-2")
        assert k["count"] == orphans_on(ns, 8084) == jobs
        assert k["owners"][0]["comm"] == "nginx" and k["owners"][0]["basis"] == "listener"
        assert k["owners"][0]["pid"] in {srv.pid} | set(_children(srv.pid))
        assert k["evidence"]["clients"][0]["pid"] == worker.pid


# ---- nginx TIME_WAIT overflow under ab ----------------------------------------------------------

class CounterSampler(threading.Thread):
    """TcpExt TW + TCPTimeWaitOverflow of a namespace every ~0.2 s, with
    wall-clock times: the truth over any window, by interpolation."""

    def __init__(self, ns):
        super().__init__(daemon=True)
        self.ns, self.t, self.v, self.stop = ns, [], [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            t0 = time.time()
            c = rs.tcpext(self.ns)
            t1 = time.time()
            self.t.append((t0 + t1) / 2)
            self.v.append(c["TW"] + c["TCPTimeWaitOverflow"])
            self.stop.wait(0.2)

    def at(self, when: float) -> float:
        i = bisect.bisect_left(self.t, when)
        assert 0 < i < len(self.t), "window outside the sampled series"
        t0, t1, v0, v1 = self.t[i - 1], self.t[i], self.v[i - 1], self.v[i]
        return v0 + (v1 - v0) * (when - t0) / (t1 - t0)


def test_nginx_time_wait_overflow_rate():
    buckets = 512
    with netns({"net.ipv4.tcp_max_tw_buckets": buckets}) as ns, rs.workdir() as d:
        rs.start_nginx(ns, d, 8080, 8084, origin=True)
        sampler = CounterSampler(ns)
        sampler.start()
        db = d / "watch.db"
        watch = subprocess.Popen(tcplinger_argv("watch", "--netns", ns.name, "--interval", "1", "--no-trace",
                                                "--db", str(db)),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        load = rs.ab(ns, "http://127.0.0.1:8080/", concurrency=10, seconds=40)
        try:
            rs.wait_for(lambda: rs.count_ss(ns).get("TIME_WAIT", 0) >= buckets, 20,
                        what="TIME_WAIT at the cap")
            # an empty watch database: no samples, and never the host's
            # default one (an explicit --db must exist, issue 13)
            with Store(d / "empty.db"):
                pass
            blind = report(ns, "--db", str(d / "empty.db"))
            doc = report(ns, "--interval", "3", "--db", str(d / "empty.db"))
            tw_now = rs.count_ss(ns).get("TIME_WAIT", 0)
            time.sleep(max(0.0, 8 - (time.time() - sampler.t[0])))  # watch samples for ~8 s
            watched = report(ns, "--db", str(db))
            time.sleep(0.5)
        finally:
            watch.terminate()  # our own child, by its Popen
            watch.wait(timeout=20)
            sampler.stop.set()
            sampler.join(timeout=5)
        assert load.poll() is None, "ab ended before the measurement"
        [f] = by_rule(doc, "time-wait-pressure")
        assert f["severity"] == "critical"  # TCPTimeWaitOverflow rising
        assert abs(f["count"] - tw_now) <= 0.02 * buckets
        rate = f["evidence"]["active_close_rate"]
        assert rate["source"] == "interval"
        truth = (sampler.at(rate["end"]) - sampler.at(rate["start"])) / rate["window_s"]
        print(f"tcplinger {rate['per_s']:.0f}/s, kernel counters {truth:.0f}/s over "
              f"{rate['window_s']:.2f}s", file=sys.stderr)
        assert truth > 100  # the cap is what hides it: 512 / 60 s is 8.5/s
        assert abs(rate["per_s"] - truth) <= 0.3 * truth
        # tune's value: the measured rate × 60 s, with headroom
        [fix] = [x for x in f["fixes"] if x["sysctl"] and x["sysctl"]["key"] == "tcp_max_tw_buckets"]
        assert fix["sysctl"]["value"] >= rate["per_s"] * 60
        assert not re.search(r"\b0 MiB", fix["text"])
        # culprits: nginx owns both listeners; the nginx workers are the
        # clients of :8084, seen connecting by the tracepoint over the
        # interval (each connection lives ~1 ms: gone before /proc is read)
        groups = {g["where"]: g for g in f["evidence"]["groups"]}
        assert {":8080", ":8084"} <= set(groups)
        assert all(c["comm"] == "nginx" and c["basis"] == "listener"
                   for w in (":8080", ":8084") for c in groups[w]["culprits"])
        clients = groups[":8084"]["clients"]
        assert clients and all(c["comm"] == "nginx" and c["basis"] in ("connects", "destination")
                               for c in clients), clients
        assert any("keepalive 32" in x["text"] for x in f["fixes"])
        assert any(c["comm"] == "ab" for c in groups[":8080"]["clients"])
        # one proxied request = ab's connection to :8080 + nginx's to :8084,
        # both closed first here: nginx's connects are half the active closes
        connects = sum(c.get("connects_per_s") or 0 for c in clients)
        print(f"nginx connects to :8084 {connects:.0f}/s, active closes {rate['per_s']:.0f}/s",
              file=sys.stderr)
        sample = f["evidence"]["connects_sample"]
        if clients[0]["basis"] == "connects":  # counts are lower bounds when events were lost
            assert connects <= 0.65 * rate["per_s"]
            assert sample["lost"] > 0 or connects >= 0.35 * rate["per_s"], sample
        # without a sampled rate: said so, and no number invented
        [b] = by_rule(blind, "time-wait-pressure")
        assert b["evidence"]["active_close_rate"] is None
        assert any("--interval" in fact for fact in b["facts"])
        # from the watch database's TcpExt samples (no --interval)
        [w] = by_rule(watched, "time-wait-pressure")
        wrate = w["evidence"]["active_close_rate"]
        assert wrate["source"] == "watch" and wrate["window_s"] >= 3
        wtruth = (sampler.at(wrate["end"]) - sampler.at(wrate["start"])) / wrate["window_s"]
        print(f"watch database {wrate['per_s']:.0f}/s, kernel counters {wtruth:.0f}/s over "
              f"{wrate['window_s']:.2f}s", file=sys.stderr)
        assert abs(wrate["per_s"] - wtruth) <= 0.3 * wtruth
