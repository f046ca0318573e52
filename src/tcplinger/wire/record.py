"""A finished connection as plain data: Zeek's conn.log columns, each
endpoint's inferred state timeline, what the observer counted, and the
notable packets as evidence.

Times: ``ts`` is the first packet's capture time (seconds since the
epoch); span and packet times are seconds after ``ts``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model.states import name as state_name
from ..model.timeline import Packet, PartyTimeline, StateSpan, Timeline
from .decode import format_addr
from .observe import Side, WirePacket
from .states import endpoint_spans


@dataclass(frozen=True)
class SideFacts:
    """What one endpoint did, counted from its packets."""

    fin_sent: int = 0  # FIN transmissions (1 = sent once)
    fin_t: float | None = None
    fin_acked_t: float | None = None
    rst_t: float | None = None
    rst_foreign: bool = False
    keepalives: int = 0
    keepalives_answered: int = 0  # by the other side
    keepalives_foreign: int = 0
    window_probes: int = 0
    zero_window_t: float | None = None
    zero_window_open: bool = False  # still advertising 0 at its last packet
    foreign_packets: int = 0
    last_t: float | None = None
    ttl: int | None = None

    def to_json(self, ts: float) -> dict:
        def rel(x):
            return None if x is None else round(x - ts, 6)
        return {"fin_sent": self.fin_sent, "fin_s": rel(self.fin_t),
                "fin_acked_s": rel(self.fin_acked_t), "rst_s": rel(self.rst_t),
                "rst_foreign": self.rst_foreign, "keepalives": self.keepalives,
                "keepalives_answered": self.keepalives_answered,
                "keepalives_foreign": self.keepalives_foreign,
                "window_probes": self.window_probes, "zero_window_s": rel(self.zero_window_t),
                "zero_window_at_end": self.zero_window_open,
                "foreign_packets": self.foreign_packets, "last_s": rel(self.last_t),
                "ttl": self.ttl}


def _facts(side: Side | None) -> SideFacts:
    if side is None:
        return SideFacts()
    return SideFacts(side.fin_sent, side.fin_t, side.fin_acked_t, side.rst_t, side.rst_foreign,
                     side.ka, side.ka_answered, side.ka_foreign, side.probes, side.zero_t,
                     side.zero_open, side.foreign, side.last_t, side.ttl)


@dataclass(frozen=True)
class ConnRecord:
    uid: str
    ts: float
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    duration: float
    orig_bytes: int
    resp_bytes: int
    conn_state: str
    history: str
    orig_pkts: int
    orig_ip_bytes: int
    resp_pkts: int
    resp_ip_bytes: int
    last_t: float  # the last packet of the connection
    interface: int
    orig_facts: SideFacts
    resp_facts: SideFacts
    orig_spans: tuple[StateSpan, ...]
    resp_spans: tuple[StateSpan, ...]
    packets: tuple[WirePacket, ...]
    packets_seen: int  # notable packets, of which ``packets`` kept the first and last
    capture_end: float  # the capture's last packet time (for "still held" spans)

    def tuple_text(self) -> str:
        def ep(h, p):
            return f"[{h}]:{p}" if ":" in h else f"{h}:{p}"
        return f"{ep(self.orig_h, self.orig_p)} → {ep(self.resp_h, self.resp_p)}"

    def idle_s(self) -> float:
        """Seconds from the last packet to the end of the capture."""
        return round(self.capture_end - self.last_t, 6)

    def timeline(self, names=("orig", "resp")) -> Timeline:
        """The two endpoints' spans and the notable packets, drawn by
        ui/timeline.py as the lab and the simulator are."""
        parties = (PartyTimeline(names[0], "endpoint", "wire", self.orig_spans),
                   PartyTimeline(names[1], "endpoint", "wire", self.resp_spans))
        who = {"orig": names[0], "resp": names[1]}
        pk = tuple(Packet(round(p.t - self.ts, 6), who[p.sender],
                          who["resp" if p.sender == "orig" else "orig"], p.flag_text,
                          p.length, p.tag) for p in self.packets)
        return Timeline(parties, round(max(self.capture_end - self.ts, 0.0), 6), pk,
                        source="wire")

    def to_json(self, packets: bool = True) -> dict:
        def spans(ss):
            return [s.to_json() for s in ss]
        out = {"uid": self.uid, "ts": round(self.ts, 6),
               "id": {"orig_h": self.orig_h, "orig_p": self.orig_p, "resp_h": self.resp_h,
                      "resp_p": self.resp_p},
               "duration": round(self.duration, 6), "orig_bytes": self.orig_bytes,
               "resp_bytes": self.resp_bytes, "conn_state": self.conn_state,
               "history": self.history, "orig_pkts": self.orig_pkts,
               "orig_ip_bytes": self.orig_ip_bytes, "resp_pkts": self.resp_pkts,
               "resp_ip_bytes": self.resp_ip_bytes, "interface": self.interface,
               "idle_s": self.idle_s(),
               "orig": {"states": spans(self.orig_spans), **self.orig_facts.to_json(self.ts)},
               "resp": {"states": spans(self.resp_spans), **self.resp_facts.to_json(self.ts)},
               "held_at_end": {"orig": _held(self.orig_spans), "resp": _held(self.resp_spans)}}
        if packets:
            out["packets"] = [{"t_s": round(p.t - self.ts, 6), "from": p.sender,
                               "flags": p.flag_text, "seq": p.seq, "ack": p.ack, "win": p.win,
                               "length": p.length, "ttl": p.ttl,
                               **({"tag": p.tag} if p.tag else {}),
                               **({"foreign": True} if p.foreign else {})}
                              for p in self.packets]
            out["packets_notable"] = self.packets_seen
        return out


def _held(spans) -> str | None:
    return state_name(spans[-1].state) if spans and spans[-1].end_s is None else None


def finish(conn, capture_end: float) -> ConnRecord:
    """The record of a connection whose last packet has been processed."""
    o, r = conn.orig, conn.resp
    oo, ro = o.obs or Side(), r.obs or Side()
    lo_h, lo_p = format_addr(conn.key[0], conn.key[1]), conn.key[2]
    hi_h, hi_p = format_addr(conn.key[3], conn.key[4]), conn.key[5]
    orig, resp = ((lo_h, lo_p), (hi_h, hi_p)) if conn.orig_low else ((hi_h, hi_p), (lo_h, lo_p))
    t0 = conn.start
    first = min(t for t in (oo.last_t, ro.last_t, conn.first) if t is not None)
    last_t = max(t for t in (oo.last_t, ro.last_t, conn.last) if t is not None)
    return ConnRecord(
        f"C{conn.uid}", t0, orig[0], orig[1], resp[0], resp[1], conn.last - conn.start,
        o.size(r), r.size(o), conn.state(), conn.hist.text(), o.pkts, o.ip_bytes, r.pkts,
        r.ip_bytes, last_t, conn.interface, _facts(o.obs), _facts(r.obs),
        tuple(endpoint_spans(oo, ro, True, t0=t0, first_t=first)),
        tuple(endpoint_spans(ro, oo, False, t0=t0, first_t=first)),
        tuple(conn.obs.packets()), conn.obs.seen, max(capture_end, last_t))
