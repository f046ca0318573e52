"""What a scenario's script works with: the run in progress (:class:`Run`):
its time and waits, the sockets as polled, the peers and their actions,
the router's rules and helpers, and the diagnosis at named moments (the
application layer's, handed in: app/lab_diagnosis.py)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass

from ..model.states import name as state_name
from ..model.timeline import Note
from .capture import pdeathsig_prefix
from .merge import Action
from .peer_process import PeerProcess, package_root
from .recorder import DEFAULT_INTERVAL_S, Recorder
from .scenario import Prepared, Scenario
from .topology import Addressing, Topology


class LabError(RuntimeError):
    """The lab could not run (no namespaces, a tool missing...)."""


@dataclass(frozen=True)
class RunOptions:
    scenario: str
    sets: tuple = ()  # ((name, text), ...)
    duration: float | None = None  # cap on the scenario's own horizon
    interval: float = DEFAULT_INTERVAL_S
    tracefs: bool = True
    capture: bool = True
    diagnose: bool = True


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
                 progress=None, horizon: float = 60.0, options: RunOptions | None = None,
                 diagnosis=None):
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
        #: ``diagnosis(namespaces, at=, t0=, msg=, age_of=, tables=,
        #: taken_at=)`` -> findings, with ``start(namespaces)`` called when the
        #: run begins (app/lab_diagnosis.py); None: no diagnosis
        self.diagnosis = diagnosis if self.options.diagnose else None
        self._listening = False
        self._conns = 0

    def namespaces(self) -> dict[str, str]:
        """The run's namespaces by role."""
        return {role: self.topo.ns(role) for role in ("client", "server", "router")}

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

    def polled_states(self, side: str) -> list[int]:
        """The states of ``side``'s sockets in its latest poll."""
        rec = self.recorder
        last = rec._last.get(side) if rec else None
        return [] if last is None else [v.state for v in last.socks.values()]

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
        from ..collect.roots import PROC
        from ..collect.setns import run_in_netns

        def read():  # thread-self: this thread entered the namespace, the process did not
            return parse_netstat((PROC / "thread-self" / "net" / "netstat").read_text())
        return run_in_netns(self.topo.path(role), read)

    def helper(self, role: str, argv: list[str], sink: list, parse_json: bool = True):
        """A long-running process in a namespace whose stdout lines are
        collected (with their arrival time); ended by pid at tear-down."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.topo.ns(role),
                                 *pdeathsig_prefix(), *argv],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, bufsize=1,
                                env={**os.environ, "PYTHONPATH": package_root()})
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
        namespaces: of the sockets as the recorder dumps them at once (the
        rest of the diagnosis, its sysctls, counters and owners, takes its
        time after)."""
        if self.diagnosis is None:
            return
        tables = self.recorder.sockets_now()
        now = time.monotonic()
        if self.progress is not None:
            self.progress(self.msg("lab.progress.diagnosing", at=at))
        transitions, views = self.recorder.snapshot()
        transitions = [tr for tr in transitions if tr.t <= now]  # up to the moment

        def age_of(side, key, state):
            for tr in reversed(transitions):
                if tr.side == side and (tr.local, tr.remote) == key:
                    return now - tr.t if tr.new == state else None
            return None
        try:
            self.findings += self.diagnosis(
                self.namespaces(), at=at, t0=self.t0, msg=self.msg,
                age_of=age_of if self.recorder.traced else None, tables=tables, taken_at=now)
        except Exception as exc:  # noqa: BLE001 - the lab goes on; the failure is reported
            self.note("lab", "lab.note.diagnosis_failed", error=f"{type(exc).__name__}: {exc}")


def _key(obj: dict):
    """A peer event's 4-tuple (as merge keys it), None if it has none."""
    if "local" not in obj or "remote" not in obj:
        return None
    return (tuple(obj["local"]), tuple(obj["remote"]))
