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
        done = subprocess.run(self.argvs[rid], capture_output=True, text=True, env=env,
                              timeout=self.run_timeout)
        self.finished[rid] = time.monotonic()
        if done.returncode != 0:
            raise RuntimeError(f"{rid}: exit {done.returncode}: {done.stderr.strip()}")
        doc = json.loads(done.stdout)
        doc["_stderr"] = done.stderr
        return doc

    def get(self, rid: str) -> dict:
        self.start()
        return self._futures[rid].result(self.wait_timeout)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
