"""Merge what the lab observed into one timeline per socket.

Pure: observations in, :class:`SocketTimeline` out. Three sources, each
used where it is exact:

- **transitions** from the ``sock:inet_sock_set_state`` tracepoint: every
  state change of a full socket, to the microsecond;
- **views** from sock_diag polls (every <= 50 ms): which sockets exist,
  their state, whether they are timewait-type minisockets and whether a
  process still holds them. The tracepoint is blind to minisockets (no
  event when one moves from FIN_WAIT2 to TIME_WAIT or expires) and to an
  owner closing a socket without a state change; polls fill those in, at
  the midpoint of the window in which the change happened (from the start
  of the last dump without it to the end of the first with it: error at
  most half of that window, the recorder's ``longest_gap_s``). A
  minisock's expiry is placed no earlier than its timer (the
  ``expires_ms`` of the last dump that listed it): a timer-wheel timer
  never fires early (lab/slack.py);
- **actions** of the lab's own processes (close, exit), timed by the
  process itself, which place an orphaning exactly when polls bracket it.

Without transitions (no tracefs) everything comes from the views.

A full socket handed to a minisock shows ``FIN_WAIT2 -> CLOSE`` in the
trace while polls go on listing it as a timewait-type socket: the
minisock's span starts at that event.

>>> A, B = ("10.0.0.1", 40000), ("10.0.0.2", 80)
>>> trs = [Transition(0.10, "client", ("10.0.0.1", 0), B, 7, 2),
...        Transition(0.11, "client", A, B, 2, 1),
...        Transition(1.00, "client", A, B, 1, 4),
...        Transition(1.01, "client", A, B, 4, 5),
...        Transition(1.01, "client", A, B, 5, 7)]
>>> views = [View("client", 0.5, 0.9, {(A, B): SockView(1, False, False)}),
...          View("client", 1.02, 6.0, {(A, B): SockView(5, True, True)}),
...          View("client", 6.02, 7.0, {})]
>>> [tl] = merge(trs, views, [], t0=0.0)
>>> [(s.state, round(s.start_s, 2), s.end_s and round(s.end_s, 2), s.minisock) for s in tl.spans]
[(2, 0.1, 0.11, False), (1, 0.11, 1.0, False), (4, 1.0, 1.01, False), (5, 1.01, 6.01, True)]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model.states import TcpState
from ..model.timeline import StateSpan

Addr = tuple[str, int]
Key = tuple[Addr, Addr]

CLOSE = int(TcpState.CLOSE)
SYN_SENT = int(TcpState.SYN_SENT)
LISTEN = int(TcpState.LISTEN)
#: Trace and polls taken within this many seconds of each other are
#: considered simultaneous (a dump takes ~1 ms; events are read late).
SLACK_S = 0.005
#: An application's close() is timed by the application just before the
#: call: the state change it causes comes within the call. A close this
#: close to the start of a state caused it: the socket was orphaned from
#: the start.
ACTION_LAG_S = 0.05


@dataclass(frozen=True)
class Transition:
    t: float
    side: str
    local: Addr
    remote: Addr
    old: int
    new: int


@dataclass(frozen=True)
class SockView:
    state: int
    timewait: bool  # a timewait-type minisocket
    orphan: bool  # no process holds it (inode 0)
    cookie: int = 0
    retrans: int = 0
    expires_ms: int = 0


@dataclass
class View:
    """One side's connection sockets, unchanged from ``t_first`` to
    ``t_last`` (the starts of the first and last poll that saw exactly
    this); ``t_seen``: the end of the first one (None: ``t_first``). A dump
    reads each socket between its start and its end, so a change a view
    shows first happened between the previous view's ``t_last`` and its
    ``t_seen``."""

    side: str
    t_first: float
    t_last: float
    socks: dict  # Key -> SockView
    t_seen: float | None = None

    @property
    def seen(self) -> float:
        return self.t_first if self.t_seen is None else self.t_seen


@dataclass(frozen=True)
class Action:
    """An application call on a socket (``close``, ``exit``, ``shutdown``)."""

    t: float
    side: str
    key: Key | None  # None: every socket of the side (exit)
    what: str


@dataclass(frozen=True)
class FailedConnect:
    t: float
    side: str
    local_addr: str
    remote: Addr


@dataclass
class SocketTimeline:
    side: str
    local: Addr
    remote: Addr
    spans: list = field(default_factory=list)  # StateSpan
    cookie: int = 0

    @property
    def name(self) -> str:
        return f"{self.side} {self.local[0]}:{self.local[1]}"

    def to_json(self) -> dict:
        return {"side": self.side, "local": f"{self.local[0]}:{self.local[1]}",
                "remote": f"{self.remote[0]}:{self.remote[1]}",
                "states": [s.to_json() for s in self.spans]}


class _Gen:
    """One socket's life on a 4-tuple (a 4-tuple can be reused)."""

    def __init__(self):
        self.spans: list[list] = []  # [state, start, end, orphan, minisock]
        self.closed_at: float | None = None  # full socket gone (trace ->CLOSE)
        self.cookie = 0

    @property
    def open(self) -> bool:
        return bool(self.spans) and self.spans[-1][2] is None

    def begin(self, state: int, t: float, *, orphan=False, minisock=False) -> None:
        last = self.spans[-1] if self.spans else None
        if minisock and last is not None and last[0] == state and not last[4] \
                and (last[2] if last[2] is not None else t) - last[1] < SLACK_S:
            # The full socket held the state for microseconds before the
            # handover (tcp_time_wait() right after the ACK): one span.
            self.spans.pop()
            t = last[1]
        elif self.open:
            self.spans[-1][2] = t
        self.spans.append([state, t, None, orphan, minisock])

    def end(self, t: float) -> None:
        if self.open:
            self.spans[-1][2] = t


def _mid(a: float | None, b: float) -> float:
    return b if a is None else (a + b) / 2


def merge(transitions, views, actions, *, t0: float,
          failed: list | None = None) -> list[SocketTimeline]:
    """Socket timelines, times relative to ``t0``, ordered by first state.

    ``failed`` (a list) receives the connects that never got a port
    (``SYN_SENT -> CLOSE`` with local port 0: EADDRNOTAVAIL and friends).
    """
    lanes: dict[tuple, list[_Gen]] = {}
    traced: set[tuple] = set()
    pending: dict[tuple, list[float]] = {}
    for tr in sorted(transitions, key=lambda x: x.t):
        if tr.local[1] == 0:
            # connect() sets SYN_SENT before it has a port (tcp_v4_connect(),
            # net/ipv4/tcp_ipv4.c): hold the time for the socket's next event.
            pq = pending.setdefault((tr.side, tr.local[0], tr.remote), [])
            if tr.new == SYN_SENT:
                pq.append(tr.t)
            elif tr.old == SYN_SENT and tr.new == CLOSE:
                start = pq.pop(0) if pq else tr.t
                if failed is not None:
                    failed.append(FailedConnect(start - t0, tr.side, tr.local[0], tr.remote))
            continue
        lane = (tr.side, tr.local, tr.remote)
        traced.add(lane)
        gens = lanes.setdefault(lane, [])
        gen = gens[-1] if gens else None
        if gen is None or gen.closed_at is not None:
            gen = _Gen()
            gens.append(gen)
            if tr.old == SYN_SENT:
                pq = pending.get((tr.side, tr.local[0], tr.remote))
                start = pq.pop(0) if pq else tr.t
                gen.begin(SYN_SENT, start)
            # else: a socket first seen mid-life (the trace began after it
            # did): its earlier state's start is unknown, so it is not drawn.
        if tr.new == CLOSE:
            gen.end(tr.t)
            gen.closed_at = tr.t
        else:
            gen.begin(tr.new, tr.t, orphan=gen.spans[-1][3] if gen.spans else False)

    by_side: dict[str, list[View]] = {}
    for v in sorted(views, key=lambda v: v.t_first):
        by_side.setdefault(v.side, []).append(v)
    for side, vs in by_side.items():
        keys = {k for v in vs for k in v.socks}
        for key in keys:
            lane = (side, key[0], key[1])
            _apply_views(lanes.setdefault(lane, []), vs, key, lane in traced,
                         [a for a in actions if a.side == side and a.key in (key, None)])
    out = []
    for (side, local, remote), gens in lanes.items():
        gens = [g for g in gens if g.spans]
        gens.sort(key=lambda g: g.spans[0][1])
        for a, b in zip(gens, gens[1:]):
            # One 4-tuple, one socket at a time: a new connection on it ends
            # the previous one (tcp_tw_reuse takes over a TIME_WAIT silently,
            # inet_twsk_deschedule_put() in __inet_check_established()).
            start = b.spans[0][1]
            a.spans = [s for s in a.spans if s[1] < start]
            if a.spans and (a.spans[-1][2] is None or a.spans[-1][2] > start):
                a.spans[-1][2] = start
        for gen in gens:
            if not gen.spans:
                continue
            spans = [StateSpan(s[0], s[1] - t0, None if s[2] is None else s[2] - t0,
                               orphan=bool(s[3]), minisock=bool(s[4])) for s in gen.spans]
            out.append(SocketTimeline(side, local, remote, spans, gen.cookie))
    out.sort(key=lambda tl: (tl.spans[0].start_s, tl.side != "client", tl.local))
    return out


def _apply_views(gens: list[_Gen], vs: list[View], key: Key, traced: bool,
                 actions: list[Action]) -> None:
    """Fill in from the polls of one side what the trace cannot say about
    the socket on ``key``."""
    prev_last: float | None = None  # t_last of the previous view
    prev: SockView | None = None
    gen = None
    for v in vs:
        cur = v.socks.get(key)
        when = _mid(prev_last, v.seen)
        if cur is None:
            if prev is not None and prev.timewait and gen is not None:
                # the minisock expired (or was reused): not before its
                # timer, as the last dump that listed it had it
                due = prev_last + prev.expires_ms / 1000
                gen.end(_mid(min(max(prev_last, due), v.seen), v.seen))
            elif prev is not None and not traced and gen is not None:
                gen.end(when)
            prev, prev_last = None, v.t_last
            continue
        if cur.timewait:
            if not traced and prev is not None and not prev.timewait and gen is not None \
                    and gen.open:
                gen.begin(cur.state, when, orphan=True, minisock=True)  # handover, polled
            elif prev is None or not prev.timewait or (prev.cookie and cur.cookie != prev.cookie):
                # A minisock appears: it continues the full socket the trace
                # saw close (handover), else it is first seen here.
                gen = _handover_gen(gens, prev_last, v.seen)
                start = gen.closed_at if gen.closed_at is not None else when
                gen.closed_at = None
                gen.begin(cur.state, start, orphan=True, minisock=True)
                gen.cookie = cur.cookie
            elif cur.state != prev.state:
                gen.begin(cur.state, when, orphan=True, minisock=True)
        elif not traced:
            if prev is None or (prev.cookie and cur.cookie != prev.cookie) or prev.timewait:
                if gen is not None and gen.open:
                    gen.end(when)
                gen = _Gen()
                gens.append(gen)
                gen.cookie = cur.cookie
                gen.begin(cur.state, v.t_first if prev_last is None else when,
                          orphan=cur.orphan)
            elif cur.state != prev.state or cur.orphan != prev.orphan:
                t = _action_time(actions, prev_last, v.seen) if cur.orphan != prev.orphan \
                    else None
                gen.begin(cur.state, t if t is not None else when, orphan=cur.orphan)
        else:
            gen = _gen_at(gens, v.seen)
            if gen is not None:
                gen.cookie = gen.cookie or cur.cookie
                if cur.orphan:
                    _mark_orphan(gen, cur.state, prev_last, v.seen, actions)
        prev, prev_last = cur, v.t_last


def _handover_gen(gens: list[_Gen], prev_last: float | None, seen: float) -> _Gen:
    for gen in reversed(gens):
        if gen.closed_at is not None and gen.closed_at <= seen + SLACK_S \
                and (prev_last is None or gen.closed_at >= prev_last - 1.0):
            return gen
    gen = _Gen()
    gens.append(gen)
    return gen


def _gen_at(gens: list[_Gen], t: float) -> _Gen | None:
    for gen in reversed(gens):
        if gen.spans and gen.spans[0][1] <= t + SLACK_S:
            return gen
    return None


def _action_time(actions: list[Action], after: float | None, before: float) -> float | None:
    for a in actions:
        if a.what in ("close", "exit") and (after is None or a.t >= after - SLACK_S) \
                and a.t <= before + SLACK_S:
            return a.t
    return None


def _mark_orphan(gen: _Gen, state: int, prev_last, seen, actions) -> None:
    """The socket was seen orphaned in ``state``: flag the span holding it,
    splitting it where the owner let go if it was owned before. Without a
    close or exit before it, inode 0 is a connection still in the
    listener's accept queue (no file yet), not an orphan."""
    if not any(a.what in ("close", "exit") and a.t <= seen + SLACK_S for a in actions):
        return
    for i, s in enumerate(gen.spans):
        end = s[2]
        if s[0] != state or s[4] or s[1] > seen + SLACK_S or \
                (end is not None and end < seen - SLACK_S):
            continue
        if s[3]:
            return
        t = _action_time(actions, prev_last, seen)
        if t is None or t <= s[1] + ACTION_LAG_S:
            # Orphaned from the start of the state (close() caused it) or
            # no better time known than the poll bracket.
            if t is None and prev_last is not None and prev_last > s[1] + SLACK_S:
                t = _mid(prev_last, seen)
            else:
                s[3] = True
                return
        gen.spans[i:i + 1] = [[s[0], s[1], t, False, False], [s[0], t, end, True, False]]
        return
