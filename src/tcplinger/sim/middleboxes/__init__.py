"""Middleboxes: stateful devices on the path (firewalls, NAT, load
balancers) with their own per-connection state and timers.

A middlebox sees each segment crossing it (:meth:`Middlebox.process`
returns whether it passes), may send segments of its own
(:meth:`Middlebox.forge`), and records its state as a party of the
timeline (its own state name in the span label, mapped onto the closest
TCP state for colour).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...model.states import TcpState
from ...model.params import Param
from ..segment import Segment


@dataclass(frozen=True)
class MiddleboxProfile:
    name: str
    title: str
    params: tuple[Param, ...]
    cls: type
    sources: tuple[str, ...] = ()


class Middlebox:
    """Base: passes everything and keeps no state."""

    def __init__(self, name: str, profile: str, engine, params, record: bool = True):
        self.name = name
        self.profile = profile
        self.engine = engine
        self.p = params
        self.record = record
        self.path = None
        self.position = 0
        self.spans: list[list] = []  # [state, start, end, label]
        self.notes: list[tuple] = []
        self.state: TcpState | None = None
        self.label = ""

    def attach(self, path, position: int) -> None:
        self.path = path
        self.position = position
        self.start()

    def start(self) -> None:
        """Schedule periodic work (ticks)."""

    def note(self, key: str, **fields) -> None:
        if self.record:
            self.notes.append((self.engine.now, self.name, key, tuple(fields.items())))

    def set_state(self, state: TcpState | None, label: str = "") -> None:
        now = self.engine.now
        if self.spans and self.spans[-1][2] is None:
            last = self.spans[-1]
            if state is not None and last[0] == state and last[3] == label:
                return
            last[2] = now
        self.state, self.label = state, label
        if state is not None:
            self.spans.append([state, now, None, label])

    def process(self, seg: Segment, forward: bool) -> bool:
        return True

    def forge(self, seg: Segment) -> None:
        """Send a segment of our own (it carries our name as origin)."""
        seg.origin = self.name
        self.path.inject(seg, self.position)


def registry() -> dict[str, MiddleboxProfile]:
    from . import conntrack, idle, ipfw
    out = {}
    for mod in (ipfw, conntrack, idle):
        for prof in mod.PROFILES:
            out[prof.name] = prof
    return out


_REGISTRY: dict[str, MiddleboxProfile] = {}


def get(name: str) -> MiddleboxProfile:
    if not _REGISTRY:
        _REGISTRY.update(registry())
    return _REGISTRY[name]


def names() -> list[str]:
    if not _REGISTRY:
        _REGISTRY.update(registry())
    return sorted(_REGISTRY)
