"""The tracker's steady path between full dumps (identity.update_in_place:
the kept rows left where they are) against the merge it replaces, on
random sequences of samples: the tracked tables, the ages and the
transitions identical after every sample. The dumps come in a hash order,
mostly the same for the same sockets (identity.DumpOrders reuses it)."""

import numpy as np
import pytest

from tcplinger.model.table import SocketTable, empty
from tcplinger.track import tracker as tracker_mod
from tcplinger.track.events import StateEvent
from tcplinger.track.identity import DumpOrders, concat
from tcplinger.track.tracker import Tracker

EST, FW1, FW2, TW, CW, LA, LISTEN = 1, 4, 5, 6, 8, 9, 10
STATES = (EST, EST, EST, FW1, FW2, TW, CW, LA, LISTEN)
BETWEEN = frozenset(range(1, 12)) - {EST}
FIELDS = ("cols", "hash", "since", "code", "at_least", "first_seen", "missed", "prev_since",
          "prev_at_least")


class FreshOrders(DumpOrders):
    def order(self, ns, rows):
        return np.argsort(rows["cookie"], kind="stable")


class MergingTracker(Tracker):
    """The tracker as it was: each sample sorted afresh, the kept rows
    always merged (concat)."""

    def __post_init__(self):
        self.orders = FreshOrders()

    def _merge_kept(self, st, old, idx, hit, kept):
        _, keep, unseen = kept
        return concat(st, old, keep, unseen[keep]) if keep.any() else st

    def _unchanged(self, *args):
        return None  # every sample through the carry-over and the merge


def table(socks):
    """socks: {cookie: (state, sport, dport, last address byte)}, in dump order."""
    rows = empty(len(socks))
    for i, (cookie, (state, sport, dport, a)) in enumerate(socks):
        rows[i]["cookie"], rows[i]["state"], rows[i]["family"] = cookie, state, 2
        rows[i]["sport"], rows[i]["dport"] = sport, dport
        rows[i]["saddr"] = np.void(bytes([127, 0, 0, 1]) + bytes(12))
        rows[i]["daddr"] = np.void(bytes([127, 0, 0, a]) + bytes(12))
    return SocketTable(rows)


def step(rng, pop, t, events):
    """Change the population the way a host does, mostly not at all."""
    r = rng.random()
    if r < 0.5:
        return  # steady: the same sockets in the same states
    for c in list(pop):
        s, sp, dp, a = pop[c]
        u = rng.random()
        if u < 0.05:
            del pop[c]
        elif u < 0.12:
            new = int(rng.choice(STATES))
            pop[c] = (new, sp, dp, a)
            if rng.random() < 0.5:  # traced, maybe late
                events.append(StateEvent(t - rng.random(), 2, ("127.0.0.1", sp),
                                         (f"127.0.0.{a}", dp), s, new))
        elif u < 0.14:
            pop[c] = (s, sp, dp, a % 200 + 1)  # a reused cookie: another socket
    for _ in range(int(rng.integers(0, 3))):
        c = int(rng.integers(1, 400))
        pop.setdefault(c, (int(rng.choice(STATES)), int(rng.integers(1, 60)),
                           int(rng.integers(1, 60)), int(rng.integers(1, 200))))


def dumped(rng, pop, full):
    socks = [(c, v) for c, v in pop.items() if full or v[0] != EST]
    if rng.random() < 0.3:
        rng.shuffle(socks)
    else:  # the kernel's hash order, not by cookie: the same for the same sockets
        socks.sort(key=lambda s: (s[0] * 2654435761) % 1000003)
    if socks and rng.random() < 0.05:
        socks.append(socks[0])  # a row twice (a replayed dump)
    return table(socks)


def assert_same(a: Tracker, b: Tracker, probe: dict):
    assert a.namespaces.keys() == b.namespaces.keys()
    for ns, x in a.namespaces.items():
        y = b.namespaces[ns]
        for f in FIELDS:
            assert getattr(x, f).dtype == getattr(y, f).dtype, f
            assert getattr(x, f).tobytes() == getattr(y, f).tobytes(), f
        assert np.array_equal(x.cookies, y.cookies)
        assert x.last_obs == y.last_obs
        assert (x.last_mask is None) == (y.last_mask is None)
        if x.last_mask is not None:
            assert np.array_equal(x.last_mask, y.last_mask)
        tab = table(list(probe[ns].items()))
        for u, v in zip(a.since_arrays(ns, tab), b.since_arrays(ns, tab)):
            assert u.tobytes() == v.tobytes()


def quiet_step(rng, pop, hidden: set) -> None:
    """One change at most, of the kinds a sample that changes nothing must
    be told from: a reused cookie on another 4-tuple, an ESTABLISHED socket
    gone, a socket left out of one dump (missed once, then back), a state
    change, a new socket."""
    hidden.clear()
    r = rng.random()
    c = int(rng.choice(list(pop)))
    s, sp, dp, a = pop[c]
    if r < 0.1:
        pop[c] = (s, sp, dp, a % 200 + 1)
    elif r < 0.2:
        est = [k for k, v in pop.items() if v[0] == EST]
        if est:
            del pop[int(rng.choice(est))]
    elif r < 0.3:
        hidden.add(c)
    elif r < 0.4:
        pop[c] = (int(rng.choice(STATES)), sp, dp, a)
    elif r < 0.45:
        pop.setdefault(int(rng.integers(1, 400)), (int(rng.choice(STATES)), 7, 7, 7))


def _count_answers(monkeypatch, name: str) -> list[bool]:
    """Wrap tracker_mod.NAME (a fast path that answers None when it does
    not apply); the list gets True for each answer given, False for None."""
    taken: list[bool] = []
    real = getattr(tracker_mod, name)

    def counted(*args):
        out = real(*args)
        taken.append(out is not None)
        return out
    monkeypatch.setattr(tracker_mod, name, counted)
    return taken


@pytest.mark.parametrize("seed", range(12))
def test_unchanged_samples_equal_the_merge_without_events(seed, monkeypatch):
    """A sample between full dumps that changes nothing (identity.unchanged:
    the tracker's namespace handed on as it is) against the merge, on
    random sequences without trace events (with events the path is not
    taken): mostly nothing, else one change of a kind it must not miss."""
    taken = _count_answers(monkeypatch, "unchanged")
    rng = np.random.default_rng(100 + seed)
    miss_limit = 1 + seed % 2
    new, ref = Tracker(miss_limit=miss_limit), MergingTracker(miss_limit=miss_limit)
    pops = {ns: {} for ns in (11, 12)}
    for ns, pop in pops.items():
        for c in rng.choice(np.arange(1, 400), 60, replace=False).tolist():
            pop[c] = (int(rng.choice(STATES)), int(rng.integers(1, 60)),
                      int(rng.integers(1, 60)), int(rng.integers(1, 200)))
    hidden = {ns: set() for ns in pops}
    for i in range(120):
        t = float(i)
        for ns, pop in pops.items():
            quiet_step(rng, pop, hidden[ns])
        full = i % 5 == 0
        parts = [(ns, dumped(rng, {c: v for c, v in pop.items() if c not in hidden[ns]}, full))
                 for ns, pop in pops.items() if full or rng.random() < 0.95]
        got = new.observe(parts, now=t, dumped_states=None if full else BETWEEN)
        want = ref.observe(parts, now=t, dumped_states=None if full else BETWEEN)
        assert repr(got) == repr(want), i
        assert_same(new, ref, pops)
    assert sum(taken) >= 10 and not all(taken)  # both answers were given


@pytest.mark.parametrize("seed", range(12))
def test_in_place_equals_the_merge_on_random_samples(seed, monkeypatch):
    taken = _count_answers(monkeypatch, "update_in_place")
    rng = np.random.default_rng(seed)
    miss_limit = 1 + seed % 2
    new, ref = Tracker(miss_limit=miss_limit), MergingTracker(miss_limit=miss_limit)
    pops = {ns: {} for ns in (11, 12)}
    for ns, pop in pops.items():
        for c in rng.choice(np.arange(1, 400), 120, replace=False).tolist():
            pop[c] = (int(rng.choice(STATES)), int(rng.integers(1, 60)),
                      int(rng.integers(1, 60)), int(rng.integers(1, 200)))
    for i in range(60):
        t = float(i)
        events: list = []
        for pop in pops.values():
            step(rng, pop, t, events)
        full = i % 7 == 0
        # a namespace not read this time keeps its sockets untouched
        parts = [(ns, dumped(rng, pop, full)) for ns, pop in pops.items()
                 if full or rng.random() < 0.9]
        for tr in (new, ref):
            tr.add_events(events)
        got = new.observe(parts, now=t, dumped_states=None if full else BETWEEN)
        want = ref.observe(parts, now=t, dumped_states=None if full else BETWEEN)
        assert repr(got) == repr(want), i
        assert_same(new, ref, pops)
    assert any(taken) and not all(taken)  # both paths were walked


def test_a_steady_sample_leaves_the_kept_rows_where_they_are():
    """Between full dumps, the same dumped sockets as last time: the tracked
    arrays are the last sample's (no 100k-row merge), their rows updated."""
    socks = [(c, (EST if c % 3 else CW, 80, c, 2)) for c in range(1, 301)]
    tr = Tracker()
    tr.observe([(9, table(socks))], now=0.0)
    between = [s for s in socks if s[1][0] != EST]
    tr.observe([(9, table(between))], now=1.0, dumped_states=BETWEEN)
    before = tr.live(9)
    moved = [(c, (LA if c == 3 else s[0], *s[1:])) for c, s in between]
    out = tr.observe([(9, table(moved))], now=2.0, dumped_states=BETWEEN)
    after = tr.live(9)
    assert after.cols is before.cols and after.since is before.since
    assert [(x.cookie, x.old, x.new) for x in out] == [(3, CW, LA)]
    row = np.flatnonzero(after.cols["cookie"] == 3)[0]
    assert (int(after.cols["state"][row]), float(after.since[row])) == (LA, 2.0)
    assert after.last_obs == 2.0 and len(after.cols) == 300
