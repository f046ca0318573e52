"""Which lab runs exist, who owns them, and cleaning up after dead ones.

Everything a run creates is named from its run id: namespaces
``tl-lab-<id>-client|server|router``, veth ends ``tl-lab-<id>-c|a|b|s``
(15 characters: IFNAMSIZ is 16 with the NUL, include/uapi/linux/if.h) and
the tracefs instance ``tl-lab-<id>-<pid>``. A run also writes
``/run/tcplinger/lab/<id>.json`` saying which process owns it (pid and its
start time, so a recycled pid is not mistaken for the owner) and which
address slot it took: two runs at the same time get different slots, hence
different addresses and server ports, so the tracepoint events (which
carry no namespace) of one are never taken for the other's.

``lab clean`` removes what belongs to runs whose owner is gone: processes
still in their namespaces (ended by pid), the namespaces (and with them
their veths; a crash while building can also leave ``tl-lab-<id>-seed``,
the namespaces' parent), their tracefs instances, their capture
directories (``$TMPDIR/tl-lab-<id>-cap-*``) and their run files.

>>> parse_name("tl-lab-3fa2c1-client")
('3fa2c1', 'client')
>>> parse_name("tl-dx-12-a") is None
True
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..collect.netns import ns_inode, scan_proc
from ..collect.roots import PROC, RUN_NETNS

PREFIX = "tl-lab-"
STATE_DIR = Path("/run/tcplinger/lab")
SLOTS = 200  # 198.18.<slot>.0/24 and 198.19.<slot>.0/24 (RFC 2544 benchmark space)
ROLES = ("client", "server", "router")
_NAME = re.compile(r"^tl-lab-(?P<id>[0-9a-f]{6})-(?P<role>[a-z]+)$")


def parse_name(name: str) -> tuple[str, str] | None:
    """(run id, role) of a lab namespace name, or None."""
    m = _NAME.match(name)
    return (m.group("id"), m.group("role")) if m else None


def ns_name(run_id: str, role: str) -> str:
    return f"{PREFIX}{run_id}-{role}"


def proc_starttime(pid: int, proc: Path = PROC) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot), None if gone."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    return int(text.rsplit(")", 1)[1].split()[19])


@dataclass
class RunRecord:
    run_id: str
    pid: int
    starttime: int | None
    slot: int
    scenario: str = ""
    created: float = field(default_factory=time.time)

    def alive(self) -> bool:
        return self.starttime is not None and proc_starttime(self.pid) == self.starttime

    def to_json(self) -> dict:
        return {"run_id": self.run_id, "pid": self.pid, "starttime": self.starttime,
                "slot": self.slot, "scenario": self.scenario, "created": self.created}

    @staticmethod
    def from_json(obj: dict) -> "RunRecord":
        return RunRecord(obj["run_id"], int(obj["pid"]), obj.get("starttime"), int(obj["slot"]),
                         obj.get("scenario", ""), float(obj.get("created", 0)))


@contextlib.contextmanager
def _locked(state_dir: Path):
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def records(state_dir: Path = STATE_DIR) -> list[RunRecord]:
    out = []
    for path in sorted(state_dir.glob("*.json")) if state_dir.is_dir() else ():
        try:
            out.append(RunRecord.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError):
            continue
    return out


def register(scenario: str, state_dir: Path = STATE_DIR) -> RunRecord:
    """A new run id and a free slot, recorded under a lock."""
    with _locked(state_dir):
        taken = {r.slot for r in records(state_dir)}
        taken |= {r.run_id for r in records(state_dir)}  # ids too (harmless overlap)
        existing = {parse_name(n)[0] for n in list_netns() if parse_name(n)}
        free = [s for s in range(SLOTS) if s not in taken]
        if not free:
            raise RuntimeError("no free lab slot: too many lab runs at once, "
                               "or leftovers of crashed runs (run `tcplinger lab clean`)")
        while True:
            run_id = secrets.token_hex(3)
            if run_id not in existing and run_id not in taken:
                break
        rec = RunRecord(run_id, os.getpid(), proc_starttime(os.getpid()), free[0], scenario)
        (state_dir / f"{run_id}.json").write_text(json.dumps(rec.to_json()))
        return rec


def unregister(run_id: str, state_dir: Path = STATE_DIR) -> None:
    with contextlib.suppress(FileNotFoundError):
        (state_dir / f"{run_id}.json").unlink()


def list_netns() -> list[str]:
    """Names in /run/netns (what `ip netns list` shows)."""
    try:
        return sorted(os.listdir(RUN_NETNS))
    except FileNotFoundError:
        return []


def netns_pids(name: str, proc: Path = PROC, run_netns: Path = RUN_NETNS) -> list[int]:
    """Processes whose network namespace is /run/netns/NAME (as
    `ip netns pids` finds them: the namespace inode of /proc/PID/ns/net)."""
    try:
        target = ns_inode(run_netns / name)
    except OSError:
        return []
    return [pid for pid, inode in scan_proc(proc).inode_of.items() if inode == target]


def kill_netns_processes(name: str, timeout: float = 2.0) -> list[int]:
    """End every process in the namespace, by pid: SIGTERM, then SIGKILL."""
    pids = netns_pids(name)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = [p for p in pids if _exists(p)]
            if not pids:
                return []
            time.sleep(0.02)
    return [p for p in pids if _exists(p)]


def _exists(pid: int, proc: Path = PROC) -> bool:
    try:
        state = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie is gone as far as the namespace is concerned


def delete_netns(name: str) -> bool:
    done = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True)
    return done.returncode == 0 or not (RUN_NETNS / name).exists()


@dataclass
class CleanReport:
    namespaces: list[str] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)  # run ids of live runs, left alone
    files: list[str] = field(default_factory=list)  # capture directories

    def empty(self) -> bool:
        return not (self.namespaces or self.processes or self.instances or self.records
                    or self.files)


def clean(state_dir: Path = STATE_DIR, *, include_live: bool = False) -> CleanReport:
    """Remove the leftovers of every lab run whose owner is dead (or of
    every run with ``include_live``)."""
    from ..collect import tracefs

    report = CleanReport()
    with _locked(state_dir):
        recs = {r.run_id: r for r in records(state_dir)}
        live = {rid for rid, r in recs.items() if r.alive() and not include_live}
        report.in_use = sorted(live)
        for name in list_netns():
            parsed = parse_name(name)
            if parsed is None or parsed[0] in live:
                continue
            pids = netns_pids(name)
            kill_netns_processes(name)
            report.processes += pids
            if delete_netns(name):
                report.namespaces.append(name)
        for rid in recs:
            if rid not in live:
                unregister(rid, state_dir)
                report.records.append(rid)
        # and any tcplinger instance whose owner died: a SIGKILLed `watch`
        # left tl-watch-<pid> (inet_sock_set_state on, 4 MB a CPU); one whose
        # pid lives is never touched (issue 13)
        report.instances = sorted(set(_clean_instances(live, tracefs))
                                  | set(tracefs.remove_stale_instances()))
        for path in _capture_dirs():
            m = re.match(r"^tl-lab-([0-9a-f]{6})-cap-", path.name)
            if m and m.group(1) not in live:
                shutil.rmtree(path, ignore_errors=True)
                report.files.append(str(path))
    return report


def _capture_dirs() -> list[Path]:
    return sorted(Path(tempfile.gettempdir()).glob(f"{PREFIX}*-cap-*"))


def _clean_instances(live: set[str], tracefs) -> list[str]:
    """tracefs instances of lab runs that are not live (their owner pid in
    the name may even be alive: a test that ran several labs in-process)."""
    try:
        root = tracefs.find_tracefs(mount=False)
        entries = list((root / "instances").iterdir())
    except (tracefs.TracefsUnavailable, OSError):
        return []
    removed = []
    for entry in entries:
        m = re.match(r"^tl-lab-([0-9a-f]{6})-\d+$", entry.name)
        if m and m.group(1) not in live and tracefs.remove_instance(entry):
            removed.append(entry.name)
    return sorted(removed)


def leftovers(run_id: str | None = None) -> dict:
    """What a run (or every lab run) has on the host now: for tests and
    `lab clean --dry-run`."""
    from ..collect import tracefs

    match = (lambda n: n.startswith(PREFIX + run_id)) if run_id else \
        (lambda n: n.startswith(PREFIX))
    out = {"namespaces": [n for n in list_netns() if match(n)], "instances": [], "links": []}
    try:
        root = tracefs.find_tracefs(mount=False)
        out["instances"] = sorted(e.name for e in (root / "instances").iterdir() if match(e.name))
    except (tracefs.TracefsUnavailable, OSError):
        pass
    out["links"] = sorted(n for n in os.listdir("/sys/class/net") if match(n))
    out["processes"] = [p for n in out["namespaces"] for p in netns_pids(n)]
    out["files"] = [str(p) for p in _capture_dirs()
                    if run_id is None or p.name.startswith(f"{PREFIX}{run_id}-")]
    return out
