"""What ``report --interval S`` samples before it waits, and what the
second look makes of it:

* the kernel counters (app/counters.py): rates from TcpExt TW +
  TCPTimeWaitOverflow over the interval (diagnose/rates.py);
* the sockets in the states a process holds (model.states.OWNABLE), by
  cookie: one still in the same state at the second snapshot has been in
  it at least the interval (the two-snapshot proof of a minimum age, for
  the rules that accuse a process; source ``first_seen``, a lower bound);
* the processes the state-change tracepoint sees connecting, by
  destination, during the interval (collect/connects.py; root and tracefs
  only): the culprits of TIME_WAIT towards connections too short for a
  /proc walk to catch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..collect import snapshot as snap_mod
from ..collect.connects import ConnectProbe, ConnectSample
from ..collect.roots import Roots
from ..collect.snapshot import Scope
from ..model.states import OWNABLE
from ..track.events import FIRST_SEEN, TrackedAges, bound_codes, merge_ages
from . import counters


@dataclass(frozen=True)
class FirstLook:
    """The sockets of one namespace at the first look: sorted cookies and
    their states, and when (wall clock)."""

    taken_at: float
    cookies: np.ndarray
    states: np.ndarray


@dataclass
class Before:
    counters: dict  # app/counters.py readings
    sockets: dict = field(default_factory=dict)  # netns inode -> FirstLook
    connects: ConnectSample | None = None
    connects_error: str | None = None  # why the tracepoint was not used


def sample_over(scopes: tuple[Scope, ...], interval: float, roots: Roots = Roots(), *,
                connects: bool = True) -> Before:
    """Look, wait ``interval`` seconds (recording connects), return the first look."""
    before = Before(counters.sample(scopes, roots), _sockets(scopes, roots))
    probe = ConnectProbe(roots.proc) if connects else None
    started = probe is not None and probe.start()
    try:
        time.sleep(interval)
    finally:
        if started:
            before.connects = probe.stop()
    if probe is not None and not started:
        before.connects_error = probe.error
    return before


def _sockets(scopes, roots: Roots) -> dict:
    out = {}
    for scope in scopes:
        try:
            snap = snap_mod.take(scope, states=OWNABLE, roots=roots)
        except OSError:
            continue  # the second snapshot says why
        for ns in snap.namespaces:
            rows = ns.table.rows
            order = np.argsort(rows["cookie"], kind="stable")
            out[ns.netns.inode] = FirstLook(ns.taken_at, rows["cookie"][order],
                                            rows["state"][order])
    return out


def seen_since(first: FirstLook, cookies: np.ndarray, states: np.ndarray) -> np.ndarray:
    """Per row, the first look's time when the same socket (cookie) was in
    the same state then; NaN otherwise.

    >>> f = FirstLook(100.0, np.array([5, 9], np.uint64), np.array([8, 8]))
    >>> seen_since(f, np.array([9, 5, 7], np.uint64), np.array([8, 6, 8])).tolist()
    [100.0, nan, nan]
    """
    out = np.full(len(cookies), np.nan)
    if len(first.cookies) == 0 or len(cookies) == 0:
        return out
    cookies = np.asarray(cookies, np.uint64)
    idx = np.minimum(np.searchsorted(first.cookies, cookies), len(first.cookies) - 1)
    hit = (first.cookies[idx] == cookies) & (first.states[idx] == states)
    out[hit] = first.taken_at
    return out


def attach_ages(part, first: FirstLook | None) -> int:
    """Give ``part`` (app.view.NsView) the two-snapshot lower bounds where
    they say more than what it has; returns how many rows got one."""
    if first is None:
        return 0
    rows = part.table.rows
    since = seen_since(first, rows["cookie"], rows["state"])
    seen = ~np.isnan(since)
    if not seen.any():
        return 0
    timer, bound = part.age_arrays()
    mine = merge_ages(part.ns.taken_at, since, np.full(len(rows), FIRST_SEEN, np.int8),
                      np.ones(len(rows), bool), timer, bound, bound_codes(part.table))
    have = part.tracked
    if have is None:
        part.tracked = mine
        return int(np.count_nonzero(seen & (mine.source == FIRST_SEEN)))
    # a fresh watch database's ages win where exact; lower bounds yield to
    # a larger one
    better = seen & (np.isnan(have.seconds) | (have.at_least & (mine.seconds > have.seconds)))
    part.tracked = TrackedAges(np.where(better, mine.seconds, have.seconds),
                               np.where(better, mine.at_least, have.at_least),
                               np.where(better, mine.source, have.source).astype(np.int8))
    return int(np.count_nonzero(better))
