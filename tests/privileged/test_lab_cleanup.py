"""Nothing a lab run makes outlives it: namespaces, veths, the tracefs
instance, processes, capture files. Also after Ctrl-C/SIGTERM, and after
SIGKILL once `tcplinger lab clean` has run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged

from harness import default_sigint  # noqa: E402

from tcplinger.lab import registry  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC, "LANG": "C"}
#: A run that lasts long enough to be interrupted: CLOSE_WAIT never ends.
LONG = ["close-wait-leak", "--set", "keepalive=0", "--duration", "30"]


def lab(*args, **kw):
    return subprocess.run([sys.executable, "-m", "tcplinger", "lab", *args],
                          capture_output=True, text=True, env=ENV, **kw)


def processes_of(run_id: str, owner: int | None = None) -> list[int]:
    """Processes a run started: anything whose command line names the run's
    namespaces or interfaces, or a lab peer/bridge of ``owner``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            # errors="replace": another process of the host may have any bytes in its argv
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
        except OSError:
            continue
        if f"tl-lab-{run_id}" in cmd or (owner is not None and f"--parent {owner}" in cmd):
            out.append(int(entry))
    return out


def nothing_left(run_id: str, owner: int | None = None) -> dict:
    left = registry.leftovers(run_id)
    left["processes"] += processes_of(run_id, owner)
    left["records"] = [r.run_id for r in registry.records() if r.run_id == run_id]
    return {k: v for k, v in left.items() if v}


def start_long():
    proc = subprocess.Popen([sys.executable, "-m", "tcplinger", "lab", "run", *LONG, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True,
                            preexec_fn=default_sigint)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rec = [r for r in registry.records() if r.pid == proc.pid]
        if rec and len(registry.leftovers(rec[0].run_id)["namespaces"]) == 3 and \
                processes_of(rec[0].run_id, proc.pid):
            time.sleep(1.5)  # the peers and captures are up
            return proc, rec[0].run_id
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the lab run did not start")


def test_a_finished_run_leaves_nothing():
    done = lab("run", "linger-abort", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert nothing_left(doc["run_id"]) == {}


def test_sigterm_takes_everything_down():
    proc, run_id = start_long()
    assert nothing_left(run_id, proc.pid)  # it is there while running
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err
    assert nothing_left(run_id, proc.pid) == {}


def test_ctrl_c_takes_everything_down():
    proc, run_id = start_long()
    os.kill(proc.pid, signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert nothing_left(run_id, proc.pid) == {}


def test_sigkill_then_lab_clean():
    proc, run_id = start_long()
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 5
    while processes_of(run_id, proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)  # the parent-death signal is on its way
    left = nothing_left(run_id, proc.pid)
    # namespaces, the tracefs instance, the capture directory and the run
    # record stay; the peers, tcpdump and helpers died with the lab
    # (PR_SET_PDEATHSIG)
    assert len(left["namespaces"]) == 3 and left["instances"] and left["records"]
    assert not processes_of(run_id, proc.pid), [
        Path(f"/proc/{p}/cmdline").read_bytes() for p in processes_of(run_id, proc.pid)]
    done = lab("clean", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {f"tl-lab-{run_id}-{r}" for r in ("client", "server", "router")} <= \
        set(report["namespaces"])
    assert run_id in report["records"]
    assert nothing_left(run_id, proc.pid) == {}


def test_clean_leaves_live_runs_alone():
    proc, run_id = start_long()
    try:
        done = lab("clean", "--json")
        report = json.loads(done.stdout)
        assert run_id in report["in_use"]
        assert not any(n.startswith(f"tl-lab-{run_id}") for n in report["namespaces"])
        assert len(registry.leftovers(run_id)["namespaces"]) == 3
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)
    assert nothing_left(run_id, proc.pid) == {}
