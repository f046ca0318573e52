"""Who sent what: the segments captured on both router interfaces turned
into the timeline's packets, each marked dropped (seen arriving at the
router, never leaving it), forged (leaving the router, never arriving:
a middlebox made it), retransmitted, keepalive or reset.

Pure: captured segments in, :class:`~tcplinger.model.timeline.Packet` out.

>>> from tcplinger.lab.pcap import Segment
>>> names = {"198.18.0.2": "client", "198.19.0.2": "server"}
>>> fin = Segment(10.0, "198.18.0.2", 40000, "198.19.0.2", 20000, 5, 9, 0x11, 500, 0)
>>> caps = Captures(client_side_in=[fin], server_side_out=[], server_side_in=[],
...                 client_side_out=[])
>>> [p.to_json() for p in attribute(caps, names, t0=9.0, router="nftables")]
[{'t_s': 1.0, 'src': 'client', 'dst': 'server', 'flags': 'F.', 'length': 0, 'dropped_by': 'nftables'}]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model.timeline import Packet
from .pcap import Segment

#: A segment leaving the router more than this after arriving is not the same one.
MATCH_WINDOW_S = 2.0


@dataclass
class Captures:
    """Segments by router interface and direction. ``client_side_in``:
    arriving from the client (on the client-facing interface);
    ``server_side_out``: leaving towards the server; and so on."""

    client_side_in: list[Segment] = field(default_factory=list)
    server_side_out: list[Segment] = field(default_factory=list)
    server_side_in: list[Segment] = field(default_factory=list)
    client_side_out: list[Segment] = field(default_factory=list)


def split(client_iface: list[Segment], server_iface: list[Segment], client_addr: str,
          server_addr: str) -> Captures:
    """Sort each interface's segments into arriving and leaving by source."""
    caps = Captures()
    for s in client_iface:
        (caps.client_side_in if s.src == client_addr else caps.client_side_out).append(s)
    for s in server_iface:
        (caps.server_side_in if s.src == server_addr else caps.server_side_out).append(s)
    return caps


def _match(arriving: list[Segment], leaving: list[Segment]):
    """Pairs (arrived, left or None) and the leaving segments nothing
    arrived for (forged by the router)."""
    pool: dict[tuple, list[int]] = {}
    for i, s in enumerate(leaving):
        pool.setdefault(s.key(), []).append(i)
    used = set()
    pairs = []
    for a in sorted(arriving, key=lambda s: s.t):
        found = None
        for i in pool.get(a.key(), ()):
            if i not in used and a.t - 0.001 <= leaving[i].t <= a.t + MATCH_WINDOW_S:
                found = i
                break
        if found is not None:
            used.add(found)
            pairs.append((a, leaving[found]))
        else:
            pairs.append((a, None))
    forged = [s for i, s in enumerate(leaving) if i not in used]
    return pairs, forged


def _end(s: Segment) -> int:
    return (s.seq + s.length + (1 if s.flag_bits & 0x03 else 0)) & 0xFFFFFFFF


def attribute(caps: Captures, names: dict[str, str], *, t0: float, router: str = "router",
              forger: str | None = None, until: float | None = None) -> list[Packet]:
    """Packets in time order, times relative to ``t0`` (same clock as the
    captures). ``names`` maps addresses to parties; ``router`` is who is
    blamed for drops, ``forger`` for segments only the router sent.

    ``until`` is the end of the observation: segments that crossed later
    are left out. The captures run past it and are stopped afterwards; a
    segment that crossed while one interface's capture had stopped and
    the other's had not would look dropped (or forged) when it was not.
    """
    rows: list[tuple[float, Segment, str | None, bool]] = []
    for arriving, leaving in ((caps.client_side_in, caps.server_side_out),
                              (caps.server_side_in, caps.client_side_out)):
        pairs, forged = _match(arriving, leaving)
        for a, b in pairs:
            rows.append((a.t, a, None if b is not None else router, False))
        for s in forged:
            rows.append((s.t, s, None, True))
    if until is not None:
        rows = [r for r in rows if r[0] <= until]
    rows.sort(key=lambda r: r[0])
    sent_end: dict[tuple, int] = {}
    seen: set[tuple] = set()
    out = []
    for t, s, dropped_by, forged in rows:
        flow = (s.src, s.sport, s.dst, s.dport)
        tag = ""
        if forged:
            tag = "forged-keepalive" if s.flag_bits & 0x17 == 0x10 and s.length == 0 else "forged"
        elif s.flag_bits & 0x04:
            tag = "reset"
        else:
            ident = flow + (s.seq, s.flag_bits & 0x07, s.length)
            carries = s.length > 0 or s.flag_bits & 0x03
            if carries and ident in seen:
                tag = "retransmission"
            elif (not carries and s.length <= 1 and flow in sent_end
                  and s.seq == (sent_end[flow] - 1) & 0xFFFFFFFF):
                tag = "keepalive"
            if carries:
                seen.add(ident)
            if flow not in sent_end or ((_end(s) - sent_end[flow]) & 0xFFFFFFFF) < 1 << 31:
                sent_end[flow] = _end(s)
        src = forger if forged and forger else names.get(s.src, s.src)
        out.append(Packet(round(t - t0, 6), src, names.get(s.dst, s.dst), s.flags, s.length,
                          tag, dropped_by))
    return out


def passed_times(caps: Captures, flow: tuple, *, t0: float) -> list[float]:
    """Times (relative to ``t0``) at which segments of ``flow`` ((client
    addr, port), (server addr, port)) crossed the router, both ways: what
    refreshes a middlebox's idle timer."""
    (ca, cp), (sa, sp) = flow
    out = []
    for arriving, leaving in ((caps.client_side_in, caps.server_side_out),
                              (caps.server_side_in, caps.client_side_out)):
        pairs, _ = _match(arriving, leaving)
        for a, b in pairs:
            if b is not None and {(a.src, a.sport), (a.dst, a.dport)} == {(ca, cp), (sa, sp)}:
                out.append(round(a.t - t0, 6))
    return sorted(out)
