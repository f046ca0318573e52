"""lab/merge.py: observations of real runs (tests/data/lab/record.py) give
the timelines recorded with them, and the merge rules hold on hand-made
cases."""

import json
from pathlib import Path

import pytest

from tcplinger.lab.merge import Action, SockView, Transition, View, merge
from tcplinger.model.states import TcpState as S

DATA = Path(__file__).resolve().parents[1] / "data" / "lab"


def _key(k):
    return None if k is None else (tuple(k[0]), tuple(k[1]))


def load(name):
    d = json.loads((DATA / f"{name}.json").read_text())
    trs = [Transition(x["t"], x["side"], tuple(x["local"]), tuple(x["remote"]), x["old"],
                      x["new"]) for x in d["transitions"]]
    views = [View(v["side"], v["t_first"], v["t_last"],
                  {_key(s["key"]): SockView(s["state"], s["timewait"], s["orphan"], s["cookie"],
                                            s["retrans"], s["expires_ms"]) for s in v["socks"]})
             for v in d["views"]]
    acts = [Action(a["t"], a["side"], _key(a["key"]), a["what"]) for a in d["actions"]]
    return d, trs, views, acts


@pytest.mark.parametrize("name", ["orphan_fin_wait2", "half_close", "proper_close", "tw_reuse"])
def test_recorded_runs_merge_as_recorded(name):
    d, trs, views, acts = load(name)
    got = [s.to_json() for s in merge(trs, views, acts, t0=d["t0"])]
    assert got == d["expected"]


def test_orphan_fin_wait2_is_one_minisock_span():
    d, trs, views, acts = load("orphan_fin_wait2")
    client = [s for s in merge(trs, views, acts, t0=d["t0"]) if s.side == "client"][0]
    last = client.spans[-1]
    assert last.state == S.FIN_WAIT2 and last.minisock and last.orphan
    assert 1.95 <= last.end_s - last.start_s <= 2.3  # tcp_fin_timeout=2


def test_half_close_splits_at_exit():
    d, trs, views, acts = load("half_close")
    client = [s for s in merge(trs, views, acts, t0=d["t0"]) if s.side == "client"][0]
    owned, orphan = client.spans[-2:]
    assert (owned.state, owned.orphan, owned.minisock) == (S.FIN_WAIT2, False, False)
    assert (orphan.state, orphan.orphan, orphan.minisock) == (S.FIN_WAIT2, True, True)
    exit_t = [a.t for a in acts if a.what == "exit"][0] - d["t0"]
    assert abs(owned.end_s - exit_t) < 0.01


def test_reused_tuples_end_the_previous_time_wait():
    d, trs, views, acts = load("tw_reuse")
    socks = [s for s in merge(trs, views, acts, t0=d["t0"]) if s.side == "client"]
    by_tuple = {}
    for s in socks:
        by_tuple.setdefault(s.local, []).append(s)
    reused = [v for v in by_tuple.values() if len(v) > 1]
    assert reused
    for lives in reused:
        for a, b in zip(lives, lives[1:]):
            assert a.spans[-1].state == S.TIME_WAIT
            assert a.spans[-1].end_s == b.spans[0].start_s  # taken over, not expired


A, B = ("10.0.0.1", 40000), ("10.0.0.2", 80)


def test_poll_only_timeline():
    views = [View("client", 0.0, 0.0, {}),
             View("client", 0.1, 0.9, {(A, B): SockView(1, False, False, 7)}),
             View("client", 1.0, 1.0, {(A, B): SockView(4, False, True, 7)}),
             View("client", 1.1, 3.0, {(A, B): SockView(5, True, True, 8)}),
             View("client", 3.1, 3.5, {(A, B): SockView(6, True, True, 8)}),
             View("client", 3.6, 4.0, {})]
    [tl] = merge([], views, [], t0=0.0)
    got = [(s.state, round(s.start_s, 3), s.end_s and round(s.end_s, 3), s.orphan, s.minisock)
           for s in tl.spans]
    assert got == [(1, 0.05, 0.95, False, False), (4, 0.95, 1.05, True, False),
                   (5, 1.05, 3.05, True, True), (6, 3.05, 3.55, True, True)]


def test_failed_connect_is_reported_not_drawn():
    trs = [Transition(1.0, "client", ("10.0.0.1", 0), B, 7, 2),
           Transition(1.0001, "client", ("10.0.0.1", 0), B, 2, 7)]
    failed = []
    assert merge(trs, [], [], t0=0.5, failed=failed) == []
    assert len(failed) == 1 and failed[0].t == 0.5 and failed[0].remote == B


def test_close_orphans_from_the_state_it_caused():
    """close() is timed before the call; the FIN_WAIT1 it causes is an
    orphan from its first moment even when polls see it later."""
    trs = [Transition(0.1, "client", A, B, 2, 1), Transition(1.00, "client", A, B, 1, 4)]
    views = [View("client", 0.5, 0.98, {(A, B): SockView(1, False, False)}),
             View("client", 1.02, 2.0, {(A, B): SockView(4, False, True)})]
    acts = [Action(0.999, "client", (A, B), "close")]
    [tl] = merge(trs, views, acts, t0=0.0)
    assert [(s.state, s.orphan) for s in tl.spans][-2:] == [(1, False), (4, True)]


def test_owner_exit_without_state_change_splits_the_span():
    """A full FIN_WAIT2 (tcp_fin_timeout > 60) whose owner exits stays a
    full socket: no trace event, the polls show the orphaning."""
    trs = [Transition(0.1, "client", A, B, 4, 5)]
    views = [View("client", 0.2, 2.0, {(A, B): SockView(5, False, False)}),
             View("client", 2.1, 3.0, {(A, B): SockView(5, False, True)})]
    acts = [Action(2.05, "client", None, "exit")]
    [tl] = merge(trs, views, acts, t0=0.0)
    assert [(s.state, s.start_s, s.end_s, s.orphan) for s in tl.spans] == \
        [(5, 0.1, 2.05, False), (5, 2.05, None, True)]


# ---- polls under load: a dump takes time, a minisocket has a timer -------------------

def _tw(first=(1.31, 1.32), later=()):
    """One client connection closed first: the trace sees the handover to a
    TIME_WAIT minisocket at 1.30; the first dump listing the minisocket
    (with 57 s left on its timer) started and ended at ``first``."""
    trs = [Transition(1.0, "client", A, B, 2, 1), Transition(1.2, "client", A, B, 1, 4),
           Transition(1.3, "client", A, B, 4, 5), Transition(1.3, "client", A, B, 5, 7)]
    views = [View("client", 0.9, 1.1, {(A, B): SockView(1, False, False, 7)}, 0.91),
             View("client", first[0], 3.0, {(A, B): SockView(6, True, True, 8, 0, 57000)},
                  first[1]), *later]
    return merge(trs, views, [Action(1.19, "client", (A, B), "close")], t0=0.0)


def test_a_slow_dump_continues_the_socket_the_trace_saw_hand_over():
    """Seen under load (port-exhaustion, dumps of 0.4 s): the dump that
    first lists the TIME_WAIT started before the handover and read the
    socket after it. The minisocket continues the traced socket (one
    4-tuple, one socket: reused_tuples stays 0) instead of starting a
    second one before it."""
    [tl] = _tw(first=(1.25, 1.60))
    assert (tl.spans[-1].state, tl.spans[-1].start_s, tl.spans[-1].minisock) == (6, 1.3, True)


def test_a_minisocket_does_not_end_before_its_timer():
    """Its expiry is seen by polls only; the last dump listing it (started
    at 3.0) had 57 s left on its timer, and a wheel timer never fires
    early: the end lies between 60.0 and the next dump's end, 61.0, not
    at the middle of the poll window (31.05)."""
    [tl] = _tw(later=[View("client", 59.1, 59.1, {}, 61.0)])
    assert tl.spans[-1].end_s == pytest.approx((60.0 + 61.0) / 2)


def test_a_connection_in_the_accept_queue_is_not_an_orphan():
    """Inode 0 before accept(): no file yet, nobody closed it."""
    trs = [Transition(0.10, "server", B, A, 12, 3), Transition(0.11, "server", B, A, 3, 1)]
    views = [View("server", 0.105, 0.12, {(B, A): SockView(1, False, True, 5)}, 0.115),
             View("server", 0.14, 1.0, {(B, A): SockView(1, False, False, 5)}, 0.145)]
    [tl] = merge(trs, views, [], t0=0.0)
    assert [(s.state, s.orphan) for s in tl.spans] == [(3, False), (1, False)]
