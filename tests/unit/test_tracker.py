"""The tracker on synthetic snapshot sequences: identity by cookie (and
4-tuple), age precedence, trace events joined by 4-tuple, namespaces."""

import numpy as np
import pytest

from tcplinger.model.kernel import KernelContext
from tcplinger.model.socket import AgeSource
from tcplinger.model.table import SocketTable, empty
from tcplinger.track import age as age_mod
from tcplinger.track.events import (CLOSE, FIRST_SEEN, TRACE, StateEvent, event_from_trace,
                                    merge_ages)
from tcplinger.track.tracker import Tracker

LO = np.void(bytes([127, 0, 0, 1]) + bytes(12))
EST, FW1, FW2, TW, CW, LA = 1, 4, 5, 6, 8, 9


def table(*socks):
    """socks: (cookie, state, sport, dport)"""
    rows = empty(len(socks))
    for i, (cookie, state, sport, dport) in enumerate(socks):
        rows[i]["cookie"], rows[i]["state"] = cookie, state
        rows[i]["sport"], rows[i]["dport"], rows[i]["family"] = sport, dport, 2
        rows[i]["saddr"] = rows[i]["daddr"] = LO
    return SocketTable(rows)


def ev(t, sport, dport, old, new):
    return StateEvent(t, 2, ("127.0.0.1", sport), ("127.0.0.1", dport), old, new)


def age_of(tr, ns, tab, now, i=0):
    a = tr.ages(ns, tab, now)
    return float(a.seconds[i]), bool(a.at_least[i]), a.source_of(i)


def test_stuck_before_watching_is_at_least():
    tr = Tracker()
    tab = table((1, CW, 80, 5000))
    assert tr.observe([(1, tab)], now=100.0) == []
    assert age_of(tr, 1, tab, 130.0) == (30.0, True, AgeSource.FIRST_SEEN)


def test_change_between_samples_is_within_one_interval():
    tr = Tracker()
    tr.observe([(1, table((1, EST, 80, 5000)))], now=0.0)
    out = tr.observe([(1, table((1, CW, 80, 5000)))], now=10.0)
    assert [(t.old, t.new, t.t, t.source) for t in out] == [(EST, CW, 10.0, AgeSource.FIRST_SEEN)]
    assert out[0].stayed == 10.0 and out[0].stayed_at_least
    assert age_of(tr, 1, table((1, CW, 80, 5000)), 25.0) == (15.0, False, AgeSource.FIRST_SEEN)


def test_new_socket_after_first_sample_is_exact_to_an_interval():
    tr = Tracker()
    tr.observe([(1, table())], now=0.0)
    out = tr.observe([(1, table((9, CW, 80, 5000)))], now=10.0)
    assert [(t.old, t.new) for t in out] == [(None, CW)]
    assert age_of(tr, 1, table((9, CW, 80, 5000)), 12.0) == (2.0, False, AgeSource.FIRST_SEEN)


def test_trace_event_gives_exact_age_and_ordered_chain():
    tr = Tracker()
    tr.observe([(1, table((1, EST, 80, 5000)))], now=0.0)
    tr.add_events([ev(3.0, 80, 5000, EST, CW), ev(7.5, 80, 5000, CW, LA)])
    out = tr.observe([(1, table((1, LA, 80, 5000)))], now=10.0)
    assert [(t.old, t.new, t.t, t.source) for t in out] == [
        (EST, CW, 3.0, AgeSource.TRACE), (CW, LA, 7.5, AgeSource.TRACE)]
    assert [t.stayed for t in out] == [3.0, 4.5]
    assert age_of(tr, 1, table((1, LA, 80, 5000)), 10.0) == (2.5, False, AgeSource.TRACE)


def test_event_for_other_state_is_not_used():
    tr = Tracker()
    tr.observe([(1, table((1, EST, 80, 5000)))], now=0.0)
    tr.add_event(ev(3.0, 80, 5000, EST, CW))
    tr.observe([(1, table((1, LA, 80, 5000)))], now=10.0)  # CW -> LA event missed
    assert age_of(tr, 1, table((1, LA, 80, 5000)), 10.0)[2] == AgeSource.FIRST_SEEN


def test_late_event_corrects_the_sampled_change():
    tr = Tracker()
    tr.observe([(1, table((1, EST, 80, 5000)))], now=0.0)
    first = tr.observe([(1, table((1, CW, 80, 5000)))], now=10.0)
    assert first[0].source == AgeSource.FIRST_SEEN
    tr.add_event(ev(9.8, 80, 5000, EST, CW))  # read after the sample
    out = tr.observe([(1, table((1, CW, 80, 5000)))], now=20.0)
    assert [(t.old, t.new, t.t, t.corrects) for t in out] == [(EST, CW, 9.8, True)]
    assert out[0].stayed == pytest.approx(9.8)
    assert age_of(tr, 1, table((1, CW, 80, 5000)), 20.0) == (pytest.approx(10.2), False,
                                                             AgeSource.TRACE)


def test_cookie_reuse_with_other_tuple_is_a_new_socket():
    tr = Tracker()
    tr.observe([(1, table((5, CW, 80, 5000)))], now=0.0)
    out = tr.observe([(1, table((5, CW, 80, 6000)))], now=10.0)
    assert {(t.old, t.new) for t in out} == {(None, CW), (CW, None)}
    assert age_of(tr, 1, table((5, CW, 80, 6000)), 10.0) == (0.0, False, AgeSource.FIRST_SEEN)


def test_same_cookie_in_two_namespaces_are_two_sockets():
    tr = Tracker()
    tr.observe([(1, table((5, CW, 80, 5000))), (2, table((5, EST, 80, 5000)))], now=0.0)
    out = tr.observe([(1, table((5, CW, 80, 5000))), (2, table((5, CW, 80, 5000)))], now=10.0)
    assert [(t.netns, t.old, t.new) for t in out] == [(2, EST, CW)]
    assert age_of(tr, 1, table((5, CW, 80, 5000)), 10.0) == (10.0, True, AgeSource.FIRST_SEEN)
    assert age_of(tr, 2, table((5, CW, 80, 5000)), 10.0) == (0.0, False, AgeSource.FIRST_SEEN)


def test_events_of_a_tuple_in_two_namespaces_are_ambiguous():
    tr = Tracker()
    tr.observe([(1, table((5, EST, 80, 5000))), (2, table((6, EST, 80, 5000)))], now=0.0)
    tr.add_event(ev(4.0, 80, 5000, EST, CW))
    tr.observe([(1, table((5, CW, 80, 5000))), (2, table((6, CW, 80, 5000)))], now=10.0)
    for ns, c in ((1, 5), (2, 6)):
        assert age_of(tr, ns, table((c, CW, 80, 5000)), 10.0)[2] == AgeSource.FIRST_SEEN


def test_namespace_not_read_keeps_its_sockets():
    tr = Tracker()
    tr.observe([(1, table((5, CW, 80, 5000))), (2, table((6, CW, 81, 5000)))], now=0.0)
    assert tr.observe([(1, table((5, CW, 80, 5000)))], now=10.0) == []
    assert age_of(tr, 2, table((6, CW, 81, 5000)), 20.0) == (20.0, True, AgeSource.FIRST_SEEN)


def test_vanishing_and_reappearing_within_miss_limit_keeps_age():
    tr = Tracker(miss_limit=2)
    tr.observe([(1, table())], now=0.0)
    tr.observe([(1, table((5, CW, 80, 5000)))], now=10.0)
    assert tr.observe([(1, table())], now=20.0) == []  # missed once: not gone yet
    assert tr.observe([(1, table((5, CW, 80, 5000)))], now=30.0) == []
    assert age_of(tr, 1, table((5, CW, 80, 5000)), 30.0) == (20.0, False, AgeSource.FIRST_SEEN)


def test_vanishing_beyond_miss_limit_is_gone_and_reappearing_is_new():
    tr = Tracker(miss_limit=1)
    tr.observe([(1, table((5, CW, 80, 5000)))], now=0.0)
    out = tr.observe([(1, table())], now=10.0)
    assert [(t.old, t.new, t.stayed, t.stayed_at_least) for t in out] == [(CW, None, 10.0, True)]
    out = tr.observe([(1, table((5, CW, 80, 5000)))], now=20.0)
    assert [(t.old, t.new) for t in out] == [(None, CW)]


def test_destroy_event_dates_the_end():
    tr = Tracker()
    tr.observe([(1, table())], now=0.0)
    tr.observe([(1, table((5, LA, 80, 5000)))], now=10.0)
    tr.add_event(StateEvent(13.0, 2, ("127.0.0.1", 80), ("127.0.0.1", 5000), None, CLOSE, 5))
    out = tr.observe([(1, table())], now=20.0)
    assert [(t.old, t.new, t.t, t.source, t.stayed) for t in out] == [
        (LA, None, 13.0, AgeSource.TRACE, 3.0)]


def test_merge_precedence_trace_timer_first_seen_last_recv():
    nan = np.nan
    a = merge_ages(100.0,
                   since=np.array([95.0, 95.0, 50.0, 99.0, nan]),
                   since_code=np.array([TRACE, FIRST_SEEN, FIRST_SEEN, FIRST_SEEN, 0], np.int8),
                   since_at_least=np.array([False, False, True, True, False]),
                   timer=np.array([40.0, 40.0, nan, nan, nan]),
                   bound=np.array([nan, nan, 20.0, 20.0, nan]))
    assert a.seconds[:4].tolist() == [5.0, 40.0, 50.0, 20.0] and np.isnan(a.seconds[4])
    assert [a.source_of(i) for i in range(5)] == [
        AgeSource.TRACE, AgeSource.TIMER, AgeSource.FIRST_SEEN, AgeSource.LAST_RECV,
        AgeSource.UNKNOWN]
    assert a.at_least.tolist() == [False, False, True, True, False]


def test_ages_use_timer_of_timewait_sockets():
    tr = Tracker()
    tab = table((1, TW, 80, 5000))
    tab.rows["timer"], tab.rows["timewait"], tab.rows["expires_ms"] = 3, True, 45000
    tr.observe([(1, tab)], now=0.0)
    timer, bound = age_mod.age_arrays(tab, KernelContext())
    a = tr.ages(1, tab, 5.0, timer, bound)
    assert (float(a.seconds[0]), a.source_of(0)) == (15.0, AgeSource.TIMER)


def test_event_from_trace_converts_both_kinds():
    from tcplinger.collect.trace_events import parse_line
    e = event_from_trace(parse_line(
        "  x-1 [000] ..s2.   10.5: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP "
        "sport=80 dport=5000 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 "
        "daddrv6=::ffff:127.0.0.1 oldstate=TCP_ESTABLISHED newstate=TCP_CLOSE_WAIT"))
    assert (e.t, e.old, e.new, e.local, e.cookie) == (10.5, EST, CW, ("127.0.0.1", 80), None)
    d = event_from_trace(parse_line(
        "  x-1 [000] ..s2.   11.5: tcp_destroy_sock: family=AF_INET sport=80 dport=5000 "
        "saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 "
        "sock_cookie=1f"))
    assert (d.new, d.cookie) == (CLOSE, 31)


def test_observe_100k_sockets_is_fast():
    import time
    n = 100_000
    rows = empty(n)
    rows["cookie"] = np.random.default_rng(1).permutation(n) + 1
    rows["state"] = 1
    rows["sport"] = np.arange(n) % 60000
    tr = Tracker()
    tr.observe([(1, SocketTable(rows))], now=0.0)
    rows["state"][:100] = CW
    t0 = time.process_time()
    out = tr.observe([(1, SocketTable(rows))], now=1.0)
    assert len(out) == 100
    assert time.process_time() - t0 < 0.5


def test_forget_a_deleted_namespace():
    tr = Tracker()
    tr.observe([(1, table((5, CW, 80, 5000))), (2, table((6, CW, 81, 5000)))], now=0.0)
    tr.forget(2)
    assert set(tr.namespaces) == {1}
    tr.observe([(2, table((6, CW, 81, 5000)))], now=10.0)  # a new namespace with that inode
    assert age_of(tr, 2, table((6, CW, 81, 5000)), 10.0) == (0.0, True, AgeSource.FIRST_SEEN)
