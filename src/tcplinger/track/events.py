"""What the tracker takes and gives: state events from the tracepoint,
transitions, and ages with their source, ranked by :func:`merge_ages`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.socket import AgeSource

#: Age source codes in arrays: index -> AgeSource. The first three are
#: the order export/jsonout.py used before tracked ages existed.
SOURCE_CODES = (AgeSource.UNKNOWN, AgeSource.TIMER, AgeSource.LAST_RECV,
                AgeSource.TRACE, AgeSource.FIRST_SEEN, AgeSource.SINCE_CLOSE)
CODE = {s: i for i, s in enumerate(SOURCE_CODES)}
UNKNOWN, TIMER, LAST_RECV, TRACE, FIRST_SEEN, SINCE_CLOSE = range(6)

#: The kernel's TCP_CLOSE: what a destroyed socket's last event enters.
CLOSE = 7


@dataclass(frozen=True)
class StateEvent:
    """One ``inet_sock_set_state`` (or ``tcp_destroy_sock``: ``new`` CLOSE,
    ``cookie`` set) event, in the tracker's clock (time.monotonic())."""

    t: float
    family: int
    local: tuple[str, int]
    remote: tuple[str, int]
    old: int | None
    new: int | None
    cookie: int | None = None

    @property
    def ports(self) -> int:
        return (self.local[1] << 16) | self.remote[1]


@dataclass(frozen=True)
class Transition:
    """A socket moved from ``old`` to ``new`` at ``t`` (None: it appeared /
    went away). ``stayed`` is how long it was in ``old`` (None: unknown),
    a lower bound when ``stayed_at_least``."""

    netns: int
    cookie: int
    old: int | None
    new: int | None
    t: float
    source: AgeSource
    stayed: float | None
    stayed_at_least: bool
    family: int = 2
    local: tuple[str, int] = ("", 0)
    remote: tuple[str, int] = ("", 0)
    #: a trace event read after the sample that saw the change by sampling:
    #: this transition replaces the sampled one (same cookie and ``new``)
    corrects: bool = False


@dataclass
class TrackedAges:
    """Per row: seconds in state (NaN unknown), lower bound or not, and the
    source as a code of :data:`SOURCE_CODES`."""

    seconds: np.ndarray
    at_least: np.ndarray
    source: np.ndarray

    def __len__(self) -> int:
        return len(self.seconds)

    def source_of(self, i: int) -> AgeSource:
        return SOURCE_CODES[int(self.source[i])]

    def select(self, idx) -> "TrackedAges":
        return TrackedAges(self.seconds[idx], self.at_least[idx], self.source[idx])

    def as_tuple(self):
        """The form export/jsonout.py accepts: (seconds, at_least, codes)."""
        return (self.seconds, self.at_least, self.source)

    def to_ages(self) -> list:
        from ..model.socket import UNKNOWN_AGE, Age
        out = []
        for s, b, c in zip(self.seconds.tolist(), self.at_least.tolist(), self.source.tolist()):
            out.append(UNKNOWN_AGE if s != s or c == UNKNOWN
                       else Age(s, bool(b), SOURCE_CODES[c]))
        return out


def merge_ages(now: float, since: np.ndarray, since_code: np.ndarray, since_at_least: np.ndarray,
               timer: np.ndarray, bound: np.ndarray,
               bound_code: np.ndarray | int = LAST_RECV) -> TrackedAges:
    """Rank the age sources per row: trace, timer, first seen, last receive.

    ``since`` is the tracker's entry time (NaN: untracked) with its code
    (TRACE or FIRST_SEEN) and whether it is only a lower bound; ``timer``
    and ``bound`` are track.age.age_arrays(), ``bound_code`` the code of
    each bound (SINCE_CLOSE for orphans' timers: :func:`bound_codes`). A
    first-seen lower bound yields to a larger last-receive bound (both are
    "at least"; the larger one is closer to the truth).

    >>> nan = float("nan")
    >>> a = merge_ages(100.0, np.array([90.0, 90.0, 90.0, 99.0, nan, nan]),
    ...                np.array([TRACE, FIRST_SEEN, FIRST_SEEN, FIRST_SEEN, 0, 0]),
    ...                np.array([False, False, True, True, False, False]),
    ...                np.array([30.0, 30.0, nan, nan, nan, nan]),
    ...                np.array([nan, nan, 5.0, 20.0, 3.0, nan]))
    >>> a.seconds.tolist(), a.at_least.tolist()
    ([10.0, 30.0, 10.0, 20.0, 3.0, nan], [False, False, True, True, True, False])
    >>> [s.value for s in map(a.source_of, range(6))]
    ['trace', 'timer', 'first_seen', 'last_recv', 'last_recv', 'unknown']
    """
    n = len(since)
    seconds = np.full(n, np.nan)
    at_least = np.zeros(n, bool)
    code = np.zeros(n, np.int8)
    tracked = ~np.isnan(since)
    with np.errstate(invalid="ignore"):
        elapsed = np.maximum(now - since, 0.0)
    # lowest rank first, higher ranks overwrite
    b = ~np.isnan(bound)
    bcode = np.broadcast_to(np.asarray(bound_code, np.int8), (n,))
    seconds[b], at_least[b], code[b] = bound[b], True, bcode[b]
    fs = tracked & (since_code == FIRST_SEEN)
    fs_exact = fs & ~since_at_least
    with np.errstate(invalid="ignore"):
        fs_bound = fs & since_at_least & ~(b & (bound > elapsed))
    for m, low in ((fs_exact, False), (fs_bound, True)):
        seconds[m], at_least[m], code[m] = elapsed[m], low, FIRST_SEEN
    t = ~np.isnan(timer)
    seconds[t], at_least[t], code[t] = timer[t], False, TIMER
    tr = tracked & (since_code == TRACE)
    seconds[tr], at_least[tr], code[tr] = elapsed[tr], False, TRACE
    return TrackedAges(seconds, at_least, code)


def bound_codes(table) -> np.ndarray:
    """The source code of each row's lower bound (track.age.bound_sources):
    SINCE_CLOSE for orphans, LAST_RECV for the others."""
    from .age import since_close_mask
    return np.where(since_close_mask(table), SINCE_CLOSE, LAST_RECV).astype(np.int8)


def event_from_trace(ev) -> StateEvent | None:
    """A collect.trace_events.TraceEvent (duck-typed: track stays pure) as a
    StateEvent; None for events that are neither kind."""
    if ev.event == "inet_sock_set_state":
        return StateEvent(ev.t, ev.family or 2, ev.local, ev.remote, ev.oldstate, ev.newstate)
    if ev.event == "tcp_destroy_sock":
        return StateEvent(ev.t, ev.family or 2, ev.local, ev.remote, None, CLOSE, ev.cookie)
    return None
