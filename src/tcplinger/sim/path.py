"""The path between the two endpoints: links, middleboxes, drops.

Nodes in order: ``client``, the middleboxes (first met by the client
first), ``server``. The one-way delay (half the round-trip time) is split
evenly over the links. Each middlebox sees every segment that crosses it
and may pass it, drop it, or send segments of its own (forged keepalives,
resets). Drop rules model losses on the wire next to the sender.
"""

from __future__ import annotations

from dataclasses import dataclass

from .num import truth
from .segment import Segment, flag_letters


@dataclass(frozen=True)
class DropRule:
    """Drop segments sent by ``sender`` carrying any of ``flags`` (0: any
    segment) between ``from_s`` and ``until_s``; at most ``count`` of them
    (0: no limit)."""

    sender: str  # "client" | "server" | "any"
    flags: int = 0
    from_s: float = 0.0
    until_s: float = float("inf")
    count: int = 0


class PacketRecord:
    """A mutable log entry (the fate of a segment is known later)."""

    __slots__ = ("t", "src", "dst", "flags", "length", "tag", "dropped_by", "sid")

    def __init__(self, t, seg: Segment):
        self.t = t
        self.src = seg.origin if seg.origin != seg.src else seg.src
        self.dst = seg.dst
        self.flags = flag_letters(seg.flags)
        self.length = seg.length
        self.tag = seg.tag
        self.dropped_by = None
        self.sid = seg.sid


class Path:
    def __init__(self, engine, rtt_s, middleboxes=(), drops=(), log_packets: bool = True):
        self.engine = engine
        self.middleboxes = list(middleboxes)
        self.hop_delay = (rtt_s / 2.0) / (len(self.middleboxes) + 1)
        self.drops = list(drops)
        self._drop_counts = [0] * len(self.drops)
        self.endpoints = {}  # "client" -> Endpoint, "server" -> Endpoint
        self.log_packets = log_packets
        self.records: list[PacketRecord] = []
        self._by_sid: dict[int, PacketRecord] = {}
        self._next_sid = 0
        self.causes: dict[int, int] = {}  # sid -> sid of the segment it answers
        #: called with (segment, fate, by) for segments being watched
        self.watchers: dict[int, object] = {}

    def attach(self, client, server) -> None:
        self.endpoints = {"client": client, "server": server}
        for i, mb in enumerate(self.middleboxes):
            mb.attach(self, i + 1)

    # ---- positions: 0 client, 1..k middleboxes, k+1 server ----

    def _position(self, name: str) -> int:
        return 0 if name == "client" else len(self.middleboxes) + 1

    def _log(self, seg: Segment) -> None:
        seg.sid = self._next_sid
        self._next_sid += 1
        if seg.cause is not None:
            self.causes[seg.sid] = seg.cause
        if self.log_packets:
            rec = PacketRecord(self.engine.now, seg)
            self.records.append(rec)
            self._by_sid[seg.sid] = rec

    def fate(self, seg: Segment, by: str) -> None:
        """Record that ``seg`` was dropped by ``by``."""
        rec = self._by_sid.get(seg.sid)
        if rec is not None:
            rec.dropped_by = by
        w = self.watchers.get(seg.sid)
        if w is not None:
            w(seg, "dropped", by)

    def send(self, seg: Segment) -> None:
        """An endpoint puts a segment on the wire."""
        self._log(seg)
        if self.endpoints[seg.src].unreachable:
            self.fate(seg, seg.src)
            return
        now = self.engine.now
        for i, rule in enumerate(self.drops):
            if rule.sender not in ("any", seg.src):
                continue
            if rule.flags and not (seg.flags & rule.flags):
                continue
            if truth(now < rule.from_s) or truth(now > rule.until_s):
                continue
            if rule.count and self._drop_counts[i] >= rule.count:
                continue
            self._drop_counts[i] += 1
            self.fate(seg, "path")
            return
        start = self._position(seg.src)
        step = 1 if start == 0 else -1
        self.engine.after(self.hop_delay, self._arrive, seg, start + step, step)

    def inject(self, seg: Segment, position: int) -> None:
        """A middlebox at ``position`` sends a segment of its own toward
        ``seg.dst``."""
        self._log(seg)
        step = 1 if self._position(seg.dst) > position else -1
        self.engine.after(self.hop_delay, self._arrive, seg, position + step, step)

    def _arrive(self, seg: Segment, pos: int, step: int) -> None:
        k = len(self.middleboxes)
        if 1 <= pos <= k:
            mb = self.middleboxes[pos - 1]
            if mb.process(seg, forward=(step == 1)):
                self.engine.after(self.hop_delay, self._arrive, seg, pos + step, step)
            else:
                self.fate(seg, mb.name)
            return
        ep = self.endpoints["client" if pos == 0 else "server"]
        if ep.unreachable:
            self.fate(seg, ep.name)
            return
        w = self.watchers.get(seg.sid)
        if w is not None:
            w(seg, "delivered", ep.name)
        ep.receive(seg)
