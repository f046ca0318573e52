"""The tracker fed samples that left ESTABLISHED out of the dump (watch
between full dumps): no spurious transitions, ages kept, counts exact."""

import numpy as np

from tcplinger.model.table import SocketTable, empty
from tcplinger.track import series
from tcplinger.track.events import FIRST_SEEN
from tcplinger.track.tracker import Tracker

LO = np.void(bytes([127, 0, 0, 1]) + bytes(12))
EST, SYN_SENT, SYN_RECV, FW1, FW2, TW, CW, LISTEN = 1, 2, 3, 4, 5, 6, 8, 10
BETWEEN = frozenset(range(1, 12)) - {EST}


def table(*socks, timewait=()):
    """socks: (cookie, state, sport, dport)"""
    rows = empty(len(socks))
    for i, (cookie, state, sport, dport) in enumerate(socks):
        rows[i]["cookie"], rows[i]["state"] = cookie, state
        rows[i]["sport"], rows[i]["dport"], rows[i]["family"] = sport, dport, 2
        rows[i]["saddr"] = rows[i]["daddr"] = LO
        rows[i]["timewait"] = cookie in timewait
    return SocketTable(rows)


def masked(tab):
    return SocketTable(tab.rows[tab.rows["state"] != EST])


def live_states(tr, ns):
    st = tr.live(ns)
    return dict(zip(st.cols["cookie"].tolist(), st.cols["state"].tolist()))


def test_established_not_dumped_is_kept_without_transitions():
    for miss_limit in (1, 2):
        tr = Tracker(miss_limit=miss_limit)
        full = table((1, EST, 80, 5000), (2, EST, 80, 5001), (3, CW, 80, 5002),
                     (4, LISTEN, 80, 0))
        assert tr.observe([(9, full)], now=0.0) == []
        for t in (1.0, 2.0, 3.0):
            assert tr.observe([(9, masked(full))], now=t, dumped_states=BETWEEN) == []
        assert live_states(tr, 9) == {1: EST, 2: EST, 3: CW, 4: LISTEN}
        assert tr.live(9).missed.tolist() == [0, 0, 0, 0]
        # the next full dump finds them as they were: still nothing to report
        assert tr.observe([(9, full)], now=10.0) == []


def test_ages_of_kept_sockets_run_on():
    tr = Tracker()
    tr.observe([(9, table((1, EST, 80, 5000)))], now=0.0)
    tr.observe([(9, table((5, CW, 80, 6000)))], now=1.0, dumped_states=BETWEEN)
    tr.observe([(9, table((5, CW, 80, 6000)))], now=2.0, dumped_states=BETWEEN)
    a = tr.ages(9, table((1, EST, 80, 5000)), now=2.5)
    assert (float(a.seconds[0]), bool(a.at_least[0])) == (2.5, True)  # there before watching
    b = tr.ages(9, table((5, CW, 80, 6000)), now=2.5)
    assert (float(b.seconds[0]), bool(b.at_least[0]), int(b.source[0])) == (1.5, False, FIRST_SEEN)


def test_established_leaving_between_full_dumps_is_a_transition():
    tr = Tracker()
    tr.observe([(9, table((1, EST, 80, 5000), (2, EST, 80, 5001)))], now=0.0)
    # socket 1 half-closed by its peer: the masked dump sees it in CLOSE_WAIT
    out = tr.observe([(9, table((1, CW, 80, 5000)))], now=3.0, dumped_states=BETWEEN)
    assert [(t.cookie, t.old, t.new, t.t) for t in out] == [(1, EST, CW, 3.0)]
    assert out[0].stayed == 3.0 and out[0].stayed_at_least
    assert live_states(tr, 9) == {1: CW, 2: EST}


def test_established_reset_is_noticed_at_the_next_full_dump():
    tr = Tracker()
    tr.observe([(9, table((1, EST, 80, 5000), (2, EST, 80, 5001)))], now=0.0)
    assert tr.observe([(9, table())], now=1.0, dumped_states=BETWEEN) == []
    out = tr.observe([(9, table((2, EST, 80, 5001)))], now=10.0)
    assert [(t.cookie, t.old, t.new, t.t) for t in out] == [(1, EST, None, 10.0)]


def test_missing_from_a_full_dump_then_not_looked_for_still_ends():
    # miss_limit 2 (tracing): one miss at the full dump, then masked samples
    # must not keep a gone ESTABLISHED socket until the next full dump
    tr = Tracker(miss_limit=2)
    tr.observe([(9, table((1, EST, 80, 5000)))], now=0.0)
    tr.observe([(9, table())], now=0.5)
    out = tr.observe([(9, table())], now=1.0, dumped_states=BETWEEN)
    assert [(t.cookie, t.old, t.new) for t in out] == [(1, EST, None)]


def test_dumped_state_missing_counts_a_miss():
    tr = Tracker()
    tr.observe([(9, table((1, EST, 80, 5000), (3, CW, 80, 5002)))], now=0.0)
    out = tr.observe([(9, table())], now=1.0, dumped_states=BETWEEN)
    assert [(t.cookie, t.old, t.new) for t in out] == [(3, CW, None)]
    assert live_states(tr, 9) == {1: EST}


def test_first_seen_in_a_state_not_dumped_before_is_at_least():
    tr = Tracker()
    tr.observe([(9, table((1, EST, 80, 5000)))], now=0.0)
    tr.observe([(9, table())], now=1.0, dumped_states=BETWEEN)
    # socket 7 may have been ESTABLISHED since just after t=0
    out = tr.observe([(9, table((1, EST, 80, 5000), (7, EST, 80, 7000)))], now=10.0)
    assert [(t.cookie, t.old, t.new) for t in out] == [(7, None, EST)]
    a = tr.ages(9, table((7, EST, 80, 7000)), now=12.0)
    assert (float(a.seconds[0]), bool(a.at_least[0])) == (2.0, True)
    # one that was seen in a dumped state (SYN_SENT) changed within the interval
    tr.observe([(9, table((8, SYN_SENT, 80, 8000)))], now=11.0, dumped_states=BETWEEN)
    tr.observe([(9, table((1, EST, 80, 5000), (7, EST, 80, 7000), (8, EST, 80, 8000)))],
               now=12.0)
    b = tr.ages(9, table((8, EST, 80, 8000)), now=13.0)
    assert (float(b.seconds[0]), bool(b.at_least[0])) == (1.0, False)
    # after a full dump, new ESTABLISHED sockets are exact to an interval again
    tr.observe([(9, table((1, EST, 80, 5000), (9, EST, 80, 9000)))], now=13.0)
    c = tr.ages(9, table((9, EST, 80, 9000)), now=14.0)
    assert (float(c.seconds[0]), bool(c.at_least[0])) == (1.0, False)


def test_established_count_between_full_dumps_is_exact():
    # the measured host: 69998 ESTABLISHED + 10000 FIN_WAIT2 + 10000
    # CLOSE_WAIT + 2 LISTEN full sockets, inuse 90000; TIME_WAIT and
    # request sockets are not in inuse
    socks, cookie = [], 0
    for state, n in ((EST, 69998), (FW2, 10000), (CW, 10000), (LISTEN, 2), (TW, 500),
                     (SYN_RECV, 3)):
        for _ in range(n):
            cookie += 1
            socks.append((cookie, state, 80, cookie % 65536))
    rows = table(*socks[:20]).rows  # dtype template
    rows = np.zeros(len(socks), rows.dtype)
    rows["cookie"] = [c for c, *_ in socks]
    rows["state"] = [s for _, s, *_ in socks]
    rows["timewait"] = rows["state"] == TW
    full = SocketTable(rows)
    assert series.established_between(masked(full), 90000) == 69998
    counts = {c.state: c.n for c in series.counts(9, masked(full), {})}
    assert EST not in counts and counts[CW] == 10000
    # a racing close makes inuse smaller than the dump: never negative
    assert series.established_between(masked(full), 10) == 0


def test_kept_rows_merge_in_cookie_order_with_their_own_ages():
    tr = Tracker()
    rng = np.random.default_rng(5)
    cookies = rng.permutation(np.arange(1, 2001))
    socks = [(int(c), EST if c % 3 else CW, 80, int(c)) for c in cookies]
    full = table(*socks)
    tr.observe([(9, full)], now=0.0)
    newer = table(*[s for s in socks if s[1] == CW], (5000, FW2, 81, 1))
    tr.observe([(9, newer)], now=1.0, dumped_states=BETWEEN)
    st = tr.live(9)
    assert np.all(np.diff(st.cols["cookie"].astype(np.int64)) > 0)
    assert len(st.cols) == 2001
    # every row kept its own tuple and age, whichever side it came from
    old = st.cols["cookie"] < 5000
    assert np.all(st.cols["dport"][old] == st.cols["cookie"][old])
    assert st.since[st.cols["cookie"] == 5000].tolist() == [1.0]
    assert set(st.since[st.cols["cookie"] != 5000].tolist()) == {0.0}
    # and the next sample still matches all of them: nothing to report
    out = tr.observe([(9, table(*socks, (5000, FW2, 81, 1)))], now=3.0)
    assert out == []
