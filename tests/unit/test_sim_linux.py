"""The linux profile on hand-checked timelines.

Arithmetic used below (HZ=250, so a jiffy is 4 ms; loopback RTT 0.1 ms):

* RTO = ceil((0.0001 + 0.2) * 250) = 51 jiffies.
* A timer of d jiffies fires (G + 1) / 2 jiffies late on average, G the
  timer-wheel granularity of its level: 1 below 63 jiffies, 8 below 504,
  64 below 4032, 512 below 32256 (tests/unit/test_sim_engine.py).
* So 1 s (250 j) -> 1.018 s, 5 s (1250 j) -> 5.130 s, 30 s / 60 s (7500 /
  15000 j) -> + 1.026 s.
"""

import pytest

from tcplinger.model.states import TcpState
from tcplinger.sim.scenario import from_document
from tcplinger.sim.simulation import simulate

FW1, FW2, TW, CW, LA = (TcpState.FIN_WAIT1, TcpState.FIN_WAIT2, TcpState.TIME_WAIT,
                        TcpState.CLOSE_WAIT, TcpState.LAST_ACK)
J = 1 / 250  # one jiffy


def run(client=None, server=None, drops=(), horizon=400.0, rtt=0.0001):
    doc = {"rtt": rtt, "horizon": horizon, "client": {"profile": "linux", **(client or {})},
           "server": {"profile": "linux", **(server or {})}, "drop": list(drops)}
    return simulate(from_document(doc)).timeline()


def teardown(party):
    """(state, minisock, duration) of the spans from FIN_WAIT1 on."""
    out, started = [], False
    for s in party.spans:
        started = started or s.state in (FW1, CW)
        if started:
            out.append((TcpState(s.state), s.minisock,
                        None if s.end_s is None else round(s.end_s - s.start_s, 4)))
    return out


ORPHAN = {"app": {"close_at": 1.0}}
NEVER = {"behaviour": "never-close"}


def test_orphan_fin_wait2_below_60s_is_a_minisocket_for_T():
    c = run({**ORPHAN, "tcp_fin_timeout": 30}, NEVER).party("client")
    # FIN_WAIT1 for one RTT, then a minisocket for 30 s + 256.5 jiffies
    assert teardown(c) == [(FW1, False, 0.0001), (FW2, True, round(30 + 256.5 * J, 4))]
    assert c.spans[-1].orphan


@pytest.mark.parametrize("T,phase", [(61, 1 + 4.5 * J), (62, 2 + 4.5 * J),
                                     (90, 30 + 256.5 * J)])
def test_orphan_fin_wait2_above_60s_is_full_then_mini_for_T_minus_60_each(T, phase):
    c = run({**ORPHAN, "tcp_fin_timeout": T}, NEVER).party("client")
    assert teardown(c) == [(FW1, False, 0.0001), (FW2, False, round(phase, 4)),
                           (FW2, True, round(phase, 4))]


def test_linger2_overrides_sysctl_and_is_capped_at_120s():
    c = run({**ORPHAN, "tcp_fin_timeout": 5, "socket": {"linger2": 200}}, NEVER).party("client")
    phase = 60 + 256.5 * J
    assert teardown(c)[1:] == [(FW2, False, round(phase, 4)), (FW2, True, round(phase, 4))]


def test_negative_linger2_resets_at_the_ack_of_the_fin():
    tl = run({**ORPHAN, "socket": {"linger2": -1}}, NEVER)
    assert teardown(tl.party("client")) == [(FW1, False, 0.0001)]
    assert tl.party("server").forgotten_at() == pytest.approx(1.00015)  # got the RST
    assert [p.flags for p in tl.packets][-1] == "R."


def test_fin_time_never_below_three_and_a_half_rto():
    c = run({**ORPHAN, "tcp_fin_timeout": 0.5}, NEVER).party("client")
    # 3.5 RTO = 4*51 - 51//2 = 179 jiffies, level 1: + 4.5
    assert teardown(c)[-1] == (FW2, True, round(183.5 * J, 4))


def test_shutdown_only_fin_wait2_never_times_out_then_close_starts_the_clock():
    c = run({"behaviour": "shutdown-only", "tcp_fin_timeout": 5,
             "app": {"shutdown_at": 1.0}}, NEVER).party("client")
    assert c.held_at_end() and c.spans[-1].state == FW2 and not c.spans[-1].orphan
    c = run({"behaviour": "shutdown-only", "tcp_fin_timeout": 5,
             "app": {"shutdown_at": 1.0, "close_at": 10.0}}, NEVER).party("client")
    assert teardown(c)[-1] == (FW2, True, round(5 + 32.5 * J, 4))
    assert c.spans[-1].start_s == 10.0


@pytest.mark.parametrize("T,spans", [
    # __tcp_close() on a FIN_WAIT2 socket (net/ipv4/tcp.c): tmo = tcp_fin_time();
    # "if (tmo > TCP_TIMEWAIT_LEN)" keepalive timer for tmo - 60, else
    # tcp_time_wait(sk, TCP_FIN_WAIT2, tmo). T = 60 is the else branch: one
    # minisocket for 60 s (15000 jiffies, level 3: + 256.5 jiffies).
    (60, [(FW2, True, round(60 + 256.5 * J, 4))]),
    (61, [(FW2, False, round(1 + 4.5 * J, 4)), (FW2, True, round(1 + 4.5 * J, 4))]),
    (59, [(FW2, True, round(59 + 256.5 * J, 4))]),
])
def test_shutdown_then_close_at_and_around_60s(T, spans):
    tl = run({"behaviour": "shutdown-only", "tcp_fin_timeout": T,
              "app": {"shutdown_at": 1.0, "close_at": 10.0}}, NEVER)
    c = tl.party("client")
    closed = [(TcpState(s.state), s.minisock, round(s.end_s - s.start_s, 4))
              for s in c.spans if s.start_s >= 10.0]
    assert closed == spans
    assert not [p for p in tl.packets if p.src == "client" and "R" in p.flags]  # no RST


def test_orphan_fin_wait2_at_exactly_60s_is_one_minisocket():
    """tcp_rcv_state_process(), FIN_WAIT1 -> FIN_WAIT2 of an orphan: the
    same "tmo > TCP_TIMEWAIT_LEN" test; T = 60 is one 60 s minisocket."""
    c = run({**ORPHAN, "tcp_fin_timeout": 60}, NEVER).party("client")
    assert teardown(c) == [(FW1, False, 0.0001), (FW2, True, round(60 + 256.5 * J, 4))]


def test_time_wait_is_60s_and_no_bucket_means_no_time_wait():
    tl = run(ORPHAN, {"app": {"on_eof": "close"}})
    assert teardown(tl.party("client"))[-1] == (TW, True, round(60 + 256.5 * J, 4))
    tl = run({**ORPHAN, "tcp_max_tw_buckets": 3, "tw_in_use": 3}, {"app": {"on_eof": "close"}})
    c = tl.party("client")
    assert TW not in [s.state for s in c.spans]
    assert any(n.key == "sim.note.tw_overflow" for n in tl.notes)


def test_orphan_fin_wait2_needs_a_bucket_too():
    tl = run({**ORPHAN, "tcp_max_tw_buckets": 0}, NEVER)
    assert teardown(tl.party("client")) == [(FW1, False, 0.0001)]
    assert tl.party("server").held_at_end()  # no RST was sent


def test_fin_wait2_minisocket_moves_to_time_wait_on_fin():
    tl = run({**ORPHAN, "tcp_fin_timeout": 30}, {"behaviour": "never-close",
                                                 "app": {"close_at": 5.0}})
    fw2, tw = teardown(tl.party("client"))[-2:]
    assert fw2[:2] == (FW2, True) and fw2[2] == pytest.approx(5.00005 - 1.0001, abs=1e-3)
    assert tw == (TW, True, round(60 + 256.5 * J, 4))


def test_retransmitted_fin_restarts_time_wait():
    # the client's last ACK is lost once: the server retransmits its FIN
    # (after a loss probe, 52 jiffies) and the TIME_WAIT starts over
    tl = run(ORPHAN, {"app": {"on_eof": "close"}},
             drops=[{"sender": "client", "flags": "A", "from_s": 1.00005, "count": 1}])
    c = tl.party("client")
    tw = c.spans[-1]
    assert tw.state == TW
    # the server's FIN went out 0.05 ms before tw.start_s; its loss probe
    # 52 jiffies later arrives 0.05 ms after that
    restart = tw.start_s + 52 * J
    assert tw.end_s == pytest.approx(restart + 60 + 256.5 * J, abs=1e-6)


@pytest.mark.parametrize("n,alive_for", [(1, 1.676), (2, 3.326), (3, 6.720)])
def test_dropped_fin_orphan_retries(n, alive_for):
    tl = run({**ORPHAN, "tcp_orphan_retries": n}, NEVER, drops=[{"sender": "client",
                                                                  "flags": "F"}])
    c = tl.party("client")
    assert teardown(c) == [(FW1, False, alive_for)]
    tags = [p.tag for p in tl.packets if p.flags == "F."]
    assert tags == ["", "loss-probe"] + ["retransmission"] * (n + 1)
    assert all(p.dropped_by == "path" for p in tl.packets if p.flags == "F.")
    assert "R" not in "".join(p.flags for p in tl.packets)  # gives up silently


def test_orphan_retries_zero_means_eight():
    a = run({**ORPHAN, "tcp_orphan_retries": 0}, NEVER, drops=[{"sender": "client",
                                                                 "flags": "F"}])
    b = run({**ORPHAN, "tcp_orphan_retries": 8}, NEVER, drops=[{"sender": "client",
                                                                 "flags": "F"}])
    assert a.party("client").forgotten_at() == b.party("client").forgotten_at()
    assert a.party("client").forgotten_at() == pytest.approx(107.952)


def test_owned_fin_wait1_uses_retries2():
    tl = run({"behaviour": "shutdown-only", "tcp_retries2": 3, "tcp_orphan_retries": 1,
              "app": {"shutdown_at": 1.0}}, NEVER, drops=[{"sender": "client", "flags": "F"}])
    assert teardown(tl.party("client")) == [(FW1, False, 6.720)]


KEEP = {"so_keepalive": 1, "keepidle": 2, "keepintvl": 1, "keepcnt": 3}


def test_close_wait_with_keepalive_and_silent_peer():
    tl = run({"behaviour": "shutdown-only", "app": {"shutdown_at": 1.0}},
             {"behaviour": "never-close", "socket": KEEP},
             drops=[{"sender": "server", "from_s": 1.5}])
    s = tl.party("server")
    # idle 2 s from the FIN, then 3 probes 1 s apart, then RST
    assert s.forgotten_at() - 1.00005 == pytest.approx(5.074, abs=0.001)
    probes = [p for p in tl.packets if p.tag == "keepalive"]
    assert len(probes) == 3 and all(p.dropped_by == "path" for p in probes)
    assert tl.packets[-1].tag == "keepalive-abort"


def test_close_wait_with_keepalive_and_gone_peer_ends_at_first_probe():
    tl = run({"app": {"close_at": 1.0}, "socket": {"linger2": 1}},
             {"behaviour": "never-close", "socket": KEEP})
    s = tl.party("server")
    assert s.forgotten_at() - 1.00005 == pytest.approx(2.02, abs=0.001)
    assert [p.flags for p in tl.packets if p.src == "client"][-1] == "R"


def test_close_wait_with_keepalive_and_live_peer_lasts():
    tl = run({"behaviour": "shutdown-only", "app": {"shutdown_at": 1.0}},
             {"behaviour": "never-close", "socket": KEEP}, horizon=60)
    assert tl.party("server").held_at_end()
    answered = [p for p in tl.packets if p.src == "client" and p.t_s > 2]
    assert len(answered) >= 20  # every probe gets an ACK


def test_close_wait_without_keepalive_is_unbounded():
    tl = run({"app": {"close_at": 1.0}, "socket": {"linger2": 1}}, NEVER, horizon=86400)
    assert tl.party("server").held_at_end()
    assert tl.party("server").spans[-1].state == CW


def test_data_to_an_orphan_resets_it():
    tl = run({**ORPHAN, "tcp_fin_timeout": 30}, {"behaviour": "never-close",
                                                 "app": {"send_at": 3.0}})
    assert tl.party("client").forgotten_at() == pytest.approx(3.00005)
    assert tl.party("server").forgotten_at() == pytest.approx(3.0001)


def test_unread_data_makes_close_send_rst():
    tl = run({"app": {"close_at": 2.0, "reads": 0}}, {"app": {"send_at": 1.0}})
    assert [p.flags for p in tl.packets if p.src == "client"][-1] == "R."
    assert tl.party("server").forgotten_at() == pytest.approx(2.00005)
    assert teardown(tl.party("client")) == []
