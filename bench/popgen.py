#!/usr/bin/env python3
"""Benchmark populations: N TCP sockets of a chosen state mix in a private netns.

    python bench/popgen.py --sockets 1M \\
        --mix established=0.6,close-wait=0.2,fin-wait-2=0.1,time-wait=0.1 [--hold]

or, from Python::

    with Population(100_000, "established=0.6,close-wait=0.4") as pop:
        subprocess.run(["ip", "netns", "exec", pop.netns, "ss", "-tan"])

The namespace is named ``tl-bench-<pid>-<hex>``; it and the holder processes
(ended by PID) are removed on exit, Ctrl-C, SIGTERM and exceptions.  If the
parent is SIGKILLed the holders die with it (PR_SET_PDEATHSIG) and
``--cleanup`` removes the namespace it leaves in /run/netns.

How each state is made, and the limits of this machine it works around:
bench/popgen_holder.py. The plan (the mix, the kinds of sockets, which
holder builds what): bench/popgen_plan.py; the namespace: bench/popgen_netns.py.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.connection
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Mapping

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling modules
# popgen_plan makes tcplinger importable from a checkout (src/) as well
from popgen_plan import (DEFAULT_MIX, Mix, PopulationError, make_plan,  # noqa: E402
                         parse_count)
from popgen_holder import TIMEWAIT_LEN, _holder_main  # noqa: E402,F401  (tests read TIMEWAIT_LEN)

from popgen_netns import (NETNS_DIR, NETNS_PREFIX, _run, cleanup_stale,  # noqa: E402
                          create_netns, namespace_sysctls, netns_exec, parse_ehash, ss_counts)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Population:
    """A populated namespace; use as a context manager.

    ``sockets`` and ``mix`` go to :func:`make_plan`; ``netns`` must start with
    ``tl-bench-`` (default: ``tl-bench-<pid>-<hex>``).  After ``__enter__``:
    ``netns``, ``plan``, ``expected()``, ``build_seconds``, ``holder_pids``.

    ``ehash``: the namespace's TCP established hash table.  ``"host"``
    (default): a private table as large as the host's, so the population
    costs tools what it would on a host holding only these sockets, and
    other namespaces' sockets (other users of the machine) neither inflate
    nor disturb the measurement - and ours do not slow their `ss`.
    ``"shared"``/None: the host's table, like a container's.  An int: a
    private table of that many buckets.
    """

    def __init__(self, sockets: int, mix: Mix | str = DEFAULT_MIX, *, netns: str | None = None,
                 holders: int | None = None, batch: int = 256, refresh_time_wait: bool = True,
                 timeout: float = 900.0, ehash: int | str | None = "host",
                 log: Callable[[str], None] | None = None):
        self.plan = make_plan(sockets, mix, holders=holders, batch=batch,
                              refresh_time_wait=refresh_time_wait)
        self.ehash_entries = parse_ehash(ehash) if isinstance(ehash, str) else ehash
        self.netns = netns or f"{NETNS_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        if not self.netns.startswith(NETNS_PREFIX):
            raise ValueError(f"namespace name must start with {NETNS_PREFIX!r}")
        self.timeout = timeout
        self.log = log or (lambda msg: None)
        self.build_seconds: float | None = None
        self.teardown_seconds: float | None = None
        self.reports: list[dict] = []
        self._procs: list[multiprocessing.Process] = []
        self._conns: list[multiprocessing.connection.Connection] = []
        self._created = False
        self._sigterm_installed = False

    @property
    def build_cpu_seconds(self) -> float:
        """CPU time (user + system) the holders spent building."""
        return sum(r["cpu_seconds"] for r in self.reports)

    @property
    def holder_pids(self) -> tuple[int, ...]:
        return tuple(p.pid for p in self._procs if p.pid is not None)

    def expected(self) -> dict[str, int]:
        return self.plan.expected()

    def problems(self) -> list[str]:
        """Holders that failed since the build (e.g. re-creating TIME-WAIT
        sockets) or died: their sockets are gone, the population is short."""
        out = []
        for conn, proc in zip(self._conns, self._procs):
            try:
                while conn.poll():
                    kind, payload = conn.recv()
                    if kind == "error":
                        out.append(payload)
            except (EOFError, OSError):
                pass
            if not proc.is_alive():
                out.append(f"holder pid {proc.pid} exited with code {proc.exitcode}")
        return out

    def exec_argv(self, *argv: str) -> list[str]:
        return netns_exec(self.netns, *argv)

    def __enter__(self) -> "Population":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        t0 = time.monotonic()
        # A plain `kill` would end the process without unwinding: turn SIGTERM
        # into KeyboardInterrupt while we own a namespace, unless someone
        # else already handles it (only the main thread may set handlers).
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
            signal.signal(signal.SIGTERM, _interrupt)
            self._sigterm_installed = True
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        self.build_seconds = time.monotonic() - t0

    def _build(self) -> None:
        if (NETNS_DIR / self.netns).exists():
            raise PopulationError(f"namespace {self.netns} already exists")
        self._created = True  # from here on, close() deletes it (if it exists)
        create_netns(self.netns, self.ehash_entries)
        _run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        _run(netns_exec(self.netns, "sysctl", "-q", "-w",
                        *(f"{k}={v}" for k, v in namespace_sysctls(self.plan).items())))
        ctx = multiprocessing.get_context("fork")
        for hp in self.plan.holders:
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(target=_holder_main, name=f"popgen-holder-{hp.index}", daemon=True,
                               args=(child_end, NETNS_DIR / self.netns, hp, os.getpid(),
                                     list(self._conns) + [parent_end]))
            proc.start()
            child_end.close()
            self._procs.append(proc)
            self._conns.append(parent_end)
        waiting = {c: p for c, p in zip(self._conns, self._procs)}
        sentinels = {p.sentinel: c for c, p in waiting.items()}
        deadline = time.monotonic() + self.timeout
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PopulationError(f"{len(waiting)} holders not built after {self.timeout} s")
            ready = multiprocessing.connection.wait(list(waiting) + list(sentinels), timeout=left)
            for r in ready:
                conn = sentinels.get(r, r)
                if conn not in waiting:
                    continue
                try:
                    kind, payload = conn.recv()
                except EOFError:
                    raise PopulationError(f"holder pid {waiting[conn].pid} exited "
                                          f"(code {waiting[conn].exitcode}) before reporting") from None
                if kind == "error":
                    raise PopulationError(payload)
                self.reports.append(payload)
                del sentinels[waiting.pop(conn).sentinel]
                self.log(f"holder {payload['index']} (pid {payload['pid']}) built: {payload['fds']} fds, "
                         f"{payload['time_wait']} TIME-WAIT, {payload['build_seconds']:.1f} s "
                         f"({len(self.reports)}/{len(self._procs)})")

    def close(self) -> None:
        """End the holders (by PID) and delete the namespace; idempotent.

        SIGINT and SIGTERM are held back meanwhile (and delivered after):
        a second Ctrl-C, or timeout(1) signalling both its child and the
        child's process group, must not cut the cleanup short."""
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            self._close()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _close(self) -> None:
        t0 = time.monotonic()
        for conn in self._conns:
            try:
                conn.send("stop")
            except OSError:
                pass
        deadline = time.monotonic() + 30
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self._procs:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)
                proc.join(10)
        for conn in self._conns:
            conn.close()
        self._procs.clear()
        self._conns.clear()
        if self._created:
            if (NETNS_DIR / self.netns).exists():
                subprocess.run(["ip", "netns", "del", self.netns], check=False, stderr=subprocess.DEVNULL)
            self._created = False
        self.teardown_seconds = time.monotonic() - t0
        if self._sigterm_installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self._sigterm_installed = False


# ---------------------------------------------------------------------- CLI

def _format_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sockets", type=parse_count, help="number of sockets (1M, 100k, ...)")
    ap.add_argument("--mix", default=DEFAULT_MIX, help=f"state=share,... (default {DEFAULT_MIX})")
    ap.add_argument("--netns", help="namespace name (must start with tl-bench-)")
    ap.add_argument("--hold", action="store_true", help="keep the population until Ctrl-C / SIGTERM")
    ap.add_argument("--holders", type=int, help="holder processes (default: from the fd limit)")
    ap.add_argument("--batch", type=int, default=256, help="connections per batch (default 256)")
    ap.add_argument("--no-refresh", action="store_true", help="let TIME-WAIT sockets expire")
    ap.add_argument("--ehash", default="host",
                    help="TCP established hash: host (private, host-sized; default), shared, or N buckets")
    ap.add_argument("--check", action="store_true", help="compare `ss -tan` counts with the plan")
    ap.add_argument("--verbose", "-v", action="store_true", help="report each holder")
    ap.add_argument("--cleanup", action="store_true", help="remove stale tl-bench- namespaces and exit")
    args = ap.parse_args(argv)
    if args.cleanup:
        cleanup_stale()
        return 0
    if not args.sockets:
        ap.error("--sockets is required")
    if os.geteuid() != 0:
        ap.error("needs root (network namespaces, TCP_REPAIR)")

    # SIGTERM unwinds like Ctrl-C, so the `with` below always cleans up.
    signal.signal(signal.SIGTERM, _interrupt)
    pop = Population(args.sockets, args.mix, netns=args.netns, holders=args.holders,
                     batch=args.batch, refresh_time_wait=not args.no_refresh, ehash=args.ehash,
                     log=print if args.verbose else None)
    for note in pop.plan.notes:
        print(f"note: {note}")
    print(f"{pop.netns}: {args.sockets} sockets ({_format_counts(pop.expected())}) "
          f"in {len(pop.plan.holders)} holders")
    status = 0
    try:
        with pop:
            print(f"built in {pop.build_seconds:.1f} s ({pop.build_cpu_seconds:.1f} CPU-s in holders)",
                  flush=True)
            if args.check:
                t = time.monotonic()
                seen = ss_counts(pop.netns)
                print(f"ss -tan ({time.monotonic() - t:.1f} s): {_format_counts(seen)}")
                if {k: seen.get(k, 0) for k in pop.expected()} != pop.expected() \
                        or set(seen) - set(pop.expected()):
                    print("MISMATCH with the plan")
                    status = 1
            if args.hold:
                print(f"holding; run e.g.  ip netns exec {pop.netns} ss -tan   (Ctrl-C to remove)",
                      flush=True)
                while True:
                    signal.pause()
    except KeyboardInterrupt:
        print("interrupted")
    print(f"removed in {pop.teardown_seconds or 0:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
