#!/usr/bin/env python3
"""Real dumps against `ss -tan` in a namespace holding a large population.

    python3 bench/popgen.py --sockets 1M --hold &      # prints its tl-bench-… name
    python3 tests/data/netlink/bench_dump.py tl-bench-… [--repeat 5]

Reports, best of --repeat (CPU time first: wall time on a shared machine
mostly measures the other tenants):

* dump() inside this process for several receive-buffer sizes;
* `ss -tan > /dev/null` and a fresh `python3 -c 'dump()'` (start-up and
  numpy import included), each as a child process in the namespace.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[2] / "src"


def in_process(ns: str, bufsize: int) -> tuple[int, float, float, float]:
    sys.path.insert(0, str(HERE))
    import population
    from tcplinger.collect.netlink.dump import DiagSocket, dump

    def run():
        with DiagSocket(bufsize=bufsize) as sock:
            r0 = resource.getrusage(resource.RUSAGE_THREAD)
            t0 = time.perf_counter()
            table = dump(sock=sock)
            wall = time.perf_counter() - t0
            r1 = resource.getrusage(resource.RUSAGE_THREAD)
        return len(table), wall, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime

    return population.run_in_netns(f"/run/netns/{ns}", run)


def child(ns: str, argv: list[str]) -> tuple[float, float, float]:
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("netns")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--bufsizes", default="32K,256K,1M,4M,16M")
    args = ap.parse_args()
    sizes = [int(s[:-1]) << (10 if s[-1] == "K" else 20) for s in args.bufsizes.split(",")]

    for size in sizes:
        runs = [in_process(args.netns, size) for _ in range(args.repeat)]
        n = runs[0][0]
        print(f"dump() bufsize {size >> 10:6d} KiB: {n} sockets, CPU user+sys"
              f" {min(u + s for _, _, u, s in runs):.3f} s (user {min(u for *_, u, _ in runs):.3f},"
              f" sys {min(s for *_, s in runs):.3f}), wall {min(w for _, w, _, _ in runs):.3f} s")

    code = ("from tcplinger.collect.netlink.dump import dump; import numpy as np; t = dump();"
            " print(len(t), np.bincount(t.rows['state']).tolist())")
    commands = {"ss -tan": ["ss", "-tan"],
                "python -c dump()": ["env", f"PYTHONPATH={SRC}", sys.executable, "-c", code]}
    best = {}
    for _ in range(args.repeat):
        for name, argv in commands.items():
            wall, user, system = child(args.netns, argv)
            old = best.get(name)
            if old is None or user + system < old[1] + old[2]:
                best[name] = (wall, user, system)
            best[name + " wall"] = min(best.get(name + " wall", wall), wall)
    for name in commands:
        wall, user, system = best[name]
        print(f"{name:18s} CPU user+sys {user + system:.3f} s (user {user:.3f}, sys {system:.3f}),"
              f" best wall {best[name + ' wall']:.3f} s")
    ss, py = best["ss -tan"], best["python -c dump()"]
    print(f"ratio python/ss: CPU {(py[1] + py[2]) / (ss[1] + ss[2]):.2f},"
          f" best wall {best['python -c dump() wall'] / best['ss -tan wall']:.2f}")


if __name__ == "__main__":
    main()
