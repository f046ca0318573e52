"""Lab runs (`python -m tcplinger lab run ... --json`) started in parallel on
first use, for test modules that check many scenarios: ``get(id)`` waits for
one run and returns its JSON document (with its stderr as ``_stderr``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")


def lab_argv(scenario: str, sets=()) -> list[str]:
    argv = [sys.executable, "-m", "tcplinger", "lab", "run", scenario, "--json"]
    for s in sets:
        argv += ["--set", s]
    return argv


class LabRuns:
    def __init__(self, argvs: dict[str, list[str]], *, order=(), parallel: int = 4,
                 name: str = "lab-run", run_timeout: float = 240, wait_timeout: float = 280):
        self.argvs = argvs
        # the longest runs first, so the whole batch ends sooner
        self.order = list(order) + [r for r in argvs if r not in order]
        self.parallel, self.name = parallel, name
        self.run_timeout, self.wait_timeout = run_timeout, wait_timeout
        self._lock = threading.Lock()
        self._futures: dict[str, Future] = {}
        self._pool: ThreadPoolExecutor | None = None
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.cpu: dict[str, float] = {}  # CPU seconds of each run (and its children)

    def start(self) -> None:
        with self._lock:
            if self._pool is not None:
                return
            self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix=self.name)
            for rid in self.order:
                self._futures[rid] = self._pool.submit(self._one, rid)

    def _one(self, rid: str) -> dict:
        self.started[rid] = time.monotonic()
        env = {**os.environ, "PYTHONPATH": SRC, "LANG": "C"}
        proc = subprocess.Popen(self.argvs[rid], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        killer = threading.Timer(self.run_timeout, proc.kill)  # by its pid
        killer.start()
        err: list[str] = []
        reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
        reader.start()
        out = proc.stdout.read()
        reader.join()
        # wait4, not wait: the run's CPU time (its own and its reaped
        # children's: peers, tcpdump, ip), which load does not stretch
        _, status, usage = os.wait4(proc.pid, 0)
        killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.finished[rid] = time.monotonic()
        self.cpu[rid] = usage.ru_utime + usage.ru_stime
        if proc.returncode != 0:
            raise RuntimeError(f"{rid}: exit {proc.returncode}: {err[0].strip()}")
        doc = json.loads(out)
        doc["_stderr"] = err[0]
        return doc

    def check_quick(self, cpu_budget_s: float) -> str:
        """Raise AssertionError unless the runs were cheap and parallel, on
        measures that load does not stretch: the CPU seconds they used, and
        the wall time of the batch against the sum of the runs' own (on a
        loaded machine every run's wall time grows; the ratio does not).
        Returns the figures, for the report."""
        rids = list(self.argvs)
        for rid in rids:
            self.get(rid)
        cpu = sum(self.cpu[r] for r in rids)
        wall = max(self.finished[r] for r in rids) - min(self.started[r] for r in rids)
        serial = sum(self.finished[r] - self.started[r] for r in rids)
        figures = f"{cpu:.0f} CPU s, {wall:.0f} s wall for {serial:.0f} s of runs"
        assert cpu < cpu_budget_s, f"the lab runs used {figures} (budget {cpu_budget_s} CPU s)"
        assert wall < serial / 2, f"the lab runs did not run in parallel: {figures}"
        return figures

    def get(self, rid: str) -> dict:
        self.start()
        return self._futures[rid].result(self.wait_timeout)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
