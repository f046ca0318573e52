"""Run a scenario: build its namespaces, record, let its peers act, check
the outcome, and always take everything down again. (What the scenario's
script works with is lab/script.py's Run; what comes out, lab/result.py's
LabResult.)

The order of a run: register (a run id and an address slot), namespaces
and veths, sysctls, the router's rules or middlebox, the recorder
(tracefs + sock_diag polls) and the captures, then the scenario's script
(which starts peers, acts, waits, and names the moments to diagnose), a
last diagnosis, and the tear-down. Tear-down runs in ``finally``: at the
end, on an exception, on Ctrl-C, and on SIGTERM/SIGHUP (turned into
KeyboardInterrupt while a run is in progress, in the main thread).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from ..collect.roots import PROC
from . import registry, wireview
from .capture import Capture
from .peer_process import PeerProcess
from .recorder import Recorder
from .result import LabResult, result_of
from .scenario import Scenario, prepare
from .script import LabError, Run, RunOptions
from .topology import Addressing, Topology

#: Seconds the run goes on after a script's last step, so the last
#: transitions are recorded and the timeline shows what came after.
TAIL_S = 0.5
#: The captures stop this long after the end of the observation at the
#: earliest (capture.py, Capture.stop): 30 times the slowest forwarding
#: measured on a loaded machine, and time for tcpdump to read its ring.
STOP_GUARD_S = 0.25


class _Signals:
    """SIGTERM and SIGHUP raise KeyboardInterrupt while a run is going on,
    so that its ``finally`` takes everything down (main thread only)."""

    def __enter__(self):
        self.saved = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self.saved[sig] = signal.signal(sig, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def __exit__(self, *exc):
        for sig, old in self.saved.items():
            signal.signal(sig, old)


def check_environment() -> None:
    """One clear error when the lab cannot run here."""
    if os.geteuid() != 0:
        raise PermissionError(1, "the lab needs root (it creates network namespaces)")
    if not (PROC / "self" / "ns" / "net").exists():
        raise LabError("this kernel has no network namespaces")
    try:
        done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    except FileNotFoundError:
        raise LabError("`ip` (iproute2) is not installed") from None
    if done.returncode != 0:
        raise LabError(f"`ip netns` does not work here: {done.stderr.strip()}")


def run(opts: RunOptions, scenario: Scenario, msg, progress=None, diagnosis=None) -> LabResult:
    """Run ``scenario`` once; raises ParamError before touching anything
    when a parameter is wrong. ``diagnosis``: what diagnoses the run at its
    moments (app/lab_diagnosis.py; script.py's ``Run``), None for none."""
    prepared = prepare(scenario, opts.sets)
    check_environment()
    horizon = scenario.horizon(prepared.params)
    if opts.duration is not None:
        horizon = opts.duration
    rec = registry.register(scenario.name)
    topo = Topology(rec.run_id, Addressing(rec.slot))
    run_ = Run(scenario, prepared, topo, msg, progress, horizon, opts, diagnosis)
    capture = None
    warnings: list[str] = []
    with _Signals():
        try:
            if progress is not None:
                progress(msg("lab.progress.setup", scenario=scenario.name))
            _build(topo, scenario, prepared)
            capture = _start_recording(run_, rec.run_id, opts, warnings)
            if run_.diagnosis is not None:  # the counters at the start
                run_.diagnosis.start(run_.namespaces())
            _start_peers(run_)
            run_.t0 = time.monotonic()
            run_.horizon = horizon
            scenario.script(run_)
            if opts.duration is not None:  # asked to watch this long: go on recording
                run_.wait(run_.left() - TAIL_S, "lab.wait.duration")
            run_.wait(TAIL_S, "lab.wait.tail")
            run_.diagnose("end")
            result = _finish(run_, rec, capture, warnings)
        finally:
            _take_down(run_, capture, topo, rec.run_id)
    result.released_at = time.time()
    return result


def _build(topo: Topology, scenario: Scenario, prepared) -> None:
    """The namespaces, veths and the scenario's sysctls."""
    topo.create(forwarding=scenario.router != "ipfw")
    for role, values in prepared.sysctls.items():
        try:
            topo.set_sysctls(role, {k: v for k, v in values.items()})
        except OSError as exc:
            raise LabError(f"cannot set sysctls in the {role} namespace: {exc}") from exc


def _start_peers(run_: Run) -> None:
    """The client's and server's peer processes, both at once, before the
    run's clock starts. Their start is no part of any scenario's timing,
    but started inside the script it ate the horizon the scenario's
    timers were given: the first connect came 6-10 s into a run at load
    25 (1.6-2.1 s at load 17 without stress-ng), and close-wait-leak's
    live peer had time for 2 keepalive probes of 3."""
    for side in ("client", "server"):  # both start at once; ended by pid at tear-down
        run_.peers[side] = PeerProcess(side, run_.topo.ns(side), on_event=run_._peer_event,
                                       wait_ready=False)
    for peer in run_.peers.values():
        peer.ready()


def _start_recording(run_: Run, run_id: str, opts: RunOptions, warnings: list) -> Capture | None:
    """The recorder (tracefs and sock_diag polls) and the router's captures."""
    topo = run_.topo
    recorder = Recorder(f"lab-{run_id}", {"client": topo.path("client"),
                                          "server": topo.path("server")},
                        {topo.addr.client: "client", topo.addr.server: "server"},
                        topo.addr.server_port, interval=opts.interval, use_tracefs=opts.tracefs)
    run_.recorder = recorder
    capture = None
    if opts.capture:
        capture = Capture(topo.ns("router"), {"client": topo.link("a"), "server": topo.link("b")},
                          filter=f"tcp port {topo.addr.server_port}", run_id=run_id)
        capture.start()
        if capture.error:
            warnings.append(capture.error)
    recorder.start()
    if recorder.stats.tracefs:
        warnings.append(run_.msg("lab.warn.no_tracefs", why=recorder.stats.tracefs))
    return capture


def _finish(run_: Run, rec, capture: Capture | None, warnings: list) -> LabResult:
    """Stop recording and build the result (with the captures' wire view)."""
    end = time.monotonic()
    run_.recorder.stop()
    segs = capture.stop(not_before=end + STOP_GUARD_S) if capture is not None else {}
    result = result_of(run_, rec.run_id, segs, end, warnings)
    result.slot = rec.slot
    result.registered_at = rec.created
    if capture is not None and segs:
        addr = run_.topo.addr
        result.wire = wireview.view(
            {label: capture.dir / f"{label}.pcap" for label in segs},
            offset=capture.offset, t0=run_.t0, names={addr.client: "client", addr.server: "server"})
    return result


def _take_down(run_: Run, capture: Capture | None, topo: Topology, run_id: str) -> None:
    """Peers and helpers ended (by pid), recording stopped, the captures'
    files and the namespaces removed, the slot given back."""
    for peer in run_.peers.values():
        peer.kill()
    for proc in run_.helpers:
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
    if run_.recorder is not None:
        run_.recorder.stop()
    if capture is not None:
        capture.cleanup()
    left = topo.destroy()
    registry.unregister(run_id)
    if left:
        print(f"tcplinger: could not remove {', '.join(left)}; "
              "run `tcplinger lab clean`", file=sys.stderr)
