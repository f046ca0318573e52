#!/usr/bin/env python3
"""How long the light commands take to start, against ``python3 -c pass``.

    python bench/startup.py [--repeat 20] [--baseline DIR]

Issue 16 asks that ``tcplinger --version``, ``--help``, ``rules`` and
``explain RULE`` take at most 3x ``python3 -c pass`` (the same interpreter,
measured in the same run): they import no numpy and no collector.
Every command runs ``--repeat`` times, interleaved (a drift in the
machine's load hits all of them alike), stdout to /dev/null; the table
shows the median wall clock and CPU (user + system from ``wait4()``) and
the ratio of the medians to ``python3 -c pass``.

``--baseline DIR`` runs the same commands a second time with
``PYTHONPATH=DIR/src`` (another checkout, e.g. ``git archive`` of an older
commit), interleaved with this checkout's: a before/after in one run.
The 1-minute load average before the first and after the last run is
printed and kept in the JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from timed_run import compile_sources  # noqa: E402  (bench/ is not a package)

PYTHON = os.path.realpath(sys.executable)  # not a pyenv shim (a bash script, ~0.3 s)
COMMANDS = [("--version",), ("--help",), ("rules",), ("explain", "close-wait-leak")]


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run(argv: list[str], env: dict) -> tuple[float, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    _pid, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if code != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {code}: {err.strip()[-300:]}")
    return wall, ru.ru_utime + ru.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--baseline", type=Path, help="another checkout to measure alongside")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    env = dict(os.environ)
    trees = {"this": str(HERE.parent / "src")}
    if args.baseline:
        trees["baseline"] = str(args.baseline.resolve() / "src")
    compile_sources(*trees.values())  # as installed: .pyc files (timed_run.compile_sources)
    cases = [("python3 -c pass", None, [PYTHON, "-c", "pass"])]
    for tree in trees:
        for cmd in COMMANDS:
            cases.append((f"tcplinger {' '.join(cmd)}", tree, [PYTHON, "-m", "tcplinger", *cmd]))
    walls = {i: [] for i in range(len(cases))}
    cpus = {i: [] for i in range(len(cases))}
    load0 = loadavg()
    for i, (_label, tree, cmd) in enumerate(cases):  # warm-up: page cache
        run(cmd, dict(env, PYTHONPATH=trees[tree]) if tree else env)
    for _ in range(args.repeat):
        for i, (_label, tree, cmd) in enumerate(cases):
            w, c = run(cmd, dict(env, PYTHONPATH=trees[tree]) if tree else env)
            walls[i].append(w)
            cpus[i].append(c)
    load1 = loadavg()
    base = statistics.median(walls[0])
    rows = []
    for i, (label, tree, _cmd) in enumerate(cases):
        w = statistics.median(walls[i])
        rows.append({"command": label, "tree": tree, "wall_median_s": round(w, 4),
                     "cpu_median_s": round(statistics.median(cpus[i]), 4),
                     "ratio": round(w / base, 2)})
    if args.json:
        print(json.dumps({"python": PYTHON, "bytecode": "compiled", "repeat": args.repeat, "loadavg_before": load0,
                          "loadavg_after": load1, "trees": trees, "rows": rows}))
        return 0
    print(f"load average (1 min) {load0:.2f} before, {load1:.2f} after; "
          f"median of {args.repeat}, interleaved; {PYTHON}")
    print("| command | tree | wall s | CPU s | x python3 -c pass |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| `{r['command']}` | {r['tree'] or ''} | {r['wall_median_s']:.3f} "
              f"| {r['cpu_median_s']:.3f} | {r['ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
