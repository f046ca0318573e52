"""Wire a scenario into an engine, run it, and read the timeline back.

>>> from tcplinger.sim.scenario import from_document
>>> sc = from_document({"rtt": 0.0001, "horizon": 200,
...                     "client": {"app": {"close_at": 1.0}},
...                     "server": {"app": {"on_eof": "close"}}})
>>> tl = simulate(sc).timeline()
>>> [(p.name, [TcpState(s.state).name for s in p.spans]) for p in tl.parties]
[('client', ['SYN_SENT', 'ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT']), \
('server', ['SYN_RECV', 'ESTABLISHED', 'LAST_ACK'])]
>>> round(tl.party("client").spans[-1].duration(), 3)  # 60 s + timer-wheel slack at HZ=250
61.026
"""

from __future__ import annotations

from ..model.states import TcpState
from ..model.timeline import Note, Packet, PartyTimeline, StateSpan, Timeline
from . import middleboxes, profiles
from .engine import Engine
from .params import Values
from .path import Path
from .scenario import Scenario
from .segment import ACK, PSH


class Run:
    """One simulation (or a batch of them in lockstep when parameters are
    numpy arrays and ``batch`` is set)."""

    def __init__(self, scenario: Scenario, *, batch: bool = False, record: bool = True,
                 probe: tuple | None = None):
        self.scenario = scenario
        self.engine = Engine(scenario.horizon_s, batch=batch)
        self.record = record
        mbs = []
        for spec in scenario.middleboxes:
            prof = middleboxes.get(spec.profile)
            mbs.append(prof.cls(spec.name, spec.profile, self.engine,
                                Values(prof.params, spec.params), record=record))
        self.middleboxes = mbs
        self.path = Path(self.engine, scenario.rtt_s, mbs, scenario.drops, log_packets=record)
        self.path.rtt_s = scenario.rtt_s
        eps = {}
        for spec, peer in ((scenario.client, "server"), (scenario.server, "client")):
            prof = profiles.get(spec.profile)
            eps[spec.name] = prof.endpoint(
                spec.name, peer, self.engine, self.path, Values(prof.params, spec.params),
                Values(prof.socket, spec.socket), spec.app, spec.host, record=record)
        self.client, self.server = eps["client"], eps["server"]
        self.path.attach(self.client, self.server)
        self.client.start(connect=True)
        self.server.start(connect=False)
        self.probe_result: dict | None = None
        if probe is not None:
            t, sender = probe
            self.engine.at(t, self._probe, sender)

    def endpoints(self):
        return (self.client, self.server)

    def run(self) -> "Run":
        self.engine.run()
        return self

    # ---- the "next packet" experiment (verdict.py) ----

    def _probe(self, sender: str) -> None:
        ep = self.client if sender == "client" else self.server
        res = {"from": sender, "at_s": self.engine.now, "state": None, "sent": False,
               "fate": None, "by": None, "reply": None}
        self.probe_result = res
        if ep.state is None or ep.unreachable:
            res["fate"] = "not_sent"
            return
        res["state"] = ep.state.name
        can_write = ep.owned and not ep.mini and ep.state in (TcpState.ESTABLISHED,
                                                              TcpState.CLOSE_WAIT)
        seg = ep.emit(ACK | (PSH if can_write else 0), length=1 if can_write else 0,
                      tag="next-packet")
        res["sent"] = True
        res["kind"] = "data" if can_write else "ack"

        def watch(s, fate, by):
            res["fate"], res["by"] = fate, by

        self.path.watchers[seg.sid] = watch
        rec = self.path._by_sid.get(seg.sid)
        if rec is not None and rec.dropped_by is not None:  # dropped as it was sent
            res["fate"], res["by"] = "dropped", rec.dropped_by
        self._probe_sid = seg.sid

    def probe_outcome(self) -> dict | None:
        res = self.probe_result
        if res is None:
            return None
        sid = getattr(self, "_probe_sid", None)
        if sid is not None:
            replies = [r for r in self.path.records if self.path.causes.get(r.sid) == sid]
            if replies:
                res["reply"] = replies[0].flags
                res["reply_tag"] = replies[0].tag
                res["reply_dropped_by"] = replies[0].dropped_by
        return res

    # ---- results ----

    def timeline(self) -> Timeline:
        parties = []
        for ep in self.endpoints():
            spans = tuple(StateSpan(int(s), start, end, orphan, mini)
                          for s, start, end, orphan, mini in ep.spans)
            parties.append(PartyTimeline(ep.name, "endpoint", ep.profile, spans))
        for mb in self.middleboxes:
            spans = tuple(StateSpan(int(s), start, end, label=label)
                          for s, start, end, label in mb.spans)
            parties.append(PartyTimeline(mb.name, "middlebox", mb.profile, spans))
        notes = sorted((Note(t, party, key, fields)
                        for holder in (*self.endpoints(), *self.middleboxes)
                        for t, party, key, fields in holder.notes),
                       key=lambda n: n.t_s)
        packets = tuple(Packet(r.t, r.src, r.dst, r.flags, r.length, r.tag, r.dropped_by)
                        for r in self.path.records)
        return Timeline(tuple(parties), self.scenario.horizon_s, packets, tuple(notes), "sim")


def simulate(scenario: Scenario, **kw) -> Run:
    return Run(scenario, **kw).run()
