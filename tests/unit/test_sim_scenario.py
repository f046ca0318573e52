"""Scenario documents: TOML files, --set paths, validation, presets."""

import math
from pathlib import Path

import pytest

from tcplinger.model.states import TcpState
from tcplinger.sim import presets
from tcplinger.model.params import ParamError
from tcplinger.model.units import BadValue, parse_duration
from tcplinger.sim.scenario import from_document, param_for, parse_toml, set_path, with_values
from tcplinger.sim.simulation import simulate
from tcplinger.sim.verdict import judge

DATA = Path(__file__).resolve().parents[1] / "data" / "sim"


def load(name):
    return from_document(parse_toml((DATA / name).read_text()))


def test_example_files_load_and_run():
    sc = load("orphan_behind_conntrack.toml")
    assert sc.horizon_s == 600 and sc.rtt_s == pytest.approx(0.02)
    assert sc.server.socket == {"so_keepalive": 1, "keepidle": 120.0, "keepintvl": 10.0,
                                "keepcnt": 3}
    tl = simulate(sc).timeline()
    assert tl.names() == ["client", "server", "conntrack"]
    sc = load("freebsd_dialup.toml")
    assert sc.client.host.vanish_at == 5.0 and sc.client.app.on_eof == "ignore"
    v = judge(sc)
    assert v.lingering["server"] == pytest.approx(675.0, abs=0.2)


def test_errors_name_the_problem():
    with pytest.raises(ParamError, match="tcp_fin_timout"):
        load("bad_unknown_key.toml")
    with pytest.raises(ParamError, match="not valid TOML"):
        load("bad_syntax.toml")
    for doc, text in [({"client": {"profile": "plan9"}}, "unknown profile"),
                      ({"client": {"behaviour": "sleepy"}}, "behaviour"),
                      ({"client": {"behaviour": "vanish"}}, "vanish_at"),
                      ({"client": {"behaviour": "shutdown-only"}}, "shutdown_at"),
                      ({"middlebox": [{"profile": "nope"}]}, "unknown"),
                      ({"middlebox": [{"profile": "ipfw", "name": "client"}]}, "taken"),
                      ({"drop": [{"flags": "Q"}]}, "flag"),
                      ({"horizon": "soon"}, "duration"),
                      ({"client": {"tcp_keepalive_probes": 0}}, r"at least 1\)"),
                      ({"extra": 1}, "top-level")]:
        with pytest.raises(ParamError, match=text):
            from_document(doc)


def test_set_path_reaches_parties_tables_and_middleboxes():
    doc = presets.build("seed-000-freebsd-ipfw")
    set_path(doc, "ipfw.dyn_keepalive", "0")
    set_path(doc, "server.keep_intvl", "30")
    set_path(doc, "client.app.close_at", "10")
    sc = from_document(doc)
    assert sc.middleboxes[0].params["dyn_keepalive"] == 0
    assert sc.server.params["keep_intvl"] == 30.0
    assert sc.client.app.close_at == 10.0
    with pytest.raises(ParamError):
        set_path(doc, "nobody.x", 1)
    assert with_values({}, {"rtt": "1s"}) == {"rtt": "1s"}


def test_param_for_resolves_documented_parameters():
    doc = presets.build("seed-000-freebsd-ipfw")
    assert param_for(doc, "server.msl").kind == "seconds"
    assert param_for(doc, "ipfw.refresh").kind == "choice"
    assert param_for(doc, "client.socket.so_keepalive").kind == "bool"
    assert param_for(doc, "client.host.vanish_at").kind == "seconds"
    assert param_for(doc, "horizon").kind == "seconds"
    assert param_for(doc, "client.nothing") is None


def test_durations():
    top = 86400
    assert parse_duration("1h30m", maximum=top) == 5400
    assert parse_duration("250ms", maximum=top) == 0.25
    assert parse_duration("inf", maximum=top, never=True) == math.inf
    assert parse_duration(7, maximum=top) == 7.0
    for bad in ("5 parsecs", "", "m5", True, "inf"):
        with pytest.raises(BadValue):
            parse_duration(bad, maximum=top)


def test_preset_knobs_are_checked():
    with pytest.raises(ParamError, match="unknown knob"):
        presets.build("linux-close-wait", {"keepidel": 3})
    with pytest.raises(ParamError, match="one of"):
        presets.build("linux-close-wait", {"peer": "asleep"})
    with pytest.raises(ParamError, match=r"keepcnt: invalid value 1000 \(at most 127\)"):
        presets.build("linux-close-wait", {"keepcnt": 1000})


def test_every_preset_runs_and_names_its_parties():
    names = [p.name for p in presets.all_presets()]
    for required in ("linux-orphan-fin-wait-2", "linux-half-close", "linux-close-wait",
                     "linux-fin-dropped", "linux-time-wait", "seed-000-freebsd-ipfw"):
        assert required in names
    for p in presets.all_presets():
        sc = from_document(presets.build(p.name))
        v = judge(sc)
        assert {"client", "server"} <= set(v.lifetimes), p.name
        for k in p.knobs:
            assert k.doc, (p.name, k.name)


def test_seed_000_held_a_day_with_keepalive_and_gone_without():
    v = judge(from_document(presets.build("seed-000-freebsd-ipfw", {"dyn_keepalive": 1})))
    assert "server" in v.held and v.lifetimes["server"]["FIN_WAIT2"] is None
    v = judge(from_document(presets.build("seed-000-freebsd-ipfw", {"dyn_keepalive": 0})))
    # ipfw forgets after dyn_ack_lifetime; FreeBSD after keepcnt*keepintvl (+ one re-check)
    assert v.forgotten["ipfw"] == pytest.approx(1 + 300)
    assert v.lifetimes["server"]["FIN_WAIT2"] == pytest.approx(600 + 75)


def test_seed_001_fin_wait_2_per_os():
    expect = {"linux": 60 + 1.026 + 0.05, "freebsd": 675, "windows": 120, "solaris": 675,
              "hpux": None, "bsd-legacy": None}
    for os, secs in expect.items():
        v = judge(from_document(presets.build("seed-001-fin-wait-2-per-os",
                                              {"server_os": os})))
        got = v.lifetimes["server"]["FIN_WAIT2"]
        if secs is None:
            assert got is None, os  # held at the horizon
        else:
            assert got == pytest.approx(secs, abs=0.1), os


def test_seed_002_user_exit_ends_fin_wait_2():
    v = judge(from_document(presets.build("seed-002-buggy-client",
                                          {"server_os": "bsd-legacy", "client_exit_at": 30})))
    assert v.lifetimes["server"]["FIN_WAIT2"] == pytest.approx(30 - 1.05 + 0.025)
    assert "TIME_WAIT" in v.lifetimes["server"]
    v = judge(from_document(presets.build("seed-002-buggy-client",
                                          {"server_os": "bsd-legacy", "client_exit_at": 30,
                                           "client_vanish_at": 10})))
    assert v.lifetimes["server"]["FIN_WAIT2"] is None  # the FIN never arrives


def test_seed_003_and_004_corrections():
    close = judge(from_document(presets.build("seed-003-orphan-vs-shutdown", {"mode": "close"})))
    shut = judge(from_document(presets.build("seed-003-orphan-vs-shutdown",
                                             {"mode": "shutdown"})))
    assert close.lingering["client"] == pytest.approx(61.03, abs=0.01)
    assert shut.lingering["client"] is None and "client" in shut.held
    cw = judge(from_document(presets.build("seed-004-close-wait", {"peer": "gone"})))
    assert cw.lifetimes["server"]["CLOSE_WAIT"] is None  # no SO_KEEPALIVE: unbounded
    cw = judge(from_document(presets.build("seed-004-close-wait",
                                           {"so_keepalive": 1, "peer": "silent"})))
    # 7200 + 9 * 75 = 7875 s, plus the timer wheel's slack on 2 h timers
    assert cw.lifetimes["server"]["CLOSE_WAIT"] == pytest.approx(7875, abs=140)
    assert TcpState.CLOSE_WAIT.name in cw.lifetimes["server"]
