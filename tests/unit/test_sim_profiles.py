"""Non-Linux endpoint profiles on hand-checked timelines.

The server closes at 1.0 s; over a 50 ms RTT its FIN is acknowledged at
1.05 s, when FIN_WAIT_2 starts. The client never sends its FIN ("buggy":
it stays in CLOSE_WAIT and answers whatever it gets; "vanish": nothing
reaches it after 2 s).
"""

import pytest

from tcplinger.model.states import TcpState
from tcplinger.sim import profiles
from tcplinger.sim.scenario import from_document
from tcplinger.sim.simulation import simulate

FW2 = TcpState.FIN_WAIT2


def run(os, client="buggy", server=None, horizon=3600.0, server_app=None):
    c = {"profile": "linux", "behaviour": "never-fin"}
    if client == "vanish":
        c["host"] = {"vanish_at": 2.0}
    s = {"profile": os, "app": server_app or {"close_at": 1.0}, **(server or {})}
    return simulate(from_document({"rtt": 0.05, "horizon": horizon, "client": c,
                                   "server": s})).timeline()


def fw2_end(tl):
    spans = [s for s in tl.party("server").spans if s.state == FW2]
    return spans[-1].end_s


def test_every_profile_documents_its_parameters():
    for name in profiles.names():
        prof = profiles.get(name)
        for p in prof.params + prof.socket:
            assert p.doc and p.source, (name, p.name)


@pytest.mark.parametrize("client", ["buggy", "vanish"])
def test_freebsd_orphan_fin_wait2_ends_after_maxidle_plus_a_recheck(client):
    # 2MSL timer = keepcnt * keepintvl = 600 s; idle == 600 at the firing is
    # not "more than" 600, so it re-arms for keepintvl (75 s) and closes then
    assert fw2_end(run("freebsd", client)) == pytest.approx(1.05 + 675)


def test_freebsd_fast_recycle_closes_after_finwait2_timeout():
    tl = run("freebsd", server={"fast_finwait2_recycle": 1, "finwait2_timeout": 30})
    assert fw2_end(tl) == pytest.approx(1.05 + 30)


def test_freebsd_any_segment_keeps_fin_wait2_alive():
    # the client's keepalive probes (every 500 s idle) are out of window for
    # the server, yet refresh its t_rcvtime: idle never exceeds 600 s
    tl = simulate(from_document({
        "rtt": 0.05, "horizon": 3600,
        "client": {"behaviour": "never-fin", "socket": {"so_keepalive": 1, "keepidle": 500}},
        "server": {"profile": "freebsd", "app": {"close_at": 1.0}}})).timeline()
    assert tl.party("server").held_at_end()
    assert len([p for p in tl.packets if p.tag == "keepalive"]) >= 6


def test_freebsd_data_after_close_resets():
    tl = simulate(from_document({
        "rtt": 0.05, "horizon": 2000,
        "client": {"behaviour": "never-fin", "app": {"send_at": 500.0}},
        "server": {"profile": "freebsd", "app": {"close_at": 1.0}}})).timeline()
    assert fw2_end(tl) == pytest.approx(500.025, abs=1e-3)
    assert tl.packets[-1].flags == "R."


def test_freebsd_shutdown_only_fin_wait2_has_no_timer():
    tl = run("freebsd", server_app={"shutdown_at": 1.0})
    assert tl.party("server").held_at_end()


def test_freebsd_close_wait_dropped_by_always_keepalive():
    tl = simulate(from_document({
        "rtt": 0.05, "horizon": 10000,
        "client": {"profile": "linux", "app": {"shutdown_at": 1.0},
                   "behaviour": "shutdown-only", "host": {"vanish_at": 2.0}},
        "server": {"profile": "freebsd", "behaviour": "never-close"}})).timeline()
    s = tl.party("server")
    # idle since the FIN (1.025 s) reaches keepidle + keepcnt * keepintvl
    assert s.forgotten_at() == pytest.approx(1.025 + 7200 + 8 * 75, abs=1.0)
    assert len([p for p in tl.packets if p.tag == "keepalive"]) == 8


def test_bsd_legacy_has_no_fin_wait2_timeout():
    tl = run("bsd-legacy", "vanish", horizon=86400)
    assert tl.party("server").held_at_end()
    assert tl.party("server").spans[-1].state == FW2


def test_windows_forces_fin_wait2_closed_even_after_shutdown():
    assert fw2_end(run("windows")) == pytest.approx(1.05 + 120)
    assert fw2_end(run("windows", server_app={"shutdown_at": 1.0})) == pytest.approx(1.05 + 120)
    tl = run("windows", server={"TcpFinWait2Delay": 240})
    assert fw2_end(tl) == pytest.approx(1.05 + 240)


def test_windows_time_wait_is_tcp_timed_wait_delay():
    tl = simulate(from_document({"rtt": 0.05, "horizon": 1000,
                                 "client": {"profile": "windows", "app": {"close_at": 1.0},
                                            "TcpTimedWaitDelay": 30},
                                 "server": {"profile": "linux"}})).timeline()
    tw = tl.party("client").spans[-1]
    assert tw.state == TcpState.TIME_WAIT and tw.duration() == pytest.approx(30)


def test_solaris_flushes_only_detached_fin_wait2():
    assert fw2_end(run("solaris")) == pytest.approx(1.05 + 675)
    assert run("solaris", server_app={"shutdown_at": 1.0}).party("server").held_at_end()
    # closed at 100 s: flushed at the next firing, 675 s after FIN_WAIT_2 began
    tl = run("solaris", server_app={"shutdown_at": 1.0, "close_at": 100.0})
    assert fw2_end(tl) == pytest.approx(1.05 + 675)


def test_hpux_detached_fin_wait2_lives_while_probes_are_answered():
    tl = run("hpux", "buggy")
    assert tl.party("server").held_at_end()
    probes = [p for p in tl.packets if p.tag == "keepalive"]
    assert probes[0].t_s == pytest.approx(1.05 + 120)
    tl = run("hpux", "vanish")
    # unanswered: deleted (RST) once idle for detached interval + abort interval
    assert fw2_end(tl) == pytest.approx(1.05 + 120 + 600)
    assert tl.packets[-1].flags == "R."


def test_hpux_fin_wait_2_timeout_kills_with_reset():
    tl = run("hpux", server={"tcp_fin_wait_2_timeout": 60})
    assert fw2_end(tl) == pytest.approx(1.05 + 60)
    assert tl.packets[-1].tag == "fin-wait-2-timeout"
