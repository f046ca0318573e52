"""Run a scenario: build its namespaces, record, let its peers act, check
the outcome, and always take everything down again.

The order of a run: register (a run id and an address slot), namespaces
and veths, sysctls, the router's rules or middlebox, the recorder
(tracefs + sock_diag polls) and the captures, then the scenario's script
(which starts peers, acts, waits, and names the moments to diagnose), a
last diagnosis, and the tear-down. Tear-down runs in ``finally``: at the
end, on an exception, on Ctrl-C, and on SIGTERM/SIGHUP (turned into
KeyboardInterrupt while a run is in progress, in the main thread).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from ..model.states import name as state_name
from ..model.timeline import Note, Packet, PartyTimeline, Timeline
from . import diagnosis as diag_mod
from . import merge as merge_mod
from . import middlebox as mb_mod
from . import packets as packets_mod
from . import wireview
from . import registry
from .capture import Capture, pdeathsig_prefix
from .checks import Observed, evaluate
from .merge import Action
from .peers import PeerProcess
from .recorder import DEFAULT_INTERVAL_S, Recorder
from .scenario import Prepared, Scenario, prepare
from .slack import kernel_hz, late_by
from .topology import Addressing, Topology

#: Seconds the run goes on after a script's last step, so the last
#: transitions are recorded and the timeline shows what came after.
TAIL_S = 0.5
#: The captures stop this long after the end of the observation at the
#: earliest (capture.py, Capture.stop): 30 times the slowest forwarding
#: measured on a loaded machine, and time for tcpdump to read its ring.
STOP_GUARD_S = 0.25


@dataclass(frozen=True)
class RunOptions:
    scenario: str
    sets: tuple = ()  # ((name, text), ...)
    duration: float | None = None  # cap on the scenario's own horizon
    interval: float = DEFAULT_INTERVAL_S
    tracefs: bool = True
    capture: bool = True
    diagnose: bool = True


class LabError(RuntimeError):
    """The lab could not run (no namespaces, a tool missing...)."""


@dataclass(frozen=True)
class Tolerance:
    """How far a measured lifetime may be from the configured one: a
    timer fires up to one wheel granule late (lab/slack.py), the recorder
    places poll-seen changes within half a poll interval, and scheduling
    of the lab's own processes adds a little."""

    interval: float
    hz: int | None
    sched_s: float = 0.15

    def lo(self, seconds: float) -> float:
        return max(0.0, seconds - self.interval - 0.05)

    def hi(self, seconds: float) -> float:
        return seconds + late_by(seconds, self.hz) + self.interval + self.sched_s

    def about(self, seconds: float) -> tuple[float, float]:
        return self.lo(seconds), self.hi(seconds)


@dataclass
class Conn:
    """One connection the script opened: the peers' socket names and the
    4-tuples as each side sees them."""

    client: str
    server: str
    client_key: tuple
    server_key: tuple
    t_connect: float


class Run:
    """What a scenario script works with."""

    def __init__(self, scenario: Scenario, prepared: Prepared, topo: Topology, msg,
                 progress=None, horizon: float = 60.0, options: RunOptions | None = None):
        self.scenario = scenario
        self.options = options or RunOptions(scenario.name)
        self.p = prepared.params
        self.prepared = prepared
        self.topo = topo
        self.addr: Addressing = topo.addr
        self.msg = msg
        self.progress = progress
        self.horizon = horizon
        self.t0 = time.monotonic()
        self.peers: dict[str, PeerProcess] = {}
        self.helpers: list[subprocess.Popen] = []
        self.notes: list[Note] = []
        self.actions: list[Action] = []
        self.findings: list = []
        self.facts: dict = {}
        self.bridge_events: list[dict] = []
        self.ct_lines: list[str] = []
        self.recorder: Recorder | None = None
        #: each namespace's kernel context when the script began, so that the
        #: diagnosis sees which counters rose (TCPTimeWaitOverflow...)
        self.baseline: dict = {}
        self._listening = False
        self._conns = 0

    # ---- time ------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self.t0

    @property
    def deadline(self) -> float:
        return self.t0 + self.horizon

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def _show(self, key: str, until: float, fields: dict) -> None:
        if self.progress is not None:
            self.progress(self.msg("lab.progress.waiting", what=self.msg(key, **fields),
                                   now=f"{self.now():.1f}", until=f"{until - self.t0:.1f}"))

    def wait(self, seconds: float, key: str = "lab.wait.time", **fields) -> None:
        """Sleep ``seconds`` (never past the run's end)."""
        end = min(time.monotonic() + seconds, self.deadline)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            self._show(key, end, fields)
            time.sleep(min(left, 0.5))

    def wait_for(self, predicate, timeout: float, key: str, **fields) -> bool:
        end = min(time.monotonic() + timeout, self.deadline)
        while True:
            if predicate():
                return True
            if time.monotonic() >= end:
                return False
            self._show(key, end, fields)
            time.sleep(0.05)

    # ---- sockets as polled --------------------------------------------------
    def polled(self, side: str, key) -> object | None:
        """The socket on ``key`` in the latest poll of ``side`` (a SockView)."""
        rec = self.recorder
        last = rec._last.get(side) if rec else None
        return None if last is None else last.socks.get(tuple(key))

    def wait_state(self, side: str, key, states, timeout: float) -> bool:
        want = {int(s) for s in states}
        return self.wait_for(lambda: (v := self.polled(side, key)) is not None
                             and v.state in want, timeout, "lab.wait.state", side=side,
                             state="/".join(state_name(s) for s in sorted(want)))

    def wait_gone(self, side: str, key, timeout: float) -> bool:
        return self.wait_for(lambda: self.polled(side, key) is None, timeout,
                             "lab.wait.gone", side=side)

    # ---- peers -------------------------------------------------------------
    def peer(self, side: str) -> PeerProcess:
        if side not in self.peers:
            self.peers[side] = PeerProcess(side, self.topo.ns(side), on_event=self._peer_event)
        return self.peers[side]

    def _peer_event(self, ev) -> None:
        obj = ev.obj
        kind = obj.get("event")
        if kind in ("eof", "closed") and str(obj.get("name", "")).startswith("a"):
            # auto-accepted by `serve`: one line per connection would drown
            # the timeline; the close still counts as an action.
            if kind == "closed":
                self.actions.append(Action(obj["t"], ev.name, _key(obj), "close"))
            return
        if kind in ("eof", "closed", "error"):
            fields = (("socket", obj.get("name")),)
            if kind == "error":
                fields += (("error", obj.get("error")),)
            self.notes.append(Note(round(obj["t"] - self.t0, 6), ev.name,
                                   "lab.note.app_" + kind, fields))
            if kind == "closed":
                self.actions.append(Action(obj["t"], ev.name, _key(obj), "close"))

    def note(self, party: str, key: str, t: float | None = None, **fields) -> None:
        t = time.monotonic() if t is None else t
        self.notes.append(Note(round(t - self.t0, 6), party, key, tuple(fields.items())))

    def listen(self, **opts) -> None:
        if not self._listening:
            self.peer("server").call("listen", name="l", addr=self.addr.server,
                                     port=self.addr.server_port, opts=opts or None)
            self._listening = True

    def connect(self, client_opts: dict | None = None, server_opts: dict | None = None,
                request: str | None = None) -> Conn:
        """Open one connection (the server accepts it); with ``request``,
        the client sends it and the server reads it and answers."""
        self.listen()
        self._conns += 1
        cname, sname = f"c{self._conns}", f"s{self._conns}"
        r = self.peer("client").call("connect", name=cname, addr=self.addr.server,
                                     port=self.addr.server_port, opts=client_opts)
        a = self.peer("server").call("accept", listener="l", name=sname, opts=server_opts)
        ck = (tuple(r["local"]), tuple(r["remote"]))
        sk = (tuple(a["local"]), tuple(a["remote"]))
        self.note("client", "lab.note.connect", t=r["t"], port=r["local"][1])
        if request is not None:
            self.peer("client").call("send", name=cname, data=request)
            self.peer("server").call("recv", name=sname)
            self.peer("server").call("send", name=sname, data="HTTP/1.1 200 OK\r\n"
                                     "Content-Length: 0\r\nConnection: keep-alive\r\n\r\n")
            self.peer("client").call("recv", name=cname)
            self.note("client", "lab.note.exchange")
        return Conn(cname, sname, ck, sk, r["t"])

    def do(self, side: str, op: str, sock: str | None, key=None, note: str | None = None,
           **args) -> dict:
        """A peer call recorded as an application action (close, shutdown,
        exit) at the time the call returned."""
        if sock is not None:
            args["name"] = sock
        reply = self.peer(side).call(op, **args)
        if op in ("close", "shutdown", "exit"):
            self.actions.append(Action(reply["t0"], side, key if op != "exit" else None, op))
        self.note(side, note or f"lab.note.app_{op}", t=reply["t0"],
                  **({"how": args["how"].upper()} if op == "shutdown" else {}))
        return reply

    def exit(self, side: str) -> float | None:
        peer = self.peers.pop(side, None)
        if peer is None:
            return None
        t = peer.exit()
        if t is not None:
            self.actions.append(Action(t, side, None, "exit"))
            self.note(side, "lab.note.app_exit", t=t)
        return t

    # ---- the path ------------------------------------------------------------
    def nft(self, role: str, ruleset: str) -> None:
        done = subprocess.run(["ip", "netns", "exec", self.topo.ns(role), "nft", "-f", "-"],
                              input=ruleset, capture_output=True, text=True)
        if done.returncode != 0:
            raise LabError(f"nft in {role}: {done.stderr.strip()}")
        self.note("router", "lab.note.nft")

    def nft_counter(self, role: str, table: str, name: str) -> int | None:
        done = subprocess.run(["ip", "netns", "exec", self.topo.ns(role), "nft", "-j", "list",
                               "counter", "inet", table, name], capture_output=True, text=True)
        if done.returncode != 0:
            return None
        for item in json.loads(done.stdout).get("nftables", []):
            if "counter" in item:
                return int(item["counter"]["packets"])
        return None

    def tcpext(self, role: str) -> dict:
        from ..collect.kernel import parse_netstat
        from ..collect.setns import run_in_netns

        def read():
            with open("/proc/thread-self/net/netstat") as f:
                return parse_netstat(f.read())
        return run_in_netns(self.topo.path(role), read)

    def helper(self, role: str, argv: list[str], sink: list, parse_json: bool = True):
        """A long-running process in a namespace whose stdout lines are
        collected (with their arrival time); ended by pid at tear-down."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.topo.ns(role),
                                 *pdeathsig_prefix(), *argv],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, bufsize=1,
                                env={**os.environ, "PYTHONPATH": _pythonpath()})
        self.helpers.append(proc)

        def read():
            for line in proc.stdout:
                if parse_json:
                    try:
                        sink.append(json.loads(line))
                    except ValueError:
                        pass
                else:
                    sink.append(line.rstrip("\n"))
        threading.Thread(target=read, daemon=True, name=f"helper {argv[0]}").start()
        return proc

    def diagnose(self, at: str) -> None:
        """What tcplinger diagnoses now, in the client, server and router
        namespaces."""
        if not self.options.diagnose:
            return
        if self.progress is not None:
            self.progress(self.msg("lab.progress.diagnosing", at=at))
        transitions, views = self.recorder.snapshot()
        now = time.monotonic()

        def age_of(side, key, state):
            for tr in reversed(transitions):
                if tr.side == side and (tr.local, tr.remote) == key:
                    return now - tr.t if tr.new == state else None
            return None
        try:
            self.findings += diag_mod.diagnose(
                {"client": self.topo.ns("client"), "server": self.topo.ns("server"),
                 "router": self.topo.ns("router")}, at=at, t0=self.t0, msg=self.msg,
                age_of=age_of if self.recorder.traced else None, previous=self.baseline)
        except Exception as exc:  # noqa: BLE001 - the lab goes on; the failure is reported
            self.note("lab", "lab.note.diagnosis_failed", error=f"{type(exc).__name__}: {exc}")


@dataclass
class LabResult:
    scenario: Scenario
    prepared: Prepared
    kernel: str
    run_id: str
    horizon_s: float
    sockets: list
    middlebox: PartyTimeline | None
    packets: list
    notes: list
    findings: list
    facts: dict
    checks: list
    failed_connects: list
    recorder: dict
    warnings: list = field(default_factory=list)
    #: the captures as wire/ reads them (lab/wireview.py), by interface
    wire: dict = field(default_factory=dict)
    tolerance: Tolerance | None = None
    #: what merge() was given (transitions, views, actions, t0): for fixtures
    raw: dict = field(default_factory=dict, repr=False)
    slot: int = -1  # the address slot the registry gave the run
    registered_at: float = 0.0  # time.time() when the run took its slot
    released_at: float = 0.0  # ... and when it gave it back

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def party_names(self) -> list[str]:
        """Timeline names: the first socket of a side is the side itself
        (packets name their sender that way), later ones are numbered."""
        seen: dict[str, int] = {}
        out = []
        for s in self.sockets:
            seen[s.side] = seen.get(s.side, 0) + 1
            out.append(s.side if seen[s.side] == 1 else f"{s.side} {seen[s.side]}")
        return out

    def timeline(self) -> Timeline:
        parties = [PartyTimeline(name, "endpoint", "kernel", tuple(s.spans))
                   for name, s in zip(self.party_names(), self.sockets)]
        if self.middlebox is not None:
            parties.insert(min(1, len(parties)), self.middlebox)
        return Timeline(tuple(parties), self.horizon_s, tuple(self.packets), tuple(self.notes),
                        source="lab")

    def to_json(self, msg) -> dict:
        def r(x):
            return None if x is None else round(x, 6)
        socks = []
        for name, s in zip(self.party_names(), self.sockets):
            d = s.to_json()
            d["name"] = name
            for st in d["states"]:
                st["start_s"], st["end_s"] = r(st["start_s"]), r(st["end_s"])
            socks.append(d)
        return {
            "scenario": self.scenario.name,
            "seeds": list(self.scenario.seeds),
            "params": self.prepared.params,
            "set": self.prepared.given,
            "sysctls": self.prepared.sysctl_json(),
            "kernel": self.kernel,
            "run_id": self.run_id,
            "slot": self.slot,
            "registered_at": round(self.registered_at, 3),
            "released_at": round(self.released_at, 3),
            "duration_s": r(self.horizon_s),
            "sockets": socks,
            "middlebox": None if self.middlebox is None else {
                "name": self.middlebox.name, "profile": self.middlebox.profile,
                "states": [{**s.to_json(), "start_s": r(s.start_s), "end_s": r(s.end_s)}
                           for s in self.middlebox.spans]},
            "packets": [p.to_json() for p in self.packets],
            "notes": [{"t_s": n.t_s, "party": n.party, "key": n.key,
                       "text": msg(n.key, **n.field_dict())} for n in self.notes],
            "failed_connects": [{"t_s": r(f.t), "side": f.side,
                                 "remote": f"{f.remote[0]}:{f.remote[1]}"}
                                for f in self.failed_connects],
            "facts": self.facts,
            "checks": [c.to_json(msg) for c in self.checks],
            "ok": self.ok,
            "diagnosis": [f.to_json() for f in self.findings],
            "recorder": self.recorder,
            "warnings": self.warnings,
            "wire": self.wire,
        }


def kernel_context(topo: Topology, role: str):
    """Sysctls and counters of one of the run's namespaces, read inside it."""
    from ..collect import kernel as kernel_reader
    from ..collect.setns import run_in_netns
    from pathlib import Path

    host = kernel_reader.read_global_sysctls(Path("/proc"))
    return run_in_netns(topo.path(role), kernel_reader.read_kernel_context, Path("/proc"),
                        proc_net=Path("/proc/thread-self/net"), global_sysctls=host)


def _key(obj: dict):
    """A peer event's 4-tuple (as merge keys it), None if it has none."""
    if "local" not in obj or "remote" not in obj:
        return None
    return (tuple(obj["local"]), tuple(obj["remote"]))


def kernel_version() -> str:
    return platform.release()


def _pythonpath() -> str:
    from .peers import _package_root
    return _package_root()


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
    if not os.path.exists("/proc/self/ns/net"):
        raise LabError("this kernel has no network namespaces")
    try:
        done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    except FileNotFoundError:
        raise LabError("`ip` (iproute2) is not installed") from None
    if done.returncode != 0:
        raise LabError(f"`ip netns` does not work here: {done.stderr.strip()}")


def run(opts: RunOptions, scenario: Scenario, msg, progress=None) -> LabResult:
    """Run ``scenario`` once; raises ParamError before touching anything
    when a parameter is wrong."""
    prepared = prepare(scenario, opts.sets)
    check_environment()
    horizon = scenario.horizon(prepared.params)
    if opts.duration is not None:
        horizon = opts.duration
    rec = registry.register(scenario.name)
    topo = Topology(rec.run_id, Addressing(rec.slot))
    run_ = None
    capture = None
    recorder = None
    warnings: list[str] = []
    with _Signals():
        try:
            if progress is not None:
                progress(msg("lab.progress.setup", scenario=scenario.name))
            topo.create(forwarding=scenario.router != "ipfw")
            for role, values in prepared.sysctls.items():
                try:
                    topo.set_sysctls(role, {k: v for k, v in values.items()})
                except OSError as exc:
                    raise LabError(f"cannot set sysctls in the {role} namespace: {exc}") from exc
            run_ = Run(scenario, prepared, topo, msg, progress, horizon, opts)
            recorder = Recorder(f"lab-{rec.run_id}", {"client": topo.path("client"),
                                                     "server": topo.path("server")},
                                {topo.addr.client: "client", topo.addr.server: "server"},
                                topo.addr.server_port, interval=opts.interval,
                                use_tracefs=opts.tracefs)
            run_.recorder = recorder
            if opts.capture:
                capture = Capture(topo.ns("router"), {"client": topo.link("a"),
                                                      "server": topo.link("b")},
                                  filter=f"tcp port {topo.addr.server_port}", run_id=rec.run_id)
                capture.start()
                if capture.error:
                    warnings.append(capture.error)
            recorder.start()
            if recorder.stats.tracefs:
                warnings.append(msg("lab.warn.no_tracefs", why=recorder.stats.tracefs))
            run_.t0 = time.monotonic()
            run_.horizon = horizon
            run_.baseline = {role: (kernel_context(topo, role), time.time())
                             for role in ("client", "server", "router")}
            scenario.script(run_)
            if opts.duration is not None:  # asked to watch this long: go on recording
                run_.wait(run_.left() - TAIL_S, "lab.wait.duration")
            run_.wait(TAIL_S, "lab.wait.tail")
            run_.diagnose("end")
            end = time.monotonic()
            recorder.stop()
            segs = capture.stop(not_before=end + STOP_GUARD_S) if capture is not None else {}
            result = _result(run_, scenario, prepared, rec.run_id, recorder, segs, end,
                             warnings, opts)
            result.slot = rec.slot
            result.registered_at = rec.created
            if capture is not None and segs:
                result.wire = wireview.view(
                    {label: capture.dir / f"{label}.pcap" for label in segs},
                    offset=capture.offset, t0=run_.t0,
                    names={topo.addr.client: "client", topo.addr.server: "server"})
        finally:
            if run_ is not None:
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
            if recorder is not None:
                recorder.stop()
            if capture is not None:
                capture.cleanup()
            left = topo.destroy()
            registry.unregister(rec.run_id)
            if left:
                print(f"tcplinger: could not remove {', '.join(left)}; "
                      "run `tcplinger lab clean`", file=sys.stderr)
    result.released_at = time.time()
    return result


def _result(run_: Run, scenario, prepared, run_id, recorder, segs, end, warnings,
            opts) -> LabResult:
    t0 = run_.t0
    transitions, views = recorder.snapshot()
    failed: list = []
    sockets = merge_mod.merge(transitions, views, run_.actions, t0=t0, failed=failed)
    sockets = [s for s in sockets if s.spans and (s.spans[-1].end_s is None
                                                  or s.spans[-1].end_s > -1)]
    horizon = end - t0
    names = {run_.addr.client: "client", run_.addr.server: "server"}
    middlebox = None
    notes = list(run_.notes)
    if run_.bridge_events:
        middlebox, more = mb_mod.ipfw_party(run_.bridge_events, t0=t0, names=names)
        notes += more
    elif run_.ct_lines:
        events = [e for e in (mb_mod.parse_conntrack_event(x) for x in run_.ct_lines)
                  if e is not None]
        flow = run_.facts.pop("_ct_flow", None)
        activity = None
        if flow is not None:
            want = (tuple(flow[0]), tuple(flow[1]))
            events = [e for e in events if e.orig == want]
            if segs:
                activity = packets_mod.passed_times(
                    packets_mod.split(segs.get("client", []), segs.get("server", []),
                                      run_.addr.client, run_.addr.server), want, t0=t0)
        offset = time.time() - time.monotonic()
        middlebox, more = mb_mod.conntrack_party(events, t0=t0, offset=offset,
                                                 activity=activity)
        notes += more
    packets: list[Packet] = []
    if segs:
        caps = packets_mod.split(segs.get("client", []), segs.get("server", []),
                                 run_.addr.client, run_.addr.server)
        router = {"ipfw": "ipfw"}.get(scenario.router, run_.facts.pop("_dropper", "router"))
        packets = packets_mod.attribute(caps, names, t0=t0, router=router,
                                        forger="ipfw" if scenario.router == "ipfw" else "router",
                                        until=end)
    notes.sort(key=lambda n: n.t_s)
    tol = Tolerance(recorder.interval, kernel_hz())
    observed = Observed(sockets, horizon, packets, run_.findings,
                        {**run_.facts, "_middlebox": middlebox})
    if scenario.derive is not None:
        observed.facts.update(scenario.derive(observed, prepared.params))
    observed.facts.pop("_middlebox", None)
    checks = evaluate(scenario.checks(prepared.params, tol), observed)
    stats = recorder.stats
    rec_json = {"tracefs": recorder.traced, "tracefs_unavailable": stats.tracefs or None,
                "poll_interval_s": recorder.interval, "polls": stats.polls,
                "longest_poll_gap_s": round(stats.longest_gap_s, 4),
                "slowest_poll_s": round(stats.slowest_poll_s, 4),
                "trace_events": stats.trace_events, "trace_lost": stats.trace_lost,
                "hz": kernel_hz(), "packets_captured": sum(len(v) for v in segs.values())}
    return LabResult(scenario, prepared, kernel_version(), run_id, horizon, sockets, middlebox,
                     packets, notes, run_.findings, observed.facts, checks, failed, rec_json,
                     warnings, tol, raw={"transitions": transitions, "views": views,
                                         "actions": list(run_.actions), "t0": t0})
