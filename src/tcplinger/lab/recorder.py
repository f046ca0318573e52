"""Record every state change of the sockets in a run's namespaces.

Two sources at once (lab/merge.py says which is trusted for what): the
``sock:inet_sock_set_state`` tracepoint through a private tracefs instance
(collect/tracefs.py), filtered in the kernel on the run's server port and
here on the run's addresses, since events carry no namespace; and
sock_diag dumps of the client and server namespaces every
``interval`` seconds (default 20 ms), for what the tracepoint does not
show. Without tracefs, the polls alone give the timeline.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from ..collect import trace_events, tracefs
from ..collect.netlink import dump as nl
from ..collect.setns import run_in_netns
from ..model.socket import format_address
from ..model.states import TcpState
from .merge import SockView, Transition, View

DEFAULT_INTERVAL_S = 0.02
#: Polls slower than this are a fault of the lab (the brief allows 50 ms).
MAX_INTERVAL_S = 0.05
#: A dump of a side's namespace takes 0.2-1 ms here: a shorter interval
#: would only poll back to back, spinning a core for the whole run.
MIN_INTERVAL_S = 0.001


@dataclass
class RecorderStats:
    polls: int = 0
    slowest_poll_s: float = 0.0
    #: the widest window in which a change seen by polls can have
    #: happened: from the start of one dump of a side to the end of the
    #: next (a dump reads each socket somewhere between its start and
    #: end). A boundary placed by polls is off by at most half of it.
    longest_gap_s: float = 0.0
    trace_events: int = 0
    trace_lost: int = 0
    tracefs: str = ""  # "" when in use, else why not


class Recorder:
    def __init__(self, purpose: str, sides: dict[str, str], addresses: dict[str, str],
                 port: int, *, interval: float = DEFAULT_INTERVAL_S, use_tracefs: bool = True):
        """``sides``: side -> namespace path; ``addresses``: address -> side."""
        self.purpose = purpose
        self.sides = sides
        self.addresses = addresses
        self.port = port
        self.interval = min(interval, MAX_INTERVAL_S)
        self.use_tracefs = use_tracefs
        self.transitions: list[Transition] = []
        self.trace_events: list[trace_events.TraceEvent] = []
        self.views: list[View] = []
        self.stats = RecorderStats()
        self._last: dict[str, View] = {}
        self._lock = threading.Lock()
        #: one dump at a time on a side's netlink socket (the poller's and
        #: the diagnosis's, sockets_now())
        self._dump_lock = threading.Lock()
        self._dump_started: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._trace: tracefs.TraceSession | None = None
        self._sockets: dict[str, nl.DiagSocket] = {}

    # ---- life cycle ---------------------------------------------------------
    def start(self) -> None:
        if self.use_tracefs:
            try:
                self._trace = tracefs.TraceSession(
                    self.purpose, filter=trace_events.port_filter([self.port]),
                    on_event=self._on_trace).start()
            except (tracefs.TracefsUnavailable, OSError) as exc:
                self._trace = None
                self.stats.tracefs = str(exc.strerror or exc)
        else:
            self.stats.tracefs = "disabled"
        for side, path in self.sides.items():
            # A netlink socket answers for the namespace it was made in
            # (collect/netlink/dump.py): make each one inside its namespace.
            self._sockets[side] = run_in_netns(path, nl.DiagSocket)
        self.poll_once()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lab poller")
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (after one last poll) and close the trace instance."""
        if self._trace is not None:
            self._trace.drain()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._trace is not None:
            self.stats.trace_lost = self._trace.lost()
            self._trace.close()
            self._trace = None
        for sock in self._sockets.values():
            sock.close()
        self._sockets = {}

    @property
    def traced(self) -> bool:
        return not self.stats.tracefs

    # ---- tracepoint ---------------------------------------------------------
    def _on_trace(self, ev: trace_events.TraceEvent) -> None:
        if ev.event != "inet_sock_set_state" or ev.fields.get("protocol") != "IPPROTO_TCP":
            with self._lock:
                self.trace_events.append(ev)
            return
        local, remote = ev.local, ev.remote
        side = self.addresses.get(local[0])
        if side is None or remote[0] not in self.addresses:
            return  # another namespace's socket on the same port
        if ev.oldstate is None or ev.newstate is None:
            return
        if ev.newstate == TcpState.LISTEN or ev.oldstate == TcpState.LISTEN and \
                ev.newstate == TcpState.CLOSE:
            return  # the listener itself
        with self._lock:
            self.stats.trace_events += 1
            self.transitions.append(Transition(ev.t, side, (local[0], local[1]),
                                               (remote[0], remote[1]), ev.oldstate,
                                               ev.newstate))

    # ---- polling ------------------------------------------------------------
    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            nxt = last + self.interval
            delay = nxt - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            last = time.monotonic()
            self.poll_once()
        self.poll_once()

    def poll_once(self) -> None:
        for side, sock in self._sockets.items():
            with self._dump_lock:
                t0 = time.monotonic()
                table = nl.dump(nl.ALL, sock=sock)
                t1 = time.monotonic()
            self.stats.polls += 1
            self.stats.slowest_poll_s = max(self.stats.slowest_poll_s, t1 - t0)
            before = self._dump_started.get(side)
            self._dump_started[side] = t0
            if before is not None:
                self.stats.longest_gap_s = max(self.stats.longest_gap_s, t1 - before)
            socks = _connections(table)
            with self._lock:
                prev = self._last.get(side)
                if prev is not None and _same(prev.socks, socks):
                    prev.t_last = t0
                    prev.socks = socks  # keep the latest timers
                else:
                    # The dump reads each socket between t0 and t1: a change
                    # it shows happened after the previous dump started and
                    # before t1 (under load a dump can take tenths of a
                    # second, so t1 matters: merge.py).
                    view = View(side, t0, t0, socks, t1)
                    self.views.append(view)
                    self._last[side] = view

    def sockets_now(self) -> dict:
        """Every side's sockets, with tcp_info, dumped now through the
        recorder's own netlink sockets (made inside the namespaces, so no
        namespace is entered): what a diagnosis at a moment of the run
        reads, taken at that moment (side -> SocketTable)."""
        out = {}
        with self._dump_lock:
            for side, sock in self._sockets.items():
                out[side] = nl.dump(nl.ALL, tcp_info=True, sock=sock)
        return out

    def snapshot(self) -> tuple[list[Transition], list[View]]:
        with self._lock:
            views = [View(v.side, v.t_first, v.t_last, dict(v.socks), v.t_seen)
                     for v in self.views]
            return list(self.transitions), views


def _connections(table) -> dict:
    rows = table.rows
    out = {}
    for r in rows:
        if int(r["dport"]) == 0 or int(r["state"]) == TcpState.LISTEN:
            continue
        fam = int(r["family"])
        local = (format_address(fam, r["saddr"].tobytes()), int(r["sport"]))
        remote = (format_address(fam, r["daddr"].tobytes()), int(r["dport"]))
        out[(local, remote)] = SockView(int(r["state"]), bool(r["timewait"]),
                                        int(r["inode"]) == 0, int(r["cookie"]),
                                        int(r["retrans"]), int(r["expires_ms"]))
    return out


def _same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k, x in a.items():
        y = b[k]
        if (x.state, x.timewait, x.orphan, x.cookie, x.retrans) != \
                (y.state, y.timewait, y.orphan, y.cookie, y.retrans):
            return False
    return True
