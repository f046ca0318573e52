"""Sockets next to their packets: for a socket (its local and remote
address and port), the connection the capture holds on the same 4-tuple
and what the wire says about this socket's side of it, as a catalog key
(``wire.join.*``) and its fields.

>>> key = tuple_key("10.0.0.1", 80, "10.0.0.2", 40000)
>>> key == tuple_key("10.0.0.2", 40000, "::ffff:10.0.0.1", 80)
True
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model.states import name as state_name
from ..model.units import json_seconds
from .decode import parse_addr
from .record import ConnRecord


def tuple_key(a: str, ap: int, b: str, bp: int) -> tuple:
    """One key for both directions of a 4-tuple (IPv4 and IPv4-mapped IPv6
    addresses are the same)."""
    x, y = (parse_addr(a), ap), (parse_addr(b), bp)
    return (x, y) if x <= y else (y, x)


def record_key(rec: ConnRecord) -> tuple:
    return tuple_key(rec.orig_h, rec.orig_p, rec.resp_h, rec.resp_p)


@dataclass(frozen=True)
class SocketWire:
    """What the capture showed for one socket."""

    local: str
    remote: str
    uid: str | None  # None: no packet of this 4-tuple in the capture
    conn_state: str | None
    history: str | None
    side: str | None  # "orig" | "resp": this socket's role on the wire
    held: str | None  # the state the packets leave this side in
    key: str  # wire.join.* message
    fields: tuple[tuple[str, object], ...] = ()

    def field_dict(self) -> dict:
        return dict(self.fields)

    def to_json(self) -> dict:
        return {"local": self.local, "remote": self.remote, "uid": self.uid,
                "conn_state": self.conn_state, "history": self.history, "side": self.side,
                "held_on_wire": self.held, "story": self.key, "facts": self.field_dict()}


def explain(rec: ConnRecord | None, local: tuple[str, int], remote: tuple[str, int],
            seconds: float, capture_start: float) -> SocketWire:
    """The story of ``local``'s side of ``rec`` (``rec`` None: no packet);
    times in it are seconds after ``capture_start``."""
    lt, rt = f"{local[0]}:{local[1]}", f"{remote[0]}:{remote[1]}"
    if rec is None:
        return SocketWire(lt, rt, None, None, None, None, None, "wire.join.silent",
                          (("seconds", round(seconds, 1)),))
    mine = parse_addr(local[0]) == parse_addr(rec.orig_h) and local[1] == rec.orig_p
    side = "orig" if mine else "resp"
    me, peer = (rec.orig_facts, rec.resp_facts) if mine else (rec.resp_facts, rec.orig_facts)
    spans = rec.orig_spans if mine else rec.resp_spans
    held = state_name(spans[-1].state) if spans and spans[-1].end_s is None else None
    def at(t):
        return None if t is None else json_seconds(t - capture_start)
    if me.fin_sent >= 2 and me.fin_acked_t is None:
        key, fields = "wire.join.fin_unacked", {"n": me.fin_sent, "first_s": at(me.fin_t)}
    elif peer.fin_t is not None and me.fin_t is None and me.rst_t is None:
        key, fields = "wire.join.peer_fin_unanswered", {
            "at_s": at(peer.fin_t), "since_s": json_seconds(rec.capture_end - peer.fin_t)}
    elif me.fin_t is not None and me.fin_acked_t is not None and peer.fin_t is None:
        key, fields = "wire.join.closed_unanswered", {
            "at_s": at(me.fin_t), "since_s": json_seconds(rec.capture_end - me.fin_t)}
    elif me.keepalives or peer.keepalives:
        key, fields = "wire.join.keepalives", {
            "mine": me.keepalives, "answered": me.keepalives_answered,
            "theirs": peer.keepalives, "i_answered": peer.keepalives_answered}
    else:
        key, fields = "wire.join.plain", {"pkts": rec.orig_pkts + rec.resp_pkts,
                                           "idle_s": json_seconds(rec.idle_s())}
    return SocketWire(lt, rt, rec.uid, rec.conn_state, rec.history, side, held, key,
                      tuple(fields.items()))
