"""What a lab run recorded, checked and diagnosed (:class:`LabResult`),
built from the run once it is over."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field

from ..model.timeline import Packet, PartyTimeline, Timeline
from . import merge as merge_mod
from . import middlebox as mb_mod
from . import packets as packets_mod
from .checks import Observed, evaluate
from .scenario import Prepared, Scenario
from .script import Run
from .slack import Tolerance, kernel_hz


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


def kernel_version() -> str:
    return platform.release()


def result_of(run_: Run, run_id: str, segs: dict, end: float, warnings: list) -> LabResult:
    """The result of a finished run: its sockets merged from the recorder,
    the middlebox, the packets captured (``segs``), the checks judged."""
    scenario, prepared, recorder, t0 = run_.scenario, run_.prepared, run_.recorder, run_.t0
    transitions, views = recorder.snapshot()
    failed: list = []
    sockets = merge_mod.merge(transitions, views, run_.actions, t0=t0, failed=failed)
    sockets = [s for s in sockets if s.spans and (s.spans[-1].end_s is None
                                                  or s.spans[-1].end_s > -1)]
    horizon = end - t0
    names = {run_.addr.client: "client", run_.addr.server: "server"}
    middlebox, notes = _middlebox(run_, segs, names)
    notes = sorted(list(run_.notes) + notes, key=lambda n: n.t_s)
    packets: list[Packet] = []
    if segs:
        caps = packets_mod.split(segs.get("client", []), segs.get("server", []),
                                 run_.addr.client, run_.addr.server)
        router = {"ipfw": "ipfw"}.get(scenario.router, run_.facts.pop("_dropper", "router"))
        packets = packets_mod.attribute(caps, names, t0=t0, router=router,
                                        forger="ipfw" if scenario.router == "ipfw" else "router",
                                        until=end)
    # the run's own poll windows, not the nominal interval (lab/slack.py)
    tol = Tolerance(recorder.interval, kernel_hz(), polls_s=recorder.stats.longest_gap_s)
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


def _middlebox(run_: Run, segs: dict, names: dict) -> tuple[PartyTimeline | None, list]:
    """The router's own party (the userspace ipfw's states, or conntrack's
    entry for the scenario's flow) and its notes."""
    t0 = run_.t0
    if run_.bridge_events:
        return mb_mod.ipfw_party(run_.bridge_events, t0=t0, names=names)
    if not run_.ct_lines:
        return None, []
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
    return mb_mod.conntrack_party(events, t0=t0, offset=offset, activity=activity)
