#!/usr/bin/env python3
"""What ``tcplinger watch`` costs: CPU per sample on a real population, the
tracepoint source's throughput, and the database size at steady state.

    python bench/watch_overhead.py cpu --sockets 100k --interval 1 --samples 30 [--churn 1000]
    python bench/watch_overhead.py trace --rate 20000 --seconds 5
    python bench/watch_overhead.py size --sockets 100k --interval 10 --days 30

``cpu`` builds a population with bench/popgen.py (its own namespace
``tl-bench-…``), runs the watch loop (app/watcher.Watcher, tracing
on) against it and reports the median and the mean CPU time (user+system,
all threads) per sample as a share of one core at that interval: the
median is a sample between full dumps, the mean carries the full dumps
(every ``--full-every`` s). ``--churn N`` opens and closes N connections a
second in another namespace ``tl-wchurn-…`` on the population's address
plan: state events on the watched sockets' own 4-tuples, from a namespace
the watcher does not watch (the tracepoint has no namespace filter).

``trace`` opens and closes loopback connections as fast as asked inside a
namespace ``tl-wb-…`` with a watcher tracing, and reports how many state
changes it made, how many events were read, and how many the kernel
reported lost.

``size`` writes the database a host of N sockets produces over ``--days``
with the real Store and its retention: every 5-minute bucket of the older
days as one rolled-up sample, the last ``raw`` day at every interval, the
events of the lingering churn, and the live table of N sockets; then
checkpoints and reports the file size. The row counts per sample are those
of a host with ``--netns`` namespaces, every TCP state present in each, and
``--owners`` processes holding lingering sockets in each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import numpy as np  # noqa: E402

from tcplinger.model.socket import AgeSource  # noqa: E402
from tcplinger.track.store import CountRow, SampleInfo, Store  # noqa: E402
from tcplinger.track.events import Transition  # noqa: E402


def _count(text: str) -> int:
    text = text.lower()
    mult = {"k": 1000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * mult)


# ---- size -------------------------------------------------------------------

def sample_rows(t, netns: int, owners: int, sockets: int):
    counts, kernel = [], []
    per_ns = sockets // netns
    for ns in range(netns):
        for state in (1, 2, 3, 6, 10):  # ESTAB, SYN_SENT, SYN_RECV, TIME_WAIT, LISTEN
            counts.append(CountRow(ns, state, "", per_ns // 6))
        for o in range(owners):
            for state in (4, 5, 8, 9):  # FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK
                counts.append(CountRow(ns, state, f"{1000 + o}/java", 5 + o))
        for name in ("tcp_max_tw_buckets", "tcp_max_orphans", "tcp_fin_timeout",
                     "ephemeral_ports", "sockstat_inuse", "sockstat_orphan", "sockstat_tw",
                     "sockstat_alloc", "tcpext_TW", "tcpext_TWKilled", "tcpext_TCPTimeWaitOverflow",
                     "tcpext_TCPAbortOnTimeout", "tcpext_TCPAbortOnClose"):
            kernel.append((ns, name, 1000.0))
    return counts, kernel


def size(args) -> dict:
    sockets = _count(args.sockets)
    path = Path(args.db or tempfile.mkdtemp(prefix="tl-wsize-")) / "watch.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    day = 86400.0
    end = 2_000_000_000.0
    start = end - args.days * day
    t0 = time.time()
    events_per_sample = args.events_per_s * args.interval
    with Store(path) as store:
        owners = [(f"{1000 + o}/java", 1000 + o, "java", 65536, 100) for o in range(args.owners)]
        n_written = 0

        def write(t):
            nonlocal n_written
            counts, kernel = sample_rows(t, args.netns, args.owners, sockets)
            n_ev = int(events_per_sample)
            evs = [Transition(0, 10_000_000 + n_written * 100 + k, 1, 8, t - k * 0.01,
                              AgeSource.TRACE, 12.5, False, 2, ("10.0.0.1", 8080),
                              ("10.0.0.2", 40000 + k)) for k in range(n_ev)]
            store.write_sample(SampleInfo(t, args.interval, sockets, 0, "trace"), counts, kernel,
                               evs, owners)
            n_written += 1
        # older days: one sample per 5-minute bucket, then the retention rolls them up
        t = start
        raw_from = end - args.raw_days * day
        while t < raw_from:
            write(t)
            # the events of the whole bucket (the raw sample carries one interval's worth)
            t += 300.0
            if n_written % 2000 == 0:
                store.retain(t, raw_keep=0.0, keep=args.days * day)
        store.retain(raw_from, raw_keep=0.0, keep=args.days * day)
        # events of the older days: per bucket, 300 s worth (not one interval)
        extra = int(args.events_per_s * 300) - int(events_per_sample)
        if extra > 0:
            rows = []
            for b in np.arange(start, raw_from, 300.0):
                for k in range(extra):
                    rows.append((float(b) + k * 300.0 / extra, 0, 20_000_000 + len(rows), 1, 8,
                                 "trace", 12.5, 0, "10.0.0.1:8080", f"10.0.0.2:{40000 + k % 20000}"))
                if len(rows) > 200_000:
                    store.db.executemany("INSERT INTO events VALUES(?,?,?,?,?,?,?,?,?,?)", rows)
                    rows = []
            store.db.executemany("INSERT INTO events VALUES(?,?,?,?,?,?,?,?,?,?)", rows)
        # the last raw day, every interval
        t = raw_from
        while t < end:
            write(t)
            t += args.interval
        store.retain(end, raw_keep=args.raw_days * day, keep=args.days * day)
        # the live table: every socket of the host
        cookies = np.arange(1, sockets + 1, dtype=np.uint64)
        store.write_sample(SampleInfo(end, args.interval, sockets, 0, "trace"), [], live={
            0: (cookies, np.full(sockets, 1, np.uint8), np.full(sockets, end - 3600.0),
                np.full(sockets, 4, np.int8), np.zeros(sockets, bool))})
        rows = {tbl: store.db.execute(f"SELECT COUNT(*) FROM {tbl}").fetchone()[0]
                for tbl in ("counts", "kernel", "events", "live", "samples", "owners")}
    size_bytes = sum(os.path.getsize(str(path) + s) for s in ("", "-wal", "-shm")
                     if os.path.exists(str(path) + s))
    return {"sockets": sockets, "interval_s": args.interval, "days": args.days,
            "netns": args.netns, "owners_per_netns": args.owners,
            "events_per_s": args.events_per_s, "rows": rows, "bytes": size_bytes,
            "mib": round(size_bytes / 2**20, 1), "path": str(path),
            "build_seconds": round(time.time() - t0, 1)}


# ---- cpu --------------------------------------------------------------------

#: Connections opened and closed as fast as asked, in a namespace of their
#: own, on the address plan of bench/popgen.py's population (its first
#: holder's listener and source address): connect() picks its ports by a
#: hash of the addresses, not of the namespace, so these connections reuse
#: the watched sockets' 4-tuples, and the tracepoint (no namespace filter)
#: hands the watcher their events (docs/performance.md, "watch").
CHURN_PLAN = r'''
import signal, socket, sys, time
rate = float(sys.argv[1])
lst = socket.socket(); lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("127.1.0.1", 100)); lst.listen(4096)
n = 0; t0 = time.monotonic(); stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
print("ready", flush=True)
while not stop:
    c = socket.socket(); c.setsockopt(socket.SOL_IP, 24, 1)  # IP_BIND_ADDRESS_NO_PORT
    c.bind(("127.128.0.1", 0)); c.connect(("127.1.0.1", 100))
    s, _ = lst.accept(); s.close(); c.close(); n += 1
    ahead = t0 + n / rate - time.monotonic()
    if ahead > 0: time.sleep(ahead)
print(n, time.monotonic() - t0, flush=True)
'''


class Churn:
    """CHURN_PLAN at ``rate`` connections a second in namespace
    ``tl-wchurn-PID`` (removed on exit); ``result()``: connections made
    and seconds, once stopped."""

    def __init__(self, rate: float):
        self.rate, self.name, self.proc, self.out = rate, f"tl-wchurn-{os.getpid()}", None, None

    def __enter__(self) -> "Churn":
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        try:
            subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
            subprocess.run(["ip", "netns", "exec", self.name, "sysctl", "-qw",
                            "net.ipv4.ip_local_port_range=1024 65535"], check=True)
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.name, sys.executable,
                                          "-c", CHURN_PLAN, str(self.rate)],
                                         stdout=subprocess.PIPE, text=True)
            if self.proc.stdout.readline().strip() != "ready":
                raise RuntimeError("the churn did not start")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()  # ip netns exec execs python: this is the churn's own pid
            self.out = self.proc.communicate(timeout=30)[0].split()
            self.proc = None
        subprocess.run(["ip", "netns", "del", self.name])

    def result(self) -> dict:
        conns, secs = int(self.out[0]), float(self.out[1])
        return {"churn_connections_per_s": round(conns / secs),
                "churn_netns": self.name, "churn_asked_per_s": self.rate}


def cpu(args) -> dict:
    from contextlib import ExitStack

    from popgen import Population

    sockets = _count(args.sockets)
    with ExitStack() as stack:
        pop = stack.enter_context(Population(sockets, args.mix))
        churn = stack.enter_context(Churn(args.churn)) if args.churn else None
        result = _cpu_run(args, pop, sockets, stack.enter_context(tempfile.TemporaryDirectory()))
    if churn is not None:
        result |= churn.result()
    return result


def _cpu_run(args, pop, sockets: int, tmp: str) -> dict:
    from tcplinger.app.watcher import Watcher, WatchOptions
    from tcplinger.collect.snapshot import Scope
    opts = WatchOptions(Scope(netns=pop.netns), args.interval, Path(tmp) / "w.db",
                        trace=not args.no_trace, samples=args.samples,
                        owners=not args.no_owners, full_every=args.full_every)
    w = Watcher(opts)
    w.start_trace()
    store = Store(opts.db)
    wall0, cpu0 = time.monotonic(), time.process_time()
    try:
        w.run(store)
    finally:
        w.session_lost = w.session.lost() if w.session is not None else 0
        w.close()
        store.close()
    wall, total = time.monotonic() - wall0, time.process_time() - cpu0
    costs = w.sample_cost[1:]  # the first sample builds the tracker: not steady state
    return {"sockets": sockets, "mix": args.mix, "interval_s": args.interval,
            "samples": w.samples, "trace": w.age_source == "trace",
            "owners": opts.owners, "trace_events_lost": w.session_lost,
            "median_cpu_s_per_sample": round(statistics.median(costs), 4),
            "p90_cpu_s_per_sample": round(sorted(costs)[int(0.9 * (len(costs) - 1))], 4),
            "median_core_share": round(statistics.median(costs) / args.interval, 4),
            "mean_cpu_s_per_sample": round(statistics.fmean(costs), 4),
            # full dumps (ESTABLISHED too) every --full-every s: the mean
            # carries their cost, the median is a sample between them
            "full_dumps": w.full_dumps, "full_every_s": args.full_every,
            "mean_core_share": round(statistics.fmean(costs) / args.interval, 4),
            "whole_run_core_share": round(total / wall, 4),
            "population_build_s": round(pop.build_seconds, 1)}


# ---- trace ------------------------------------------------------------------

CHURN = r'''
import socket, sys, time
rate, secs = float(sys.argv[1]), float(sys.argv[2])
lst = socket.socket(); lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("127.0.0.1", 7000)); lst.listen(4096)
n = 0; t0 = time.time()
while time.time() - t0 < secs:
    c = socket.create_connection(("127.0.0.1", 7000)); s, _ = lst.accept()
    c.close(); s.close(); n += 1
    ahead = t0 + n * 10 / rate - time.time()   # 10 state changes a connection (measured)
    if ahead > 0: time.sleep(ahead)
print(n, time.time() - t0)
'''


def trace(args) -> dict:
    """The watcher's own reading path: one event, its kernel filter, raw
    chunks parsed in bulk (track/tracelines.py)."""
    from tcplinger.app.watcher import STATE_FILTER
    from tcplinger.collect import tracefs
    from tcplinger.track.tracelines import parse_chunk
    name = f"tl-wb-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        seen = [0, 0, 0]  # ours, all, lost notes

        def chunk(data: bytes) -> None:
            events, lost = parse_chunk(data)
            seen[1] += len(events)
            seen[2] += lost
            seen[0] += sum(1 for e in events if e.local[1] == 7000 or e.remote[1] == 7000)
        cpu0 = time.process_time()
        with tracefs.TraceSession("wbench", events=("sock/inet_sock_set_state",),
                                  filter=STATE_FILTER if args.filter else None, buffer_kb=4096,
                                  on_chunk=chunk, max_lines_per_s=args.max_lines) as sess:
            out = subprocess.run(["ip", "netns", "exec", name, sys.executable, "-c", CHURN,
                                  str(args.rate), str(args.seconds)], capture_output=True,
                                 text=True, check=True).stdout.split()
            time.sleep(1.0)
            sess.lost_in_pipe += seen[2]
            lost = sess.lost()
        cpu = time.process_time() - cpu0
        conns, secs = int(out[0]), float(out[1])
        return {"connections": conns, "seconds": round(secs, 2),
                "state_changes_per_s_made": round(conns * 10 / secs),
                "events_read_of_ours": seen[0], "events_read_all": seen[1],
                "events_lost_reported": lost,
                "events_of_ours_per_s": round(seen[0] / secs),
                "reader_cpu_core_share": round(cpu / (secs + 1.0), 3),
                "kernel_filter": args.filter, "max_lines_per_s": args.max_lines,
                "note": "events of every namespace of the host are read (no netns filter); "
                        "ours are those on port 7000"}
    finally:
        subprocess.run(["ip", "netns", "del", name])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("size")
    s.add_argument("--sockets", default="100k")
    s.add_argument("--interval", type=float, default=10.0)
    s.add_argument("--days", type=float, default=30.0)
    s.add_argument("--raw-days", type=float, default=1.0)
    s.add_argument("--netns", type=int, default=10)
    s.add_argument("--owners", type=int, default=5)
    s.add_argument("--events-per-s", type=float, default=1.0)
    s.add_argument("--db", default=None)
    c = sub.add_parser("cpu")
    c.add_argument("--sockets", default="100k")
    c.add_argument("--mix", default="established=0.7,close-wait=0.1,fin-wait-2=0.1,time-wait=0.1")
    c.add_argument("--interval", type=float, default=1.0)
    c.add_argument("--samples", type=int, default=30)
    c.add_argument("--no-trace", action="store_true")
    c.add_argument("--no-owners", action="store_true")
    c.add_argument("--full-every", type=float, default=10.0,
                   help="seconds between full dumps (watch --full-every; 0: every sample)")
    c.add_argument("--churn", type=float, default=0.0,
                   help="connections a second opened and closed in another namespace on the"
                        " population's address plan (state events of colliding 4-tuples)")
    t = sub.add_parser("trace")
    t.add_argument("--rate", type=float, default=20000)
    t.add_argument("--seconds", type=float, default=5)
    t.add_argument("--filter", action="store_true", help="the watcher's kernel-side filter")
    t.add_argument("--max-lines", type=int, default=None, help="the reader's cap (lines/s)")
    args = ap.parse_args()
    result = {"size": size, "cpu": cpu, "trace": trace}[args.what](args)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
