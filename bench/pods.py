#!/usr/bin/env python3
"""A node with many pod namespaces: tcplinger --all-netns against a loop of
``ip netns exec NS ss -tan`` over them (issue 16).

    python bench/pods.py [--netns 150] [--repeat 3] [--baseline DIR]

The benchmark runs in a PID and mount namespace of its own (it re-executes
itself under ``unshare --pid --fork --mount-proc --mount``), with a private
tmpfs on /run/netns: tcplinger's discovery (``/proc/*/ns/net`` and
/run/netns) sees this node's pods and nothing of the other jobs on the
machine, and everything (namespaces, holders) goes when the benchmark's
PID namespace ends, also on SIGKILL.

Each pod is a network namespace ``tl-pods-<pid>-<i>`` with its loopback up
and one holder process inside (forked, then setns()), which keeps 46
sockets: 2 LISTEN, 15 established pairs (30 ESTAB), 7 half-closed pairs
(client ``shutdown(SHUT_WR)``: 7 FIN-WAIT-2 + 7 CLOSE-WAIT), none timing
out.  A pod's sockets are held by a process of its namespace, as on a
Kubernetes node.

Measured, interleaved, ``--repeat`` rounds after one warm-up (wall clock,
CPU of the tree from ``wait4()``, peak RSS from GNU time, as
bench/timed_run.py's ``run_once``):

=============  ============================================================
loop-ss        ``for ns in PODS; do ip netns exec $ns ss -tan; done``
loop-ss-p      the same with ``ss -tanp``
tl-stats       ``tcplinger stats --all-netns``
tl-report      ``tcplinger --all-netns`` (the report)
tl-textfile    ``tcplinger exporter --all-netns --textfile DIR`` (one
               scrape, process start included)
tl-scrape      ``GET /metrics`` of ``tcplinger exporter --all-netns``
               running on 127.0.0.1 (a steady-state scrape: the exporter
               was scraped once before; CPU is the exporter's, from
               /proc/PID/stat)
=============  ============================================================

Ratios are to loop-ss of the same run.  With ``--baseline DIR`` every tl-*
command also runs from another checkout (``PYTHONPATH=DIR/src``), in the
same rounds.  Results go to bench/results/pods-<UTC>.json (git-ignored).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from compare import loadavg, write_results  # noqa: E402  (bench/ is not a package)
from timed_run import compile_sources, run_once  # noqa: E402

PYTHON = os.path.realpath(sys.executable)
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
INNER = "TL_PODS_INNER"


# ---- the pods ---------------------------------------------------------------

def _hold(netns_path: str, ready_fd: int) -> None:
    """In a forked child: enter the pod, make its sockets, wait to die."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    fd = os.open(netns_path, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        os._exit(3)
    os.close(fd)
    keep = []
    listeners = []
    for port in (8080, 9090):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen(64)
        listeners.append(s)
    for port, pairs, half in ((8080, 15, False), (9090, 7, True)):
        for _ in range(pairs):
            c = socket.create_connection(("127.0.0.1", port))
            a, _ = listeners[0 if port == 8080 else 1].accept()
            if half:
                c.shutdown(socket.SHUT_WR)  # client FIN_WAIT2, server CLOSE_WAIT
            keep += [c, a]
    time.sleep(0.05)  # the FINs' ACKs (loopback: immediate)
    os.write(ready_fd, b"k")
    while True:
        signal.pause()


def make_pods(n: int) -> tuple[list[str], list[int]]:
    names = [f"tl-pods-{os.getpid()}-{i}" for i in range(n)]
    pids = []
    r, w = os.pipe()
    for name in names:
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                _hold(f"/run/netns/{name}", w)
            finally:
                os._exit(1)
        pids.append(pid)
    os.close(w)
    got = 0
    while got < n:
        chunk = os.read(r, n)
        if not chunk:
            raise SystemExit(f"only {got} of {n} pod holders came up")
        got += len(chunk)
    os.close(r)
    return names, pids


def check_pod(name: str) -> dict:
    out = subprocess.run(["ip", "netns", "exec", name, "ss", "-tanH"], capture_output=True,
                         text=True, check=True).stdout
    counts: dict = {}
    for line in out.splitlines():
        state = line.split()[0]
        counts[state] = counts.get(state, 0) + 1
    return counts


# ---- the measurements ---------------------------------------------------------

def commands(names: list[str], trees: dict, tmp: Path) -> list[tuple[str, str | None, list[str]]]:
    loop = "for n in " + " ".join(names) + "; do ip netns exec $n ss -tan{p}; done"
    out = [("loop-ss", None, ["bash", "-c", loop.format(p="")]),
           ("loop-ss-p", None, ["bash", "-c", loop.format(p="p")])]
    for tree in trees:
        tl = [PYTHON, "-m", "tcplinger"]
        (tmp / tree).mkdir(exist_ok=True)
        out += [("tl-stats", tree, tl + ["stats", "--all-netns"]),
                ("tl-report", tree, tl + ["--all-netns"]),
                ("tl-textfile", tree, tl + ["exporter", "--all-netns", "--textfile",
                                            str(tmp / tree)])]
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Exporter:
    """``tcplinger exporter --all-netns`` serving on a free loopback port."""

    def __init__(self, tree_src: str):
        self.port = _free_port()
        env = dict(os.environ, PYTHONPATH=tree_src)
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "tcplinger", "exporter", "--all-netns", "--listen",
             f"127.0.0.1:{self.port}"], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.time() + 60
        while True:
            try:
                self.scrape()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise SystemExit("the exporter did not come up")
                time.sleep(0.2)

    def scrape(self) -> tuple[float, float, int]:
        cpu0 = _proc_cpu(self.proc.pid)
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=120) as r:
            body = r.read()
        return time.perf_counter() - t0, _proc_cpu(self.proc.pid) - cpu0, len(body)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure(args) -> dict:
    trees = {"this": str(HERE.parent / "src")}
    if args.baseline:
        trees["baseline"] = str(args.baseline.resolve() / "src")
    compile_sources(*trees.values())  # as installed: .pyc files (timed_run.compile_sources)
    os.makedirs("/run/netns", exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "tl-pods", "/run/netns"], check=True)
    t0 = time.perf_counter()
    names, _pids = make_pods(args.netns)
    built = time.perf_counter() - t0
    sample = {name: check_pod(name) for name in (names[0], names[-1])}
    print(f"{len(names)} pods built in {built:.1f} s; sockets of the first and last: {sample}",
          flush=True)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="tl-pods-") as tmp:
        cases = commands(names, trees, Path(tmp))
        for key, tree, argv in cases:  # warm-up; stops on the first failure
            env_tree = trees.get(tree) if tree else None
            run = _run(argv, env_tree, args.timeout)
            if run.returncode != 0:
                raise SystemExit(f"{key} ({tree}): exit {run.returncode}: {run.stderr[-500:]}")
        exporters = {tree: Exporter(src) for tree, src in trees.items()}
        try:
            for i in range(args.repeat):
                for key, tree, argv in cases:
                    load = loadavg()[0]
                    run = _run(argv, trees.get(tree) if tree else None, args.timeout)
                    r = results.setdefault((key, tree), {"wall": [], "cpu": [], "rss": [],
                                                         "load": []})
                    r["wall"].append(run.wall_s)
                    r["cpu"].append(run.cpu_s)
                    r["rss"].append(run.maxrss_mb)
                    r["load"].append(load)
                for tree, exp in exporters.items():
                    load = loadavg()[0]
                    wall, cpu, size = exp.scrape()
                    r = results.setdefault(("tl-scrape", tree), {"wall": [], "cpu": [],
                                                                 "rss": [], "load": []})
                    r["wall"].append(wall)
                    r["cpu"].append(cpu)
                    r["load"].append(load)
                    r["bytes"] = size
                print(f"round {i + 1}/{args.repeat} done (load {loadavg()[0]:.1f})", flush=True)
        finally:
            for exp in exporters.values():
                exp.close()
    base = statistics.median(results[("loop-ss", None)]["wall"])
    rows = []
    for (key, tree), r in results.items():
        w = statistics.median(r["wall"])
        rows.append({"key": key, "tree": tree, "wall_median_s": round(w, 3),
                     "cpu_median_s": round(statistics.median(r["cpu"]), 3),
                     "maxrss_median_mb": round(statistics.median(r["rss"]), 1) if r["rss"] else None,
                     "ratio_to_loop_ss": round(w / base, 3), "wall_s": [round(x, 3) for x in r["wall"]],
                     "loadavg_1m": r["load"]})
    return {"netns": args.netns, "sockets_per_netns": 46, "build_s": round(built, 1),
            "sample_counts": sample, "repeat": args.repeat, "trees": trees, "rows": rows}


def shell(args) -> int:
    os.makedirs("/run/netns", exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "tl-pods", "/run/netns"], check=True)
    names, _pids = make_pods(args.netns)
    return subprocess.run(["bash", "-c", args.shell],
                          env=dict(os.environ, PODS=" ".join(names))).returncode


def _run(argv, tree_src, timeout):
    if tree_src:
        os.environ["PYTHONPATH"] = tree_src
    try:
        return run_once(argv, timeout)
    finally:
        os.environ.pop("PYTHONPATH", None)


def render(doc: dict) -> str:
    out = [f"Run {doc['started']}: `{' '.join(doc['argv'])}`; {doc['netns']} pods x "
           f"{doc['sockets_per_netns']} sockets; median of {doc['repeat']}; load average "
           f"{doc['loadavg_before'][0]:.1f} before, {doc['loadavg_after'][0]:.1f} after", "",
           "| command | tree | wall s | x loop ss -tan | CPU s | peak RSS MB | runs |",
           "|---|---|---:|---:|---:|---:|---|"]
    for r in doc["rows"]:
        rss = f"{r['maxrss_median_mb']:.1f}" if r["maxrss_median_mb"] else ""
        out.append(f"| {r['key']} | {r['tree'] or ''} | {r['wall_median_s']:.3f} "
                   f"| {r['ratio_to_loop_ss']:.2f} | {r['cpu_median_s']:.3f} | {rss} "
                   f"| {', '.join(f'{w:.3f}' for w in r['wall_s'])} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--netns", type=int, default=150)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--baseline", type=Path, help="another checkout, measured alongside")
    ap.add_argument("--render", type=Path, metavar="JSON", help="print a results file's table")
    ap.add_argument("--shell", metavar="CMD",
                    help="build the pods, run CMD (bash -c) among them instead of measuring "
                         "(profiling); $PODS holds the namespaces' names")
    args = ap.parse_args(argv)
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return 0
    if os.geteuid() != 0:
        ap.error("needs root (network namespaces)")
    if os.environ.get(INNER) != "1":
        # Everything below runs in a PID and mount namespace of its own.
        env = dict(os.environ, **{INNER: "1"})
        argv_ = [PYTHON, str(Path(__file__).resolve()), *(argv if argv is not None else sys.argv[1:])]
        return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "--mount",
                               "--propagation", "private", *argv_], env=env).returncode
    if args.shell:
        return shell(args)
    started = dt.datetime.now(dt.timezone.utc)
    doc = {"started": started.isoformat(timespec="seconds"), "argv": sys.argv,
           "loadavg_before": loadavg()}
    doc.update(measure(args))
    doc["loadavg_after"] = loadavg()
    write_results("pods", doc, render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
