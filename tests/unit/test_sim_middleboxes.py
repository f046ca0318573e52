"""Middleboxes: ipfw, conntrack, timeout tables (pf, cloud, generic)."""

import pytest

from tcplinger.model.states import TcpState
from tcplinger.sim import middleboxes, presets
from tcplinger.sim.scenario import from_document
from tcplinger.sim.simulation import simulate
from tcplinger.sim.verdict import judge


def preset(name, **knobs):
    return simulate(from_document(presets.build(name, knobs))).timeline()


def test_every_middlebox_documents_its_parameters():
    for name in middleboxes.names():
        prof = middleboxes.get(name)
        for p in prof.params:
            assert p.doc and p.source, (name, p.name)


# ---- ipfw (seed 000: FreeBSD server closes at 1 s, client vanishes at 2 s) ----

def test_ipfw_of_2003_refreshes_on_the_servers_answer_forever():
    tl = preset("seed-000-freebsd-ipfw")  # dyn_keepalive=1, refresh=any, 24 h
    assert tl.party("server").held_at_end()
    assert tl.party("server").spans[-1].state == TcpState.FIN_WAIT2
    assert tl.party("ipfw").held_at_end()
    ka = [p for p in tl.packets if p.tag == "forged-keepalive"]
    # a pair every 285 s (the state expires at +300, keepalives start 20 s
    # before, on the 5 s grid); the client's copy is lost, the server's not
    assert [round(p.t_s) for p in ka[:4]] == [285, 285, 570, 570]
    assert {p.dst for p in ka} == {"client", "server"}
    assert all(p.dropped_by == "client" for p in ka if p.dst == "client")
    assert all(p.dropped_by is None for p in ka if p.dst == "server")
    assert all(p.src == "ipfw" for p in ka)
    assert len(ka) == 2 * (86400 // 285)


def test_ipfw_without_keepalive_expires_and_freebsd_ends_fin_wait2():
    tl = preset("seed-000-freebsd-ipfw", dyn_keepalive=0)
    # the last refresh is the client's ACK of the FIN (uptime 1): 1 + 300
    assert tl.party("ipfw").forgotten_at() == pytest.approx(301.0)
    # FreeBSD: 2MSL timer at maxidle (600 s) then one 75 s re-check
    assert tl.party("server").forgotten_at() == pytest.approx(1.05 + 675)
    v = judge(from_document(presets.build("seed-000-freebsd-ipfw", {"dyn_keepalive": 0})))
    assert v.first == "ipfw"
    assert v.next_packet["from"] == "server" and v.next_packet["fate"] == "dropped"
    assert v.next_packet["by"] == "ipfw"


def test_ipfw_since_freebsd_10_needs_both_sides_to_refresh():
    tl = preset("seed-000-freebsd-ipfw", refresh="both")
    assert tl.party("ipfw").forgotten_at() == pytest.approx(301.0)
    ka = [p for p in tl.packets if p.tag == "forged-keepalive"]
    # both at 285; then only the side that has not answered (the client)
    assert [(round(p.t_s), p.dst) for p in ka] == [(285, "client"), (285, "server"),
                                                   (290, "client"), (295, "client"),
                                                   (300, "client")]
    # the forged keepalive at 285 s reset the server's idle time: the
    # FIN_WAIT_2 then ends at the first 75 s re-check with idle > 600 s
    assert tl.party("server").forgotten_at() == pytest.approx(1.05 + 900)


def test_ipfw_fin_lifetime_after_both_fins():
    tl = simulate(from_document({
        "rtt": 0.05, "horizon": 60, "client": {"app": {"close_at": 1.0}},
        "server": {"app": {"on_eof": "close"}}, "middlebox": [{"profile": "ipfw"}]})).timeline()
    ipfw = tl.party("ipfw")
    assert ipfw.spans[-1].label == "BOTH_SYN|BOTH_FIN"
    # expire = uptime (1) + dyn_fin_lifetime (1), removed by the tick at 2 s
    assert ipfw.forgotten_at() == pytest.approx(2.0)


def test_ipfw_drops_packets_without_state():
    tl = simulate(from_document({
        "rtt": 0.05, "horizon": 30, "client": {"app": {"send_at": 25.0}},
        "server": {}, "middlebox": [{"profile": "ipfw", "dyn_ack_lifetime": 10,
                                     "dyn_keepalive": 0}]})).timeline()
    # last refresh: the handshake's last ACK, at uptime 0; expire 0 + 10,
    # removed by the tick at 10 s
    assert tl.party("ipfw").forgotten_at() == pytest.approx(10.0)
    data = [p for p in tl.packets if p.length]
    assert data and data[0].dropped_by == "ipfw"


def test_ipfw_dragonfly_refreshes_on_any_in_sequence_packet():
    doc = presets.build("seed-000-freebsd-ipfw")
    doc["middlebox"] = [{"profile": "ipfw-dragonfly"}]
    tl = simulate(from_document(doc)).timeline()
    assert tl.party("server").held_at_end()


# ---- conntrack ----

def test_conntrack_close_wait_entry_expires_and_late_fin_is_invalid():
    tl = preset("conntrack-late-fin")
    ct = tl.party("conntrack")
    assert ct.spans[-1].label == "CLOSE_WAIT"
    assert ct.spans[-1].duration() == pytest.approx(60.0)
    fins = [p for p in tl.packets if p.src == "server" and "F" in p.flags]
    assert fins and all(p.dropped_by == "conntrack" for p in fins)
    # the server's orphaned LAST_ACK retransmits until it gives up (no RST)
    assert tl.party("server").spans[-1].state == TcpState.LAST_ACK
    assert tl.party("server").forgotten_at() > 300


def test_conntrack_passing_invalid_lets_the_fin_meet_a_reset():
    tl = preset("conntrack-late-fin", invalid="pass")
    assert tl.party("server").forgotten_at() == pytest.approx(200.05)


def test_conntrack_loose_pickup_of_mid_stream_data():
    tl = simulate(from_document({
        "rtt": 0.05, "horizon": 100, "client": {"app": {"send_at": 50.0}},
        "server": {},
        "middlebox": [{"profile": "conntrack",
                       "nf_conntrack_tcp_timeout_established": 20}]})).timeline()
    ct = tl.party("conntrack")
    assert [s.label for s in ct.spans][-1] == "ESTABLISHED"
    assert ct.spans[-1].start_s == pytest.approx(50.0125)  # picked up again
    assert not any(p.dropped_by for p in tl.packets)


# ---- timeout tables ----

@pytest.mark.parametrize("provider,forgets,meets", [
    ("aws-nlb", 350.0625, "reset"), ("aws-nat", 350.0625, "reset"),
    ("azure-lb", 240.0625, "silence"),
])
def test_cloud_idle_timeouts(provider, forgets, meets):
    tl = preset("cloud-idle-timeout", provider=provider)
    assert tl.party(provider).forgotten_at() == pytest.approx(forgets)
    data = next(p for p in tl.packets if p.length)
    assert data.dropped_by == provider
    resets = [p for p in tl.packets if p.tag == "middlebox-reset"]
    assert bool(resets) == (meets == "reset")


def test_gcp_nat_keeps_an_established_flow_for_1200s():
    tl = preset("cloud-idle-timeout", provider="gcp-nat")
    assert not any(p.dropped_by for p in tl.packets)
    # the write at 600 s refreshed it
    assert tl.party("gcp-nat").forgotten_at() == pytest.approx(600.0375 + 1200, abs=0.01)


def test_azure_tcp_reset_on_idle_resets_both_ends():
    tl = preset("cloud-idle-timeout", provider="azure-lb", tcp_reset=1)
    assert tl.party("client").forgotten_at() == pytest.approx(240.075)
    assert tl.party("server").forgotten_at() == pytest.approx(240.075)


def test_pf_closing_timeout_after_first_fin():
    tl = simulate(from_document({
        "rtt": 0.05, "horizon": 2000, "client": {"app": {"close_at": 1.0}},
        "server": {"behaviour": "never-close"}, "middlebox": [{"profile": "pf"}]})).timeline()
    pf = tl.party("pf")
    # the last packet is the server's ACK of the FIN (1.0375 at pf)
    assert pf.forgotten_at() == pytest.approx(1.0375 + 900)
    assert pf.spans[-1].state == TcpState.FIN_WAIT2
