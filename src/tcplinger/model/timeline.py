"""Timelines: which TCP state each party held, when, and the packets between.

One vocabulary for the simulator (``sim/``) and the lab (``lab/``, which
records the same objects from a real kernel), so that one renderer
(``ui/timeline.py``) draws both.

A *party* is an endpoint socket (``client``, ``server``) or a middlebox
that keeps per-connection state (``ipfw``, ``conntrack``). A party's
timeline is a sequence of :class:`StateSpan`; gaps mean "no state held"
(the party has forgotten the connection, or has not met it yet). States
are kernel numbers (:class:`~tcplinger.model.states.TcpState`); a
middlebox maps its own state names onto the closest TCP state and keeps
its own name in ``label``.

>>> span = StateSpan(5, 1.0, None, orphan=True, minisock=True)
>>> span.to_json()
{'state': 'FIN_WAIT2', 'start_s': 1.0, 'end_s': None, 'orphan': True, 'minisock': True}
>>> StateSpan.from_json(span.to_json()) == span
True
>>> span.duration(horizon_s=61.0)
60.0
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from .states import LINGERING, name as state_name, parse_state


@dataclass(frozen=True)
class StateSpan:
    """One state held from ``start_s`` to ``end_s`` (``None``: still held at
    the end of the observation)."""

    state: int  # TcpState number
    start_s: float
    end_s: float | None
    #: no process holds the socket any more (closed by its application)
    orphan: bool = False
    #: a timewait-type minisocket (Linux ``inet_timewait_sock``), not a
    #: full socket: what an orphaned FIN_WAIT2 or a TIME_WAIT becomes
    minisock: bool = False
    #: the party's own name for the state (middleboxes), or ""
    label: str = ""

    def duration(self, horizon_s: float | None = None) -> float | None:
        """Seconds held; a span still open counts up to ``horizon_s``."""
        end = self.end_s if self.end_s is not None else horizon_s
        return None if end is None else end - self.start_s

    def to_json(self) -> dict:
        out = {"state": state_name(self.state), "start_s": self.start_s, "end_s": self.end_s}
        if self.orphan:
            out["orphan"] = True
        if self.minisock:
            out["minisock"] = True
        if self.label:
            out["label"] = self.label
        return out

    @staticmethod
    def from_json(obj: dict) -> "StateSpan":
        return StateSpan(int(parse_state(obj["state"])), float(obj["start_s"]),
                         None if obj.get("end_s") is None else float(obj["end_s"]),
                         bool(obj.get("orphan", False)), bool(obj.get("minisock", False)),
                         str(obj.get("label", "")))


@dataclass(frozen=True)
class PartyTimeline:
    """Everything one party held, in order."""

    name: str
    role: str  # "endpoint" | "middlebox"
    profile: str = ""  # "linux", "freebsd", "ipfw", ... or "kernel" for the lab
    spans: tuple[StateSpan, ...] = ()

    def forgotten_at(self) -> float | None:
        """When the party last held the connection (None: still held at
        the end, or never held it).

        >>> PartyTimeline("c", "endpoint", spans=(StateSpan(1, 0, 2.5),)).forgotten_at()
        2.5
        """
        if not self.spans:
            return None
        return self.spans[-1].end_s

    def held_at_end(self) -> bool:
        return bool(self.spans) and self.spans[-1].end_s is None

    def time_in(self, horizon_s: float | None = None) -> dict[int, float | None]:
        """Total seconds per state (None when a span is open and no horizon
        is given).

        >>> t = PartyTimeline("c", "endpoint", spans=(StateSpan(5, 1, 31),
        ...     StateSpan(5, 31, 61, minisock=True), StateSpan(6, 61, None)))
        >>> t.time_in(horizon_s=100)
        {5: 60, 6: 39}
        """
        out: dict[int, float | None] = {}
        for s in self.spans:
            d = s.duration(horizon_s)
            prev = out.get(s.state, 0)
            out[s.state] = None if d is None or prev is None else prev + d
        return out

    def to_json(self) -> dict:
        return {"role": self.role, "profile": self.profile,
                "states": [s.to_json() for s in self.spans]}


@dataclass(frozen=True)
class Packet:
    """A segment seen on the path. ``flags`` uses tcpdump's letters
    (``S`` SYN, ``F`` FIN, ``R`` RST, ``P`` PSH, ``.`` ACK)."""

    t_s: float
    src: str  # party that sent it (a middlebox for forged segments)
    dst: str  # party it was addressed to
    flags: str
    length: int = 0
    #: why it was sent: "", "retransmission", "keepalive", "loss-probe",
    #: "forged-keepalive", "reset", ...
    tag: str = ""
    #: who dropped it (a middlebox, "path", or the unreachable host), or None
    dropped_by: str | None = None

    def to_json(self) -> dict:
        out = {"t_s": self.t_s, "src": self.src, "dst": self.dst, "flags": self.flags,
               "length": self.length}
        if self.tag:
            out["tag"] = self.tag
        if self.dropped_by is not None:
            out["dropped_by"] = self.dropped_by
        return out


@dataclass(frozen=True)
class Note:
    """Something that happened to a party, as a message key and fields so
    the UI can say it in the user's language (``sim.note.*`` keys)."""

    t_s: float
    party: str
    key: str
    fields: tuple[tuple[str, object], ...] = ()

    def field_dict(self) -> dict:
        return dict(self.fields)

    def to_json(self) -> dict:
        return {"t_s": self.t_s, "party": self.party, "key": self.key,
                "fields": self.field_dict()}


@dataclass(frozen=True)
class Timeline:
    """All parties of one connection over ``[0, horizon_s]``."""

    parties: tuple[PartyTimeline, ...]
    horizon_s: float
    packets: tuple[Packet, ...] = ()
    notes: tuple[Note, ...] = ()
    source: str = "sim"  # "sim" | "lab"

    def party(self, name: str) -> PartyTimeline:
        for p in self.parties:
            if p.name == name:
                return p
        raise KeyError(name)

    def names(self) -> list[str]:
        return [p.name for p in self.parties]

    def to_json(self) -> dict:
        return {"source": self.source, "horizon_s": self.horizon_s,
                "parties": {p.name: p.to_json() for p in self.parties},
                "packets": [p.to_json() for p in self.packets],
                "notes": [n.to_json() for n in self.notes]}


#: States drawn as "the connection is being torn down" (for lifetimes).
TEARDOWN_STATES = LINGERING

#: Buckets of time held in a state (upper bounds, seconds), shared by the
#: HTML pages' histograms (socket ages in ``report --html``, time held at
#: the end of a capture in ``pcap --html``): 60 s is TIME_WAIT and the
#: default tcp_fin_timeout, 7200 s the default tcp_keepalive_time.
AGE_BUCKETS = (1, 5, 15, 60, 300, 1800, 7200)


def age_bucket(seconds: float) -> int:
    """The bucket of ``seconds`` (``len(AGE_BUCKETS)``: beyond the last).

    >>> age_bucket(0.5), age_bucket(1), age_bucket(59.9), age_bucket(1e6)
    (0, 1, 3, 7)
    """
    return bisect.bisect_right(AGE_BUCKETS, seconds)


def lingering_time(party: PartyTimeline, horizon_s: float | None = None) -> float | None:
    """Seconds from the party's first teardown state to forgetting the
    connection (None: still held and no horizon given, or no teardown).

    >>> p = PartyTimeline("c", "endpoint", spans=(StateSpan(1, 0, 1), StateSpan(4, 1, 1.2),
    ...     StateSpan(5, 1.2, 61.2, orphan=True, minisock=True)))
    >>> round(lingering_time(p), 3)
    60.2
    """
    start = next((s.start_s for s in party.spans if s.state in TEARDOWN_STATES), None)
    if start is None:
        return None
    end = party.spans[-1].end_s
    if end is None:
        end = horizon_s
    return None if end is None else end - start


__all__ = ["StateSpan", "PartyTimeline", "Packet", "Note", "Timeline", "TEARDOWN_STATES",
           "lingering_time"]
