"""What a simulated timeline means: how long each party held each state,
who forgot the connection first, and what the next packet then meets.

The last question is answered by experiment: the scenario runs again,
identical up to one second after the first party forgot the connection;
then the other endpoint sends one segment (data if its application can
still write, a bare ACK otherwise) and the verdict reports its fate.

>>> from tcplinger.sim.scenario import from_document
>>> sc = from_document({"rtt": 0.0001, "horizon": 200, "client": {"app": {"close_at": 1.0}},
...                     "server": {"behaviour": "never-close"}})
>>> v = judge(sc)
>>> v.first, round(v.first_at, 2), v.next_packet["fate"], v.next_packet["reply"]
('client', 62.03, 'delivered', 'R')
>>> v.held
('server',)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..model.states import CAN_SEND, TcpState, name as state_name
from ..model.timeline import Timeline, lingering_time
from .scenario import Scenario
from .simulation import simulate

#: How long after the first party forgets the connection the other one
#: sends its next packet.
PROBE_AFTER_S = 1.0


@dataclass(frozen=True)
class Verdict:
    #: party -> {state name: seconds held (summed), None if held at the horizon}
    lifetimes: dict
    #: party -> seconds from its first teardown state to forgetting (None: held)
    lingering: dict
    #: party -> time it forgot the connection (None: still held at the horizon)
    forgotten: dict
    held: tuple[str, ...]  # parties holding state at the horizon
    first: str | None  # the party that forgot the connection first
    first_at: float | None
    next_packet: dict | None  # the experiment's outcome (see module doc)

    def to_json(self) -> dict:
        return {"lifetimes": self.lifetimes, "lingering_s": self.lingering,
                "forgotten_at_s": self.forgotten, "held_at_horizon": list(self.held),
                "first_to_forget": None if self.first is None else
                {"party": self.first, "at_s": self.first_at},
                "next_packet": self.next_packet}


def summarize(tl: Timeline) -> tuple[dict, dict, dict, tuple[str, ...]]:
    lifetimes, lingering, forgotten, held = {}, {}, {}, []
    for p in tl.parties:
        per_state: dict[str, float | None] = {}
        for s in p.spans:
            key = state_name(s.state)
            d = s.duration()
            prev = per_state.get(key, 0.0)
            per_state[key] = None if d is None or prev is None else prev + d
        lifetimes[p.name] = per_state
        lingering[p.name] = lingering_time(p) if p.role == "endpoint" else None
        forgotten[p.name] = p.forgotten_at()
        if p.held_at_end():
            held.append(p.name)
    return lifetimes, lingering, forgotten, tuple(held)


def _holds_at(tl: Timeline, name: str, t: float) -> TcpState | None:
    """The state ``name`` holds at ``t``, if it can still send on its own
    (a TIME_WAIT or other minisocket only ever answers)."""
    for s in tl.party(name).spans:
        if s.start_s <= t and (s.end_s is None or t < s.end_s):
            if s.minisock or s.state == TcpState.TIME_WAIT:
                return None
            return TcpState(s.state)
    return None


def judge(scenario: Scenario, tl: Timeline | None = None) -> Verdict:
    if tl is None:
        tl = simulate(scenario).timeline()
    lifetimes, lingering, forgotten, held = summarize(tl)
    ended = [(t, name) for name, t in forgotten.items()
             if t is not None and tl.party(name).spans]
    first = first_at = None
    next_packet = None
    if ended:
        first_at, first = min(ended)
        t_probe = first_at + PROBE_AFTER_S
        gone = {n.party for n in tl.notes if n.key == "sim.note.vanish" and n.t_s <= t_probe}
        candidates = [n for n in ("client", "server") if n != first and n not in gone
                      and _holds_at(tl, n, t_probe) is not None]
        # prefer a side whose application can still write
        candidates.sort(key=lambda n: _holds_at(tl, n, t_probe) not in CAN_SEND)
        if candidates:
            sender = candidates[0]
            probe_sc = replace(scenario, horizon_s=max(scenario.horizon_s, t_probe + 10.0))
            run = simulate(probe_sc, probe=(t_probe, sender))
            next_packet = run.probe_outcome()
    return Verdict(lifetimes, lingering, forgotten, held, first, first_at, next_packet)
