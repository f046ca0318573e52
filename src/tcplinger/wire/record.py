"""A finished connection as plain data: Zeek's conn.log columns, each
endpoint's inferred state timeline, what the observer counted, and the
notable packets as evidence.

Times: ``ts`` is the first packet's capture time (seconds since the
epoch); span and packet times are seconds after ``ts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..model.states import name as state_name
from ..model.timeline import Packet, PartyTimeline, StateSpan, Timeline
from .decode import format_addr
from .observe import Side, WirePacket, materialise, unpack
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


def _facts_json(side: Side | None, ts: float) -> dict:
    """``_facts(side).to_json(ts)`` without the SideFacts in between (the
    JSON of a large capture writes millions)."""
    if side is None:
        return SideFacts().to_json(ts)
    fin_t, fin_acked_t, rst_t, zero_t, last_t = (side.fin_t, side.fin_acked_t, side.rst_t,
                                                 side.zero_t, side.last_t)
    return {"fin_sent": side.fin_sent,
            "fin_s": None if fin_t is None else round(fin_t - ts, 6),
            "fin_acked_s": None if fin_acked_t is None else round(fin_acked_t - ts, 6),
            "rst_s": None if rst_t is None else round(rst_t - ts, 6),
            "rst_foreign": side.rst_foreign, "keepalives": side.ka,
            "keepalives_answered": side.ka_answered, "keepalives_foreign": side.ka_foreign,
            "window_probes": side.probes,
            "zero_window_s": None if zero_t is None else round(zero_t - ts, 6),
            "zero_window_at_end": side.zero_open, "foreign_packets": side.foreign,
            "last_s": None if last_t is None else round(last_t - ts, 6), "ttl": side.ttl}


def _facts(side: Side | None) -> SideFacts:
    if side is None:
        return SideFacts()
    return SideFacts(side.fin_sent, side.fin_t, side.fin_acked_t, side.rst_t, side.rst_foreign,
                     side.ka, side.ka_answered, side.ka_foreign, side.probes, side.zero_t,
                     side.zero_open, side.foreign, side.last_t, side.ttl)


@dataclass(frozen=True)
class ConnRecord:
    """Zeek's conn.log columns, and (computed when asked, since a large
    capture has millions of connections nobody looks at one by one) each
    side's facts, inferred states and the notable packets."""

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
    first_t: float
    capture_end: float  # the capture's last packet time (for "still held" spans)
    interface: int
    orig_side: Side = field(repr=False, compare=False)
    resp_side: Side = field(repr=False, compare=False)
    raw_packets: bytes = field(repr=False, compare=False)  # observe.unpack() reads it
    packets_seen: int = 0  # notable packets, of which the first and last are kept
    orig_low: bool = True

    @property
    def orig_facts(self) -> SideFacts:
        return _facts(self.orig_side)

    @property
    def resp_facts(self) -> SideFacts:
        return _facts(self.resp_side)

    @property
    def orig_spans(self) -> tuple[StateSpan, ...]:
        return tuple(endpoint_spans(self.orig_side, self.resp_side, True, t0=self.ts,
                                    first_t=self.first_t))

    @property
    def resp_spans(self) -> tuple[StateSpan, ...]:
        return tuple(endpoint_spans(self.resp_side, self.orig_side, False, t0=self.ts,
                                    first_t=self.first_t))

    @property
    def packets(self) -> tuple[WirePacket, ...]:
        return tuple(materialise(r, self.orig_low) for r in unpack(self.raw_packets))

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
        os_, rs = self.orig_spans, self.resp_spans
        out = {"uid": self.uid, "ts": round(self.ts, 6),
               "id": {"orig_h": self.orig_h, "orig_p": self.orig_p, "resp_h": self.resp_h,
                      "resp_p": self.resp_p},
               "duration": round(self.duration, 6), "orig_bytes": self.orig_bytes,
               "resp_bytes": self.resp_bytes, "conn_state": self.conn_state,
               "history": self.history, "orig_pkts": self.orig_pkts,
               "orig_ip_bytes": self.orig_ip_bytes, "resp_pkts": self.resp_pkts,
               "resp_ip_bytes": self.resp_ip_bytes, "interface": self.interface,
               "idle_s": self.idle_s(),
               "orig": {"states": [s.to_json() for s in os_],
                        **_facts_json(self.orig_side, self.ts)},
               "resp": {"states": [s.to_json() for s in rs],
                        **_facts_json(self.resp_side, self.ts)},
               "held_at_end": {"orig": _held(os_), "resp": _held(rs)}}
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


_EMPTY = Side()
_FIELDS = tuple(f.name for f in fields(ConnRecord))


def make_record(*values) -> ConnRecord:
    """A ConnRecord from all its fields in order, without the frozen
    dataclass's one ``object.__setattr__`` per field (a large capture makes
    millions of records: this is a third of their cost). Equal to
    ``ConnRecord(*values)``.

    >>> make_record(*range(len(_FIELDS))) == ConnRecord(*range(len(_FIELDS)))
    True
    """
    rec = object.__new__(ConnRecord)
    rec.__dict__.update(zip(_FIELDS, values))
    return rec


def finish(conn, capture_end: float) -> ConnRecord:
    """The record of a connection whose last packet has been processed."""
    o, r = conn.orig, conn.resp
    oo, ro = o.obs or _EMPTY, r.obs or _EMPTY
    key = conn.key
    lo, hi = (format_addr(key[0], key[1]), key[2]), (format_addr(key[3], key[4]), key[5])
    orig, resp = (lo, hi) if conn.orig_low else (hi, lo)
    times = [t for t in (oo.last_t, ro.last_t, conn.last) if t is not None]
    last_t = max(times)
    return make_record(
        f"C{conn.uid}", conn.start, orig[0], orig[1], resp[0], resp[1], conn.last - conn.start,
        o.size(r), r.size(o), conn.state(), conn.hist.text(), o.pkts, o.ip_bytes, r.pkts,
        r.ip_bytes, last_t, conn.first, max(capture_end, last_t), conn.interface, oo, ro,
        conn.obs.raw(), conn.obs.seen, conn.orig_low)
