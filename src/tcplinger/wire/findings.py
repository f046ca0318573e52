"""Findings from packets: why a connection lingers, as the wire shows it,
each with the packets that prove it. Same words as the socket findings
(severity info/warning/critical, TCP state names); sentences come from the
``wire.finding.*`` catalog keys (messages/{en,zh}/wire.toml).

Rules (thresholds are data, below):

* ``half-close-unanswered``: one side's FIN was acknowledged and the other
  side never sent its own (Zeek S2/S3): the closer holds FIN_WAIT2, the
  other CLOSE_WAIT, for as long as the capture shows.
* ``fin-unacked``: a FIN sent again and again and never acknowledged: lost
  on the path (a firewall drop); the sender sits in FIN_WAIT1 until
  tcp_orphan_retries (or tcp_retries2) gives up, the peer never learns.
* ``keepalive-one-sided``: keepalives on a half-closed connection answered
  by one side and ignored by the other (seed 000: ipfw's keepalives to a
  client that forgot the connection refresh the server's FIN_WAIT2).
* ``keepalive-foreign``: keepalives whose IP TTL is not their supposed
  sender's: made by a middlebox on the path.
* ``rst-after-fin``: a RST after a FIN: the close was aborted (SO_LINGER 0,
  data arriving after close(), or a peer that forgot).
* ``reset-foreign``: a RST whose TTL is not its supposed sender's: a third
  party ended the connection.
* ``zero-window-at-close``: a side still advertised a zero window when the
  capture ended and a FIN had been sent: unread data pins the connection.
* ``open-at-end``: established, idle at the end of the capture.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model.units import json_seconds
from .observe import WirePacket
from .record import ConnRecord

#: Seconds a half-close must stay unanswered to be a warning (below: info).
HALF_CLOSE_WARN_S = 10.0
#: Idle seconds at the end of the capture for an open connection to be shown.
OPEN_IDLE_MIN_S = 10.0
#: Evidence packets shown per finding.
EVIDENCE_MAX = 8

RULES = ("half-close-unanswered", "fin-unacked", "keepalive-one-sided", "keepalive-foreign",
         "rst-after-fin", "reset-foreign", "zero-window-at-close", "open-at-end")


@dataclass(frozen=True)
class WireFinding:
    rule: str
    severity: str  # "info" | "warning" | "critical"
    uid: str
    conn: str  # "a:p → b:p"
    fields: tuple[tuple[str, object], ...]
    evidence: tuple[WirePacket, ...]
    ts: float  # the connection's first packet (evidence times are relative to it)
    conn_state: str = ""  # the connection's, for the pages' tables (not in the JSON:
    history: str = ""  # each connection's own record carries them)

    def field_dict(self) -> dict:
        return dict(self.fields)

    def to_json(self) -> dict:
        return {"rule": self.rule, "severity": self.severity, "uid": self.uid,
                "connection": self.conn, "facts": self.field_dict(),
                "evidence": [{"t_s": round(p.t - self.ts, 6), "from": p.sender,
                              "flags": p.flag_text, "seq": p.seq, "ack": p.ack,
                              "length": p.length, "ttl": p.ttl,
                              **({"tag": p.tag} if p.tag else {}),
                              **({"foreign": True} if p.foreign else {})}
                             for p in self.evidence]}


def _pick(rec: ConnRecord, pred) -> tuple[WirePacket, ...]:
    found = [p for p in rec.packets if pred(p)]
    if len(found) > EVIDENCE_MAX:
        found = found[:EVIDENCE_MAX // 2] + found[-EVIDENCE_MAX // 2:]
    return tuple(found)


def _f(rec, rule, severity, evidence, **fields) -> WireFinding:
    return WireFinding(rule, severity, rec.uid, rec.tuple_text(), tuple(fields.items()),
                       evidence, rec.ts, rec.conn_state, rec.history)


def findings(rec: ConnRecord) -> list[WireFinding]:
    """Every finding one connection's packets support."""
    out = []
    sides = (("orig", "resp", rec.orig_facts, rec.resp_facts),
             ("resp", "orig", rec.resp_facts, rec.orig_facts))
    for me, peer, mf, pf in sides:
        if mf.fin_t is not None and mf.fin_acked_t is not None and pf.fin_t is None \
                and pf.rst_t is None and mf.rst_t is None:
            held = rec.capture_end - mf.fin_t
            out.append(_f(rec, "half-close-unanswered",
                          "warning" if held >= HALF_CLOSE_WARN_S else "info",
                          _pick(rec, lambda p: p.flags & 1 or p.tag.startswith("keepalive")),
                          closer=me, other=peer, fin_s=json_seconds(mf.fin_t - rec.ts),
                          seconds=json_seconds(held), conn_state=rec.conn_state))
        if mf.fin_sent >= 2 and mf.fin_acked_t is None and pf.rst_t is None:
            out.append(_f(rec, "fin-unacked", "warning",
                          _pick(rec, lambda p, s=me: p.sender == s and p.flags & 1),
                          sender=me, other=peer, sent=mf.fin_sent,
                          retransmissions=mf.fin_sent - 1, fin_s=json_seconds(mf.fin_t - rec.ts),
                          last_s=json_seconds(mf.last_t - rec.ts)))
        if mf.rst_t is not None and (mf.fin_t is not None or pf.fin_t is not None) \
                and not mf.rst_foreign:
            out.append(_f(rec, "rst-after-fin", "info",
                          _pick(rec, lambda p: p.flags & 5), sender=me, other=peer,
                          rst_s=json_seconds(mf.rst_t - rec.ts)))
        if mf.rst_foreign:
            out.append(_f(rec, "reset-foreign", "warning",
                          _pick(rec, lambda p: p.flags & 4 or p.foreign), sender=me, other=peer,
                          rst_s=json_seconds(mf.rst_t - rec.ts), ttl=mf.ttl))
        if mf.keepalives_foreign:
            out.append(_f(rec, "keepalive-foreign", "warning",
                          _pick(rec, lambda p, s=me: p.sender == s and p.foreign),
                          sender=me, other=peer, n=mf.keepalives_foreign, ttl=mf.ttl))
        if mf.zero_window_open and (mf.fin_t is not None or pf.fin_t is not None):
            out.append(_f(rec, "zero-window-at-close", "warning",
                          _pick(rec, lambda p: p.tag in ("zero-window", "window-probe")
                                or p.flags & 1),
                          side=me, other=peer, zero_s=json_seconds(mf.zero_window_t - rec.ts),
                          probes=pf.window_probes))
    o, r = rec.orig_facts, rec.resp_facts
    closed = o.fin_t is not None or r.fin_t is not None
    if closed and o.keepalives and r.keepalives:
        oa, ra = o.keepalives_answered, r.keepalives_answered
        if (oa > 0) != (ra > 0):
            ans, ign = ("orig", "resp") if oa else ("resp", "orig")
            # the keepalives sent as ``ans`` reached ``ign``'s peer and were
            # answered; those sent as ``ign`` were ignored by ``ans``'s peer
            out.append(_f(rec, "keepalive-one-sided", "critical" if (o.keepalives_foreign or
                                                                      r.keepalives_foreign)
                          else "warning",
                          _pick(rec, lambda p: p.tag.startswith("keepalive")),
                          answered_from=ans, ignored_from=ign,
                          answered=oa + ra, sent=o.keepalives + r.keepalives,
                          answerer=ign, ignorer=ans))
    if rec.conn_state == "S1" and rec.idle_s() >= OPEN_IDLE_MIN_S:
        out.append(_f(rec, "open-at-end", "info", (), idle_s=json_seconds(rec.idle_s()),
                      duration_s=json_seconds(rec.duration)))
    return out
