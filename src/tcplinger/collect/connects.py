"""Who opens connections to where, for a window, from the state-change
tracepoint: the parser (pure, with the format in the examples below) and
the probe (:class:`ConnectProbe`, the I/O).

A connection that lives a millisecond (nginx to an upstream without
keep-alive, under ``ab``: thousands a second) is gone before a /proc walk
can find its process, yet its TIME_WAIT stays 60 s with no process at all.
The tracepoint names the process: ``connect()`` moves the socket to
SYN_SENT in the calling task's context (net/ipv4/tcp_ipv4.c
``tcp_v4_connect()``: ``tcp_set_state(sk, TCP_SYN_SENT)`` before the port
is chosen), so that event's ``common_pid`` is the connecting thread. This
is not so for transitions driven by received segments (softirq: any task;
KERNEL-NOTES). Measured here: 20 connects from a thread gave 20 SYN_SENT
events with that thread's id, the server's closes FIN_WAIT1 events with
its accepting thread's id (docs/rules.md, "Who connects").

The line is ``TASK-TID [CPU] FLAGS TS: inet_sock_set_state: ... dport=P
saddr=... daddr=A ... daddrv6=A6 oldstate=TCP_CLOSE newstate=TCP_SYN_SENT``;
``sport`` is often still 0 then, so connects are counted by destination:

>>> chunk = (b"  nginx-4242  [001] .....  10.5: inet_sock_set_state: family=AF_INET "
...     b"protocol=IPPROTO_TCP sport=0 dport=8084 saddr=0.0.0.0 daddr=127.0.0.1 "
...     b"saddrv6=:: daddrv6=::ffff:127.0.0.1 oldstate=TCP_CLOSE newstate=TCP_SYN_SENT\\n"
...     b"  nginx-4242  [000] .....  10.6: inet_sock_set_state: family=AF_INET "
...     b"protocol=IPPROTO_TCP sport=0 dport=8084 saddr=0.0.0.0 daddr=127.0.0.1 "
...     b"saddrv6=:: daddrv6=::ffff:127.0.0.1 oldstate=TCP_CLOSE newstate=TCP_SYN_SENT\\n"
...     b"  curl-77  [000] .....  10.7: inet_sock_set_state: family=AF_INET6 "
...     b"protocol=IPPROTO_TCP sport=0 dport=443 saddr=0.0.0.0 daddr=0.0.0.0 "
...     b"saddrv6=:: daddrv6=fd00::2 oldstate=TCP_CLOSE newstate=TCP_SYN_SENT\\n")
>>> c = ConnectCounts()
>>> sorted(c.add_chunk(chunk))  # the threads seen in it
[77, 4242]
>>> sorted(c.by_task.items())
[((77, 10, 'fd00::2', 443), 1), ((4242, 2, '127.0.0.1', 8084), 2)]

Used over ``report --interval``: the window the counters are sampled over.
Root and tracefs only; without them :meth:`ConnectProbe.start` says why
and the diagnosis goes without (it then names only processes that hold a
socket to the destination at the moment of the snapshot).

A thread id is folded into its process (``Tgid:`` of /proc/TID/status,
readable for any thread id though /proc lists only processes) and placed
in its network namespace (/proc/TID/ns/net): the tracepoint carries no
namespace (KERNEL-NOTES).

>>> parse_status_tgid("Name:\\tnginx\\nUmask:\\t0022\\nState:\\tS\\nTgid:\\t4242\\nNgid:\\t0\\n")
4242
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import tracefs
from .netns import ns_inode
from .owners import process_owner
from .roots import PROC

_CONNECT = re.compile(
    rb"-(\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[\d+\][^\n]*? inet_sock_set_state: family=AF_INET(6?) "
    rb"protocol=\S+ sport=\d+ dport=(\d+) saddr=\S+ daddr=(\S+) saddrv6=\S+ daddrv6=(\S+) "
    rb"oldstate=TCP_\w+ newstate=TCP_SYN_SENT")
_LOST = re.compile(rb"CPU:\d+ \[LOST (\d+) EVENTS\]")

#: The kernel-side filter: only entries into SYN_SENT (TcpState.SYN_SENT = 2).
FILTER = "newstate == 2"


@dataclass
class ConnectCounts:
    """Connects per (thread id, family, destination address, port)."""

    by_task: Counter = field(default_factory=Counter)
    lost: int = 0

    def add_chunk(self, chunk: bytes) -> set[int]:
        """Count the chunk's connects; the thread ids seen in it."""
        tids = set()
        for tid, v6, dport, daddr, daddr6 in _CONNECT.findall(chunk):
            addr = (daddr6 if v6 else daddr).decode()
            tids.add(int(tid))
            self.by_task[(int(tid), 10 if v6 else 2, addr, int(dport))] += 1
        if b"LOST" in chunk:
            self.lost += sum(int(n) for n in _LOST.findall(chunk))
        return tids


@dataclass(frozen=True)
class Connector:
    """A process seen connecting ``count`` times to ``addr``:``port`` in
    ``window_s`` seconds (threads folded into their process)."""

    pid: int
    family: int
    addr: str  # as the kernel printed it ("127.0.0.1", "fd00::2")
    port: int
    count: int

    def per_s(self, window_s: float) -> float:
        return self.count / window_s if window_s > 0 else 0.0


def by_process(counts: ConnectCounts, tgid_of) -> list[Connector]:
    """Fold threads into processes: ``tgid_of(tid)`` gives the thread's
    process id, or None when it is gone (its connects are dropped).

    >>> c = ConnectCounts()
    >>> c.by_task.update({(11, 2, "10.0.0.7", 5432): 3, (12, 2, "10.0.0.7", 5432): 4,
    ...                   (99, 2, "10.0.0.7", 5432): 1})
    >>> by_process(c, {11: 10, 12: 10}.get)
    [Connector(pid=10, family=2, addr='10.0.0.7', port=5432, count=7)]
    """
    total: Counter = Counter()
    for (tid, fam, addr, port), n in counts.by_task.items():
        pid = tgid_of(tid)
        if pid is not None:
            total[(pid, fam, addr, port)] += n
    return [Connector(pid, fam, addr, port, n)
            for (pid, fam, addr, port), n in sorted(total.items(), key=lambda kv: -kv[1])]


#: Trace lines read a second at most (the rest are counted lost): a storm of
#: connects must not take a core from the host being diagnosed.
MAX_LINES_PER_S = 200_000


def parse_status_tgid(text: str) -> int | None:
    """The process (thread group) id from /proc/TID/status."""
    for line in text.splitlines():
        if line.startswith("Tgid:"):
            value = line[5:].strip()
            return int(value) if value.isdigit() else None
    return None


#: Threads placed while the window is recording, at most: a client that
#: connects once and exits (curl in a shell loop) is gone by the end of the
#: window, so it is placed, and its process's details read, when its first
#: connect is read; beyond this many the rest are placed at the end.
MAX_PLACED_EARLY = 5000


@dataclass(frozen=True)
class ConnectSample:
    """Connects seen in ``window_s`` seconds, per network namespace inode;
    ``lost`` events the ring buffer dropped, ``unplaced`` connects of
    threads gone before they could be placed; ``processes``: pid -> the
    process's details (collect/owners.Owner, fd -1) as read when it was
    placed, for the processes that may have exited since."""

    window_s: float
    by_netns: dict  # inode -> list[Connector]
    lost: int = 0
    unplaced: int = 0
    processes: dict = field(default_factory=dict)


class ConnectProbe:
    """Start before the window, stop after it (always: the instance is
    removed in :meth:`stop`)."""

    def __init__(self, proc_root: Path = PROC):
        self.proc_root = Path(proc_root)
        self.counts = ConnectCounts()
        self.session: tracefs.TraceSession | None = None
        self.error: str | None = None
        self._t0 = 0.0
        self.places: dict[int, tuple[int, int] | None] = {}  # tid -> (pid, netns inode)
        self.processes: dict = {}  # pid -> Owner, read when first placed

    def _on_chunk(self, chunk: bytes) -> None:
        """Count, and place the threads not seen before while they live."""
        for tid in self.counts.add_chunk(chunk):
            if tid not in self.places and len(self.places) < MAX_PLACED_EARLY:
                self._remember(tid)

    def _remember(self, tid: int) -> tuple[int, int] | None:
        place = self.places[tid] = self._place(tid)
        if place is not None and place[0] not in self.processes:
            owner = process_owner(place[0], self.proc_root)
            if owner is not None:
                self.processes[place[0]] = owner
        return place

    def start(self) -> bool:
        try:
            self.session = tracefs.TraceSession(
                "connects", events=("sock/inet_sock_set_state",), filter=FILTER,
                buffer_kb=2048, on_chunk=self._on_chunk,
                max_lines_per_s=MAX_LINES_PER_S).start()
        except (tracefs.TracefsUnavailable, OSError) as exc:
            self.session = None
            self.error = exc.strerror or str(exc)
            return False
        self._t0 = time.monotonic()
        return True

    def stop(self) -> ConnectSample | None:
        if self.session is None:
            return None
        # the window is exactly while recording was on (tracing_on 1 .. 0)
        window = self.session.pause() - (self.session.on_at or self._t0)
        try:
            time.sleep(0.02)  # trace_pipe wakes its reader per event: let it catch up
            lost = self.session.lost()
        finally:
            self.session.close()
            self.session = None
        places = self.places
        for tid, *_ in self.counts.by_task:
            if tid not in places:
                self._remember(tid)
        by_netns: dict[int, list[Connector]] = {}
        netns_of = {}
        for tid, place in places.items():
            if place is not None:
                netns_of[place[0]] = place[1]
        connectors = by_process(self.counts, lambda tid: (places.get(tid) or (None,))[0])
        for c in connectors:
            by_netns.setdefault(netns_of[c.pid], []).append(c)
        unplaced = sum(n for (tid, *_), n in self.counts.by_task.items() if places[tid] is None)
        return ConnectSample(window, by_netns, lost + self.counts.lost, unplaced,
                             dict(self.processes))

    def _place(self, tid: int) -> tuple[int, int] | None:
        """(process id, netns inode) of a thread, None when it is gone."""
        base = self.proc_root / str(tid)
        try:
            tgid = parse_status_tgid((base / "status").read_text(errors="replace"))
            inode = ns_inode(base / "ns" / "net")
        except OSError:
            return None
        return None if tgid is None else (tgid, inode)
