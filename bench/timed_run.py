"""One command run and measured for the benchmarks (bench/compare.py,
bench/pods.py): wall clock, CPU and peak RSS, killed with its whole session
on a timeout; and whether a failure means "not available" or an error."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    maxrss_mb: float
    returncode: int
    stderr: str


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def tcplinger_src() -> str:
    """The src/ directory ``python -m tcplinger`` imports from here (the
    PYTHONPATH of this process)."""
    spec = importlib.util.find_spec("tcplinger")
    if spec is None or spec.origin is None:
        raise SystemExit("tcplinger is not importable: export PYTHONPATH=CHECKOUT/src")
    return os.path.dirname(os.path.dirname(spec.origin))


def compile_sources(*src_dirs: str) -> None:
    """Byte-compile the trees the benchmark runs, as an installed package
    is (pip and dpkg write the .pyc files at install time).

    Why: this sandbox exports PYTHONDONTWRITEBYTECODE=1, so a checkout
    never gets its __pycache__ and every ``python -m tcplinger`` compiled
    its ~150 modules from source: 0.08-0.1 s of CPU a start, measured
    (``tcplinger stats``, 0.42-0.48 against 0.32-0.39 s CPU).  Python
    still reads .pyc files with that variable set; a source edited
    later makes its .pyc stale, which Python notices (mtime) and ignores.
    """
    for src in src_dirs:
        subprocess.run([os.path.realpath(sys.executable), "-m", "compileall", "-q", "-j", "0",
                        src], check=True, stdout=subprocess.DEVNULL)
        # the message catalogs' compiled cache (i18n.load_catalog), which the
        # first run of an installed package writes beside it like a .pyc;
        # a tree without catalog-*.marshal (older trees) writes nothing
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        subprocess.run([os.path.realpath(sys.executable), "-c",
                        "from tcplinger import i18n\n"
                        "for lang in i18n.LANGS: i18n.catalog(lang)"],
                       check=True, stdout=subprocess.DEVNULL, env=dict(env, PYTHONPATH=src))
        # and the compiled methods of the dataclasses (dataclass_cache.py),
        # which each command's first start writes likewise (one file per
        # command, so one process each): its --help loads its modules (a
        # tree without the cache writes nothing)
        names = subprocess.run([os.path.realpath(sys.executable), "-c", COMMAND_NAMES],
                               check=True, capture_output=True, text=True,
                               env=dict(env, PYTHONPATH=src)).stdout.split()
        for name in names:
            subprocess.run([os.path.realpath(sys.executable), "-m", "tcplinger", name, "--help"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=dict(env, PYTHONPATH=src))  # a missing extra: that one compiles


COMMAND_NAMES = "from tcplinger.cli.commands import COMMANDS\nprint(*(c.name for c in COMMANDS))"


GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run_once(argv: list[str], timeout: float, pythonpath: str | None = None) -> Run:
    """Run ``argv`` with stdout to /dev/null; wall clock and CPU from
    ``wait4()``, peak RSS from GNU time's ``%M``.

    Why GNU time for the RSS: a child forked from this Python process starts
    with a copy of its page tables, and ``ru_maxrss`` keeps the highest RSS
    seen across exec() (``setmax_mm_hiwater_rss()`` in fs/exec.c), so every
    command would read >= this process's ~25 MB.  time(1) is a 30 kB C
    program: its child's high-water mark is the command's own."""
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as rss:
        if GNU_TIME:
            argv = [GNU_TIME, "-f", "%M", "-o", rss.name, *argv]
        t0 = time.perf_counter()
        env = None
        if pythonpath:
            env = dict(os.environ, PYTHONPATH=pythonpath)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True, env=env)
        # Kill the whole session on timeout (the command may have children)
        # and when we are interrupted: an orphaned `ss -p` would run on.
        timer = threading.Timer(timeout, _kill_group, (proc.pid,))
        timer.daemon = True
        timer.start()
        try:
            _pid, status, ru = os.wait4(proc.pid, 0)
        except BaseException:
            _kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        err.seek(0)
        stderr = err.read()[-4000:].decode(errors="replace")
        maxrss_kb = ru.ru_maxrss
        if GNU_TIME:
            # last line is %M; time(1) may write "Command exited with ..." before it
            lines = rss.read().split()
            maxrss_kb = int(lines[-1]) if lines and lines[-1].isdigit() else 0
            if proc.returncode != 0 and len(lines) > 1:  # keep the command's last words last
                stderr = " ".join(lines[:-1]) + "\n" + stderr
    if proc.returncode == -signal.SIGKILL and wall >= timeout:
        stderr += f"\n[killed after {timeout} s timeout]"
    return Run(wall, ru.ru_utime + ru.ru_stime, maxrss_kb / 1024, proc.returncode, stderr)


def classify_failure(run: Run) -> str:
    """'n/a' when the tool or subcommand does not exist (yet), else 'error'.

    >>> classify_failure(Run(0.1, 0.1, 9, 2, "usage: tcplinger ...\\ntcplinger: error: argument cmd: invalid choice: 'stats'"))
    'n/a'
    >>> classify_failure(Run(0.1, 0.1, 9, 1, "ModuleNotFoundError: No module named 'tcplinger.cli.main'"))
    'n/a'
    >>> classify_failure(Run(0.1, 0.1, 9, 1, "Traceback ...\\nKeyError: 5"))
    'error'
    """
    text = run.stderr
    if run.returncode == 127 or "No such file or directory" in text and "exec of" in text:
        return "n/a"
    if "ModuleNotFoundError" in text or "ImportError" in text:
        return "n/a"
    if run.returncode == 2 and ("usage:" in text or "invalid choice" in text
                                or "unrecognized arguments" in text):
        return "n/a"
    return "error"
