"""Middleboxes on the lab's path, as timeline parties: conntrack (read
with ``conntrack -E``) and the userspace ipfw (lab/bridge.py's events).

Pure parsers; the processes are started by lab/runner.py.

``conntrack -E -o timestamp`` prints one line per event, its time in
CLOCK_REALTIME seconds first::

    [1700000000.123456]	    [NEW] tcp      6 120 SYN_SENT src=198.18.0.2 dst=198.19.0.2 \
sport=40000 dport=20000 [UNREPLIED] src=198.19.0.2 dst=198.18.0.2 sport=20000 dport=40000
    [1700000003.500000]	[DESTROY] tcp      6 src=198.18.0.2 dst=198.19.0.2 ...

>>> ev = parse_conntrack_event("[1700000000.123456]\\t    [NEW] tcp      6 120 SYN_SENT "
...     "src=198.18.0.2 dst=198.19.0.2 sport=40000 dport=20000 [UNREPLIED] src=198.19.0.2 "
...     "dst=198.18.0.2 sport=20000 dport=40000")
>>> ev.kind, ev.state, ev.timeout, ev.orig, ev.t
('NEW', 'SYN_SENT', 120, (('198.18.0.2', 40000), ('198.19.0.2', 20000)), 1700000000.123456)
>>> parse_conntrack_event("[1700000003.5]\\t[DESTROY] tcp      6 src=198.18.0.2 "
...     "dst=198.19.0.2 sport=40000 dport=20000 src=198.19.0.2 dst=198.18.0.2 "
...     "sport=20000 dport=40000").kind
'DESTROY'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..model.states import TcpState
from ..model.timeline import Note, PartyTimeline, StateSpan

_CT = re.compile(r"^\s*\[(?P<ts>\d+\.\d+)\]\s+\[(?P<kind>NEW|UPDATE|DESTROY)\]\s+tcp\s+6\s+"
                 r"(?:(?P<timeout>\d+)\s+)?(?:(?P<state>[A-Z_]+)\s+)?(?P<rest>src=.*)$")
_KV = re.compile(r"(src|dst|sport|dport)=(\S+)")

#: conntrack's TCP states drawn as the nearest TCP state (as sim/ does).
CT_STATES = {"SYN_SENT": TcpState.SYN_SENT, "SYN_RECV": TcpState.SYN_RECV,
             "ESTABLISHED": TcpState.ESTABLISHED, "FIN_WAIT": TcpState.FIN_WAIT1,
             "CLOSE_WAIT": TcpState.CLOSE_WAIT, "LAST_ACK": TcpState.LAST_ACK,
             "TIME_WAIT": TcpState.TIME_WAIT, "CLOSE": TcpState.CLOSE,
             "SYN_SENT2": TcpState.SYN_SENT}


@dataclass(frozen=True)
class CtEvent:
    t: float  # realtime
    kind: str
    state: str | None
    timeout: int | None
    orig: tuple  # ((src, sport), (dst, dport)) of the original direction


def parse_conntrack_event(line: str) -> CtEvent | None:
    m = _CT.match(line)
    if m is None:
        return None
    kv = _KV.findall(m.group("rest"))
    d = {}
    for k, v in kv[:4]:
        d[k] = v
    try:
        orig = ((d["src"], int(d["sport"])), (d["dst"], int(d["dport"])))
    except (KeyError, ValueError):
        return None
    timeout = m.group("timeout")
    return CtEvent(float(m.group("ts")), m.group("kind"), m.group("state"),
                   int(timeout) if timeout else None, orig)


def conntrack_party(events: list[CtEvent], *, t0: float, offset: float,
                    name: str = "conntrack", activity: list[float] | None = None
                    ) -> tuple[PartyTimeline, list[Note]]:
    """The router's conntrack entry for the run's connection: a span per
    state, ended by DESTROY. ``offset``: realtime - monotonic; ``t0``: the
    run's start (monotonic).

    The entry expires ``timeout`` seconds after the last packet that
    refreshed it, but conntrack reports nothing then: DESTROY comes when
    the garbage collector or a later lookup finds it expired
    (nf_conntrack_core.c gc_worker(), nf_ct_is_expired()). With
    ``activity`` (times of the flow's packets that crossed the router) the
    last span ends at that moment instead, if it is earlier:

    >>> ev = [CtEvent(100.0, "UPDATE", "CLOSE_WAIT", 2, None), CtEvent(104.0, "DESTROY", None,
    ...       None, None)]
    >>> party, _ = conntrack_party(ev, t0=0.0, offset=90.0, activity=[9.9, 10.0])
    >>> [(s.label, s.start_s, s.end_s) for s in party.spans]
    [('CLOSE_WAIT', 10.0, 12.0)]
    """
    spans: list[list] = []
    notes = []
    for ev in sorted(events, key=lambda e: e.t):
        t = ev.t - offset - t0
        if ev.kind == "DESTROY":
            if spans and spans[-1][2] is None:
                spans[-1][2] = t
            notes.append(Note(round(t, 6), name, "lab.note.ct_destroy", ()))
            continue
        if ev.state is None:
            continue
        if spans and spans[-1][2] is None:
            if spans[-1][3] == ev.state:
                continue
            spans[-1][2] = t
        spans.append([int(CT_STATES.get(ev.state, TcpState.CLOSE)), t, None, ev.state,
                      ev.timeout])
        notes.append(Note(round(t, 6), name, "lab.note.ct_state",
                          (("state", ev.state), ("timeout", ev.timeout))))
    if spans and activity is not None and spans[-1][4] is not None:
        last = spans[-1]
        refreshed = max([a for a in activity if a <= (last[2] if last[2] is not None
                                                        else float("inf"))] + [last[1]])
        expiry = refreshed + last[4]
        if last[2] is None or expiry < last[2]:
            last[2] = expiry
    party = PartyTimeline(name, "middlebox", "conntrack",
                          tuple(StateSpan(s[0], round(s[1], 6),
                                          None if s[2] is None else round(s[2], 6),
                                          label=s[3]) for s in spans))
    return party, notes


def ipfw_party(events: list[dict], *, t0: float, name: str = "ipfw",
               names: dict | None = None) -> tuple[PartyTimeline, list[Note]]:
    """The userspace ipfw's dynamic state from lab/bridge.py's events
    (monotonic times).

    >>> party, notes = ipfw_party([
    ...     {"event": "state", "t": 1.5, "label": "SYN", "tcp_state": 2, "expire": 21},
    ...     {"event": "state", "t": 1.6, "label": "BOTH_SYN", "tcp_state": 1, "expire": 11},
    ...     {"event": "expire", "t": 12.0, "label": "BOTH_SYN"}], t0=1.0)
    >>> [(s.label, s.start_s, s.end_s) for s in party.spans]
    [('SYN', 0.5, 0.6), ('BOTH_SYN', 0.6, 11.0)]
    """
    names = names or {}
    spans: list[list] = []
    notes = []
    for ev in sorted(events, key=lambda e: e["t"]):
        t = ev["t"] - t0
        kind = ev.get("event")
        if kind == "state":
            if spans and spans[-1][2] is None:
                spans[-1][2] = t
            spans.append([int(ev["tcp_state"]), t, None, ev["label"]])
            notes.append(Note(round(t, 6), name, "lab.note.ipfw_state",
                              (("label", ev["label"]), ("expire", ev.get("expire")))))
        elif kind == "refresh":
            notes.append(Note(round(t, 6), name, "lab.note.ipfw_refresh",
                              (("expire", ev.get("expire")),)))
        elif kind == "expire":
            if spans and spans[-1][2] is None:
                spans[-1][2] = t
            notes.append(Note(round(t, 6), name, "lab.note.ipfw_expire",
                              (("label", ev.get("label")),)))
        elif kind == "keepalive":
            dst = names.get(ev["dst"][0], ev["dst"][0])
            notes.append(Note(round(t, 6), name, "lab.note.ipfw_keepalive",
                              (("to", dst), ("seq", ev.get("seq")))))
        elif kind == "drop":
            src = ev.get("src")
            who = names.get(src[0], src[0]) if isinstance(src, list) else src
            notes.append(Note(round(t, 6), name, "lab.note.ipfw_drop", (("src", who),)))
    party = PartyTimeline(name, "middlebox", "ipfw",
                          tuple(StateSpan(s[0], round(s[1], 6),
                                          None if s[2] is None else round(s[2], 6),
                                          label=s[3]) for s in spans))
    return party, notes
