"""lab/ipfw.py follows FreeBSD's sys/netpfil/ipfw/ip_fw_dynamic.c:
lifetimes by flags seen, refresh only on ACKs both ways, keepalives in the
last dyn_keepalive_interval seconds every dyn_keepalive_period, only to
sides that have not acked since the last refresh."""

from tcplinger.lab.ipfw import ACK, FIN, RST, SYN, Ipfw, IpfwParams, label, tcp_state_of

C, S = ("10.0.0.2", 40000), ("10.0.1.2", 80)


def established(fw, t=1, c_ack=5001, s_ack=1001):
    assert fw.packet(t, C, S, SYN, 0).installed
    fw.packet(t, S, C, SYN | ACK, s_ack)
    fw.packet(t, C, S, ACK, c_ack)
    return fw


def test_syn_lifetime_then_ack_lifetime():
    fw = Ipfw(IpfwParams(ack_lifetime=300, syn_lifetime=20))
    fw.packet(10, C, S, SYN, 0)
    assert fw.expire_of(C, S) == 30
    fw.packet(11, S, C, SYN | ACK, 1001)
    fw.packet(11, C, S, ACK, 5001)
    assert fw.expire_of(C, S) == 311 and label(fw.states[(C, S)].state) == "BOTH_SYN"


def test_refresh_needs_an_ack_from_both_sides():
    fw = established(Ipfw(IpfwParams(ack_lifetime=10)))
    assert fw.expire_of(C, S) == 11
    fw.packet(5, C, S, ACK, 5001)  # one side only
    assert fw.expire_of(C, S) == 11
    fw.packet(6, S, C, ACK, 1001)  # now both: pushed
    assert fw.expire_of(C, S) == 16
    fw.packet(7, S, C, ACK, 1001)  # bits were cleared at the push
    assert fw.expire_of(C, S) == 16


def test_an_older_ack_does_not_count():
    fw = established(Ipfw(IpfwParams(ack_lifetime=10)))
    fw.packet(5, C, S, ACK, 4000)  # below the last ack seen
    fw.packet(5, S, C, ACK, 1001)
    assert fw.expire_of(C, S) == 11


def test_fin_both_ways_and_rst_lifetimes():
    fw = established(Ipfw(IpfwParams(fin_lifetime=1, rst_lifetime=1)))
    fw.packet(20, C, S, FIN | ACK, 5001)
    fw.packet(20, S, C, FIN | ACK, 1002)
    assert label(fw.states[(C, S)].state) == "BOTH_SYN|BOTH_FIN" and fw.expire_of(C, S) == 21
    fw2 = established(Ipfw())
    fw2.packet(30, S, C, RST, 0)
    assert fw2.expire_of(C, S) == 31 and tcp_state_of(fw2.states[(C, S)].state) == 7


def test_lifetimes_are_forced_below_the_keepalive_period():
    """dyn_update_tcp_state() rewrites dyn_fin_lifetime (and, with
    keepalives on, dyn_rst_lifetime) to period - 1."""
    p = IpfwParams(fin_lifetime=9, rst_lifetime=9, keepalive_period=5)
    fw = established(Ipfw(p))
    fw.packet(20, C, S, FIN | ACK, 5001)
    fw.packet(20, S, C, FIN | ACK, 1002)
    assert fw.expire_of(C, S) == 24 and p.fin_lifetime == 4
    fw.packet(21, C, S, RST, 0)
    assert p.rst_lifetime == 4


def test_no_state_no_passage():
    fw = Ipfw()
    assert not fw.packet(1, C, S, ACK, 1).passed
    assert not fw.packet(1, C, S, SYN | ACK, 1).passed  # not "setup"
    assert fw.packet(1, C, S, SYN, 0).passed


def test_keepalives_only_in_the_last_interval_every_period():
    p = IpfwParams(ack_lifetime=30, keepalive_interval=20, keepalive_period=5)
    fw = established(Ipfw(p), t=1)  # expires at 31
    assert fw.tick(5) == []  # 5 + 20 <= 31: too early
    assert fw.tick(10) == []
    ka = fw.tick(15)  # 15 + 20 > 31
    assert {(k.src, k.dst) for k in ka} == {(S, C), (C, S)}
    assert fw.tick(16) == []  # the period: next round at 20
    assert len(fw.tick(20)) == 2


def test_keepalive_sequence_numbers_ask_for_an_ack():
    fw = established(Ipfw(IpfwParams(ack_lifetime=10)), c_ack=5001, s_ack=1001)
    ka = {(k.src, k.dst): k for k in fw.tick(5)}
    to_client, to_server = ka[(S, C)], ka[(C, S)]
    # one below what the receiver expects: an old segment it must ACK
    assert (to_client.seq, to_client.ack) == (5000, 1001)
    assert (to_server.seq, to_server.ack) == (1000, 5001)


def test_a_side_that_answered_gets_no_more_keepalives():
    fw = established(Ipfw(IpfwParams(ack_lifetime=10)))
    fw.packet(4, S, C, ACK, 1001)  # the server acked since the last push
    assert [(k.src, k.dst) for k in fw.tick(5)] == [(S, C)]  # to the client only


def test_answers_to_keepalives_refresh_the_state():
    fw = established(Ipfw(IpfwParams(ack_lifetime=10)))
    assert len(fw.tick(5)) == 2
    fw.packet(5, C, S, ACK, 5001)
    fw.packet(5, S, C, ACK, 1001)
    assert fw.expire_of(C, S) == 15


def test_expiry_removes_and_keepalives_can_be_off():
    fw = established(Ipfw(IpfwParams(ack_lifetime=10, keepalive=0)))
    assert fw.tick(5) == []
    assert fw.expired(10) == []
    assert [label(s.state) for s in fw.expired(11)] == ["BOTH_SYN"]
    assert fw.states == {}
