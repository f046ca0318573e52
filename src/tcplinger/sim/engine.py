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

import numpy as np

from . import num
from .num import OrderSplit, Split, is_batch, truth


class Event:
    __slots__ = ("when", "seq", "fn", "args", "active", "lo", "hi")

    def __init__(self, when, seq: int, fn, args: tuple, bounds: tuple | None = None):
        self.when = when
        self.seq = seq
        self.fn = fn
        self.args = args
        self.active = True
        # bounds of the time over the batch: most comparisons of two events
        # are settled by them without looking at every point (any bounds
        # will do: a comparison they cannot settle looks at the points)
        if bounds is not None:
            self.lo, self.hi = bounds
        elif isinstance(when, np.ndarray):
            self.lo, self.hi = float(when.min()), float(when.max())
        else:
            self.lo = self.hi = when

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
        self._now_lo = self._now_hi = 0.0  # bounds of now over the batch
        self.fired = 0
        #: batch points still simulated (None: all); see _run_batch
        self.live = None

    def at(self, when, fn, *args) -> Event:
        return self._push(when, fn, args, None)

    def _push(self, when, fn, args: tuple, bounds) -> Event:
        ev = Event(when, self._seq, fn, args, bounds)
        self._seq += 1
        if self.batch:
            self._queue.append(ev)
        else:
            if is_batch(when):
                raise TypeError("array time in a scalar run")
            heapq.heappush(self._queue, ev)
        return ev

    def after(self, delay, fn, *args) -> Event:
        if isinstance(self.now, np.ndarray) and not isinstance(delay, np.ndarray):
            # the bounds of now + a scalar are those of now plus it: rounding
            # is monotonic, so min(fl(t + d)) == fl(min(t) + d); no reduction
            return self._push(self.now + delay, fn, args,
                              (self._now_lo + delay, self._now_hi + delay))
        return self._push(self.now + delay, fn, args, None)

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
            if best is None or ev.hi < best.lo:
                earlier = True
            elif ev.lo > best.hi or (ev.lo == ev.hi == best.lo == best.hi and ev.seq > best.seq):
                earlier = False
            else:
                try:
                    earlier = truth((ev.when < best.when)
                                    | ((ev.when == best.when) & (ev.seq < best.seq)))
                except Split as s:
                    raise OrderSplit(s.mask) from None
            if earlier:
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
        if self.batch:
            self._run_batch()
            return
        while True:
            ev = self._pop()
            if ev is None:
                return
            if ev.when > self.horizon_s:
                return
            self.now = ev.when
            self.fired += 1
            ev.active = False  # fired: no longer pending
            ev.fn(*ev.args)

    def _run_batch(self) -> None:
        """Like run(), for arrays of times. A point whose next event is
        past the horizon is done: it stays in the batch, inactive, and
        what happens to it afterwards is clipped away by the caller."""
        num.set_active(self.live)
        try:
            with np.errstate(all="ignore"):
                while True:
                    ev = self._pop()
                    if ev is None:
                        return
                    beyond = False if ev.hi <= self.horizon_s else ev.when > self.horizon_s
                    if is_batch(beyond):
                        past = beyond if self.live is None else beyond[self.live]
                        if past.all():
                            return
                        if past.any():
                            self.live = ~beyond if self.live is None else self.live & ~beyond
                            num.set_active(self.live)
                    elif beyond:
                        return
                    self.now = ev.when
                    self._now_lo, self._now_hi = ev.lo, ev.hi
                    self.fired += 1
                    ev.active = False
                    ev.fn(*ev.args)
        finally:
            num.set_active(None)
