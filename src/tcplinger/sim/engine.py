"""The discrete-event core: a clock and a queue of pending events.

Events fire in (time, order of scheduling) order, so a run is
deterministic. A pending event can be cancelled (timers are re-armed by
cancelling and scheduling again). Events after the horizon never fire.

>>> eng = Engine(horizon_s=10)
>>> seen = []
>>> _ = eng.at(2.0, seen.append, "b"); _ = eng.at(1.0, seen.append, "a")
>>> late = eng.at(11.0, seen.append, "never")
>>> cancelled = eng.at(1.5, seen.append, "cancelled"); cancelled.cancel()
>>> eng.run(); seen, eng.now
(['a', 'b'], 2.0)
"""

from __future__ import annotations

import heapq

from .num import is_batch, truth


class Event:
    __slots__ = ("when", "seq", "fn", "args", "active")

    def __init__(self, when, seq: int, fn, args: tuple):
        self.when = when
        self.seq = seq
        self.fn = fn
        self.args = args
        self.active = True

    def cancel(self) -> None:
        self.active = False

    def __lt__(self, other: "Event") -> bool:  # heap order (scalar runs only)
        return (self.when, self.seq) < (other.when, other.seq)


class Engine:
    """Clock + event queue. ``batch=True`` when times are numpy arrays (a
    sweep simulated in lockstep): the queue then compares events through
    :func:`~tcplinger.sim.num.truth`, which splits the batch when the order
    of two events differs between grid points."""

    def __init__(self, horizon_s, batch: bool = False):
        self.now = 0.0
        self.horizon_s = horizon_s
        self.batch = batch
        self._queue: list[Event] = []
        self._seq = 0
        self.fired = 0

    def at(self, when, fn, *args) -> Event:
        ev = Event(when, self._seq, fn, args)
        self._seq += 1
        if self.batch:
            self._queue.append(ev)
        else:
            if is_batch(when):
                raise TypeError("array time in a scalar run")
            heapq.heappush(self._queue, ev)
        return ev

    def after(self, delay, fn, *args) -> Event:
        return self.at(self.now + delay, fn, *args)

    def _pop(self) -> Event | None:
        q = self._queue
        if not self.batch:
            while q:
                ev = heapq.heappop(q)
                if ev.active:
                    return ev
            return None
        best_i = -1
        best = None
        for i, ev in enumerate(q):
            if not ev.active:
                continue
            if best is None or truth((ev.when < best.when)
                                     | ((ev.when == best.when) & (ev.seq < best.seq))):
                best, best_i = ev, i
        if best is None:
            q.clear()
            return None
        q.pop(best_i)
        # drop cancelled events now and then so the scan stays short
        if len(q) > 32:
            self._queue = [e for e in q if e.active]
        return best

    def run(self) -> None:
        while True:
            ev = self._pop()
            if ev is None:
                return
            if truth(ev.when > self.horizon_s):
                return
            self.now = ev.when
            self.fired += 1
            ev.active = False  # fired: no longer pending
            ev.fn(*ev.args)
