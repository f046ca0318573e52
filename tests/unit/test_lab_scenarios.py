"""Scenarios as data: every one is complete (catalog texts, parameters
within their ranges, checks built from its defaults), parameters and
sysctls are set as `--set` says, and the checks judge what they claim."""

import math
from pathlib import Path

import pytest

from tcplinger.i18n import Messages, catalog
from tcplinger.lab import middlebox
from tcplinger.lab.checks import Diagnosed, Fact, Held, Never, Observed, Reaches, Sent, evaluate
from tcplinger.diagnose.finding import Confidence, Finding, Severity, Text
from tcplinger.app.lab_diagnosis import RunFinding
from tcplinger.lab.merge import SocketTimeline
from tcplinger.lab.params import parse_sets, resolve_sysctl
from tcplinger.model.params import ParamError
from tcplinger.lab.slack import Tolerance
from tcplinger.lab.scenario import prepare
from tcplinger.lab.scenarios import ALL, get
from tcplinger.lab.scenarios._common import model_timeout, retry_bounds
from tcplinger.lab.scenarios.orphan_fin_wait2 import phases
from tcplinger.lab.slack import granule_s
from tcplinger.model.socket import NetnsRef
from tcplinger.model.states import parse_state
from tcplinger.model.timeline import Packet, StateSpan

DATA = Path(__file__).resolve().parents[1] / "data" / "lab"
TOL = Tolerance(0.02, 250)
NAMES = {"orphan-fin-wait-2", "half-close-fin-wait-2", "close-wait-leak",
         "buggy-client-keepalive", "linger-abort", "time-wait-overflow", "port-exhaustion",
         "fin-dropped", "conntrack-expiry", "firewall-keepalive"}


def test_the_ten_scenarios():
    assert {s.name for s in ALL} == NAMES


@pytest.mark.parametrize("scenario", ALL, ids=lambda s: s.name)
def test_scenario_is_complete(scenario):
    en = catalog("en")
    assert f"lab.scenario.{scenario.name}" in en and f"lab.expect.{scenario.name}" in en
    assert scenario.seeds and all(s in ("000", "001", "002", "003", "004")
                                  for s in scenario.seeds)
    assert "end" in scenario.moments
    for p in scenario.params:
        assert f"lab.param.{scenario.name}.{p.name}" in en or f"lab.param.{p.name}" in en
        assert p.parse(str(p.default)) == p.default, p.name
        if p.sysctl:
            assert p.roles and resolve_sysctl(p.sysctl) is not None
    defaults = prepare(scenario, ()).params
    horizon = scenario.horizon(defaults)
    assert 0 < horizon <= 45  # keeps the privileged suite short
    checks = scenario.checks(defaults, TOL)
    assert checks
    for c in checks:
        if hasattr(c, "state"):
            parse_state(c.state)


def test_set_parameters_and_sysctls():
    sc = get("orphan-fin-wait-2")
    prep = prepare(sc, parse_sets(["tcp_fin_timeout=7", "linger2=3"]))
    assert prep.params == {"tcp_fin_timeout": 7, "linger2": 3}
    assert prep.sysctls == {"client": {"net.ipv4.tcp_fin_timeout": 7}}
    prep = prepare(sc, [("net.ipv4.tcp_fin_timeout", "9"), ("tcp_keepalive_time", "5")])
    assert prep.params["tcp_fin_timeout"] == 9
    assert prep.sysctls == {"client": {"net.ipv4.tcp_fin_timeout": 9,
                                       "net.ipv4.tcp_keepalive_time": 5},
                            "server": {"net.ipv4.tcp_keepalive_time": 5}}
    assert prep.given == {"tcp_fin_timeout": 9, "net.ipv4.tcp_keepalive_time": 5}
    ct = prepare(get("conntrack-expiry"), [("nf_conntrack_tcp_timeout_established", "100")])
    assert ct.sysctls["router"]["net.netfilter.nf_conntrack_tcp_timeout_established"] == 100


@pytest.mark.parametrize("pair,why", [
    (("nope", "1"), "no such parameter"),
    (("tcp_fin_timeout", "3601"), r"tcp_fin_timeout: invalid value '3601' \(at most 1h\)"),
    (("linger2", "x"), "linger2: invalid duration 'x'"),
    (("net.ipv6.tcp_fin_timeout", "1"), "no such parameter"),
    (("tcp_tw_reuse", "3"), r"tcp_tw_reuse: invalid value '3' \(at most 2\)"),
])
def test_bad_settings(pair, why):
    with pytest.raises(ParamError, match=why):
        prepare(get("orphan-fin-wait-2") if pair[0] != "tcp_tw_reuse" else
                get("port-exhaustion"), [pair])


def test_choices_bools_and_ranges():
    pe = get("port-exhaustion")
    assert prepare(pe, [("ip_local_port_range", "40000-40009")]).params[
        "ip_local_port_range"] == "40000 40009"
    with pytest.raises(ParamError):
        prepare(pe, [("ip_local_port_range", "40009 40000")])
    cw = get("close-wait-leak")
    assert prepare(cw, [("keepalive", "off"), ("peer", "silent")]).params["keepalive"] == 0
    with pytest.raises(ParamError, match="one of"):
        prepare(cw, [("peer", "asleep")])
    with pytest.raises(ParamError):
        parse_sets(["novalue"])


def test_kernel_models():
    assert model_timeout(15) == pytest.approx(924.6)
    assert retry_bounds(1) == (1.6, 2.0, 4, 4)  # what record_pcap.py captured: 4 FINs
    assert phases({"linger2": 0, "tcp_fin_timeout": 90}) == (30.0, 30.0)
    assert phases({"linger2": 200, "tcp_fin_timeout": 5}) == (60.0, 60.0)  # capped at 120
    assert phases({"linger2": 0, "tcp_fin_timeout": 0}) == (0.0, pytest.approx(0.7))
    assert granule_s(60, 250) == pytest.approx(2.048) and granule_s(0.1, 250) == 0.004


def _finding(rule: str) -> Finding:
    """A diagnose Finding with nothing but its rule (what the checks read)."""
    return Finding(rule, Severity.INFO, NetnsRef(4026532000, "tl-x"), 1, Text("t"), {}, (), (),
                   (), (), Confidence.HIGH, Text("r"))


def _obs(**kw):
    client = SocketTimeline("client", ("a", 1), ("b", 2), [
        StateSpan(1, 0.0, 1.0), StateSpan(4, 1.0, 1.2, orphan=True),
        StateSpan(5, 1.2, 6.3, orphan=True, minisock=True)])
    server = SocketTimeline("server", ("b", 2), ("a", 1), [StateSpan(1, 0.0, 1.0),
                                                           StateSpan(8, 1.0, None)])
    base = dict(sockets=[client, server], horizon_s=9.0,
                packets=[Packet(1.0, "client", "server", "F.", 0),
                         Packet(1.3, "client", "server", "F.", 0, "retransmission", "nftables")],
                findings=[RunFinding("x", 2.0, "server", _finding("close-wait-leak"), "t")],
                facts={"n": 3})
    base.update(kw)
    return Observed(**base)


def test_checks_judge():
    r = _obs()
    res = {c.id: (c.ok, c.measured) for c in evaluate([
        Held("client", "FIN_WAIT2", *TOL.about(5.0)),
        Held("client", "FIN_WAIT2", 5.2, 6.0),
        Held("server", "CLOSE_WAIT", 7.0, still_held=True),
        Held("server", "ESTABLISHED", 0, still_held=True),
        Never("client", "TIME_WAIT"), Never("server", "CLOSE_WAIT"),
        Reaches("client", "FIN_WAIT1", 1, exactly=True),
        Sent("client", "F", least=1, most=1, dropped=True),
        Sent("client", "F", least=0, most=0, dropped=False, tag="retransmission"),
        Diagnosed("close-wait-leak", "server"), Diagnosed("close-wait-leak", "client"),
        Fact("n", ">=", 3), Fact("missing", "==", 1), Fact("n", "between", between=(4, 5)),
    ], r)}
    assert res == {
        "held:client:FIN_WAIT2": (False, 5.1),  # the second Held of the same id wins
        "held:server:CLOSE_WAIT": (True, 8.0),
        "held:server:ESTABLISHED": (False, 1.0),
        "never:client:TIME_WAIT": (True, 0), "never:server:CLOSE_WAIT": (False, 1),
        "reaches:client:FIN_WAIT1": (True, 1),
        "sent:client:F:dropped": (True, 1),
        "sent:client:F:retransmission:passed": (True, 0),
        "diagnosed:close-wait-leak:server:*": (True, ["info"]),
        "diagnosed:close-wait-leak:client:*": (False, []),
        "fact:n": (False, 3), "fact:missing": (False, None),
    }
    assert Held("client", "FIN_WAIT2", *TOL.about(5.0)).evaluate(r).ok


def test_check_texts_render_in_both_languages():
    r = _obs()
    for lang in ("en", "zh"):
        msg = Messages(lang)
        for c in evaluate([Held("client", "FIN_WAIT2", 1, 2), Never("client", "TIME_WAIT"),
                           Sent("client", "F"), Diagnosed("x"), Fact("n", "==", 3),
                           Fact("n", "between", between=(1, 2)),
                           Reaches("client", "FIN_WAIT1"),
                           Held("server", "CLOSE_WAIT", 1, still_held=True)], r):
            assert c.to_json(msg)["text"]


def test_conntrack_events_recorded_on_6_18():
    lines = (DATA / "conntrack_events.txt").read_text().splitlines()
    events = [middlebox.parse_conntrack_event(x) for x in lines]
    assert all(e is not None for e in events)
    assert [e.state for e in events] == ["SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
                                         "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT"]
    assert [e.timeout for e in events] == [120, 60, 432000, 120, 60, 30, 120]
    party, notes = middlebox.conntrack_party(events, t0=0.0, offset=events[0].t)
    assert [s.label for s in party.spans] == [e.state for e in events]
    assert party.spans[-1].end_s is None and len(notes) == 7
