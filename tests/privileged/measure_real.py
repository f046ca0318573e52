"""Ground truth of the real-software cases, measured with the kernel's own
tools (ss, /proc/net/netstat, tcpdump), never with tcplinger. The figures
in docs/real-software.md come from this script:

    sudo python3 tests/privileged/measure_real.py apache|nginx-leaky|session|overflow

Each case runs in its own ``tl-t-*`` namespace (harness.netns), which is
removed, with every process it started, when the case ends.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import realsoft as rs  # noqa: E402
from harness import netns  # noqa: E402


def fins(pcap: Path, port: int) -> list[tuple[float, int]]:
    """(time, client port) of every FIN the server side sent."""
    out = subprocess.run(["tcpdump", "-r", str(pcap), "-n", "-tt",
                          f"tcp src port {port} and tcp[tcpflags] & tcp-fin != 0"],
                         capture_output=True, text=True).stdout
    got = []
    for line in out.splitlines():
        parts = line.split()
        got.append((float(parts[0]), int(parts[4].rstrip(":").rsplit(".", 1)[1])))
    return got


def apache(n: int = 20) -> None:
    """Apache KeepAliveTimeout 2 with clients that never close: when does
    Apache send its FIN, when does it close() (the owned FIN_WAIT2 becomes
    an orphan), what ss shows at each step."""
    with netns() as ns, rs.workdir() as d:
        rs.start_apache(ns, d, 8080, keepalive_timeout=2)
        pcap = d / "a.pcap"
        cap = ns.spawn(["tcpdump", "-i", "lo", "-n", "--immediate-mode", "-w", str(pcap),
                        "tcp port 8080"], stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        t0 = time.time()
        cli = rs.start_app(ns, "buggy_client", "127.0.0.1", 8080, n, ready_line=True)
        print(f"clients ready {time.time() - t0:.3f}s after start (pid {cli.pid})")
        first_owned = first_orphan_all = None
        while time.time() - t0 < 10:
            rows = ns.ss("tanp", states=("FIN_WAIT2",))
            owned = sum(1 for r in rows if r.get("users"))
            now = time.time() - t0
            if rows and owned and first_owned is None:
                first_owned = now
            if rows and not owned and first_orphan_all is None and first_owned is not None:
                first_orphan_all = now
                break
            time.sleep(0.05)
        time.sleep(0.5)
        cap.send_signal(2)
        cap.wait(timeout=5)
        f = fins(pcap, 8080)
        fin_lo, fin_hi = min(t for t, _ in f) - t0, max(t for t, _ in f) - t0
        print(f"Apache FINs: {len(f)}, at {fin_lo:.3f}..{fin_hi:.3f}s (tcpdump)")
        print(f"owned FIN_WAIT2 (apache2) first seen {first_owned:.3f}s; "
              f"all orphaned by {first_orphan_all:.3f}s (ss -tanp, 50 ms polls)")
        rows = ns.ss("tanoe", states=("FIN_WAIT2",))
        print("ss FIN_WAIT2:", len(rows), "timers:",
              sorted({(r["timer"] or {}).get("kind") for r in rows}, key=str),
              "max expires_ms", max((r["timer"] or {}).get("expires_ms", 0) for r in rows))
        print("ss CLOSE_WAIT:", len(ns.ss("tan", states=("CLOSE_WAIT",))))
        print("ss -tanp:\n" + ns.run(["ss", "-tanp"]).stdout[:600])


def nginx_leaky(requests_n: int = 40) -> None:
    """nginx (no upstream keep-alive) in front of a backend that never
    closes; then the same with upstream keep-alive."""
    for keep in (False, True):
        with netns() as ns, rs.workdir() as d:
            be = rs.start_app(ns, "leaky_backend", 8084, listen=8084)
            rs.start_nginx(ns, d, 8080, 8084, upstream_keepalive=keep)
            before = rs.tcpext(ns)
            ns.run(["ab", "-q", "-c", "1", "-n", str(requests_n), "http://127.0.0.1:8080/"])
            time.sleep(0.5)
            after = rs.tcpext(ns)
            print(f"upstream keepalive={keep}: {requests_n} requests (ab -c 1)")
            print("  ss states:", rs.count_ss(ns))
            print("  towards :8084:", rs.count_ss(ns, "dport = :8084"),
                  " on :8084:", rs.count_ss(ns, "sport = :8084"))
            print("  TW delta", after["TW"] - before["TW"],
                  "overflow delta", after["TCPTimeWaitOverflow"] - before["TCPTimeWaitOverflow"])
            print("  backend pid", be.pid, "holds:",
                  ns.run(["ss", "-tanp", "state", "close-wait"]).stdout.count(f"pid={be.pid},"))


def session(jobs: int = 12) -> None:
    """requests.Session per job, never closed, against nginx's own
    keepalive_timeout 2 s (nginx as origin, no proxying)."""
    with netns() as ns, rs.workdir() as d:
        rs.start_nginx(ns, d, 8080, 8084, origin=True)
        t0 = time.time()
        w = rs.start_app(ns, "session_worker", "http://127.0.0.1:8084/", jobs, 0.05,
                         ready_line=True)
        print(f"worker pid {w.pid} did {jobs} jobs in {time.time() - t0:.2f}s")
        for wait in (1.0, 3.0):
            time.sleep(wait)
            print(f"t={time.time() - t0:.1f}s ss:", rs.count_ss(ns, "sport = :8084 or dport = :8084"))
        print(ns.run(["ss", "-tanpo", "sport = :8084 or dport = :8084"]).stdout[:900])


def overflow(seconds: int = 20, interval: float = 3.0) -> None:
    """nginx without upstream keep-alive under ab -c 10, tcp_max_tw_buckets
    512: the active-close rate from TW + TCPTimeWaitOverflow over an
    interval, against count / 60 s."""
    with netns({"net.ipv4.tcp_max_tw_buckets": 512}) as ns, rs.workdir() as d:
        rs.start_nginx(ns, d, 8080, 8084, origin=True)
        load = rs.ab(ns, "http://127.0.0.1:8080/", concurrency=10, seconds=seconds)
        time.sleep(4)
        for _ in range(3):
            b = rs.tcpext(ns)
            t = time.monotonic()
            time.sleep(interval)
            a = rs.tcpext(ns)
            dt = time.monotonic() - t
            c = rs.count_ss(ns)
            tw = c.get("TIME_WAIT", 0)
            print(f"over {dt:.2f}s: TW +{a['TW'] - b['TW']}, TCPTimeWaitOverflow "
                  f"+{a['TCPTimeWaitOverflow'] - b['TCPTimeWaitOverflow']} -> "
                  f"{rs.active_closes(b, a) / dt:.0f} active closes/s; ss TIME_WAIT {tw} "
                  f"(count/60s = {tw / 60:.2f}/s); states {c}")
        print("TIME_WAIT by side:", "server :8080", len(ns.ss("tan", "sport = :8080", states=("TIME_WAIT",))),
              "upstream :8084 (server)", len(ns.ss("tan", "sport = :8084", states=("TIME_WAIT",))),
              "towards :8084 (client)", len(ns.ss("tan", "dport = :8084", states=("TIME_WAIT",))))
        load.wait(timeout=seconds + 30)
        print(load.stdout.read()[-700:])


CASES = {"apache": apache, "nginx-leaky": nginx_leaky, "session": session, "overflow": overflow}

if __name__ == "__main__":
    for name in sys.argv[1:] or CASES:
        print(f"==== {name}")
        CASES[name]()
