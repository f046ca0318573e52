"""The state table: numbers, spellings and one test per group."""

import pytest

from tcplinger.model import states as st
from tcplinger.model.states import TcpState


def test_kernel_numbers():
    # include/net/tcp_states.h
    assert [s.value for s in TcpState] == list(range(1, 14))
    assert TcpState.CLOSE_WAIT == 8 and TcpState.TIME_WAIT == 6 and TcpState.LISTEN == 10


def test_every_state_has_one_row():
    assert sorted(r.state for r in st.STATE_TABLE) == sorted(TcpState)


def _names(group):
    return {s.name for s in st.members(group)}


def test_group_active_close():
    """The side that sent the first FIN: FIN_WAIT1 until it is acked,
    FIN_WAIT2 waiting for the peer's FIN, CLOSING when both FINs crossed,
    TIME_WAIT after (RFC 9293 3.3.2)."""
    assert _names("active-close") == {"FIN_WAIT1", "FIN_WAIT2", "CLOSING", "TIME_WAIT"}


def test_group_passive_close():
    """The side that received the first FIN: CLOSE_WAIT until its
    application closes, LAST_ACK until its own FIN is acked."""
    assert _names("passive-close") == {"CLOSE_WAIT", "LAST_ACK"}


def test_group_lingering():
    """Every teardown state, both sides: what tcplinger exists for."""
    assert _names("lingering") == _names("active-close") | _names("passive-close")
    assert st.LINGERING == st.members("lingering")


def test_group_opening():
    """The handshake: SYN sent, SYN received (a full socket, e.g. with Fast
    Open), and request sockets (NEW_SYN_RECV, shown as SYN_RECV)."""
    assert _names("opening") == {"SYN_SENT", "SYN_RECV", "NEW_SYN_RECV"}


def test_group_open():
    assert _names("open") == {"ESTABLISHED"}


def test_group_listening():
    assert _names("listening") == {"LISTEN"}


def test_group_closed():
    """No connection: TCP_CLOSE (unconnected, or done) and a bound socket
    that never listened or connected (BOUND_INACTIVE, 6.10)."""
    assert _names("closed") == {"CLOSE", "BOUND_INACTIVE"}


def test_group_connected():
    """States of a full socket with a peer (request sockets and TIME_WAIT
    minisocks are not full sockets)."""
    assert _names("connected") == {"ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1",
                                   "FIN_WAIT2", "CLOSE_WAIT", "LAST_ACK", "CLOSING"}


def test_group_ownable():
    """Lingering states a process can still hold an fd to: all but
    TIME_WAIT, which only a timewait minisock (inode 0) holds
    (tcp_time_wait(), net/ipv4/tcp_minisocks.c)."""
    assert _names("ownable") == {"CLOSE_WAIT", "FIN_WAIT1", "FIN_WAIT2", "LAST_ACK", "CLOSING"}
    assert st.OWNABLE == st.LINGERING - {TcpState.TIME_WAIT}


def test_group_after_close():
    """What close() leads to (tcp_close_state(): ESTABLISHED -> FIN_WAIT1,
    CLOSE_WAIT -> LAST_ACK) and what follows: inode 0 here is an orphan.
    Not CLOSE_WAIT: inode 0 there is a socket not yet accept()ed."""
    assert _names("after-close") == {"FIN_WAIT1", "FIN_WAIT2", "CLOSING", "LAST_ACK",
                                     "TIME_WAIT"}
    assert TcpState.CLOSE_WAIT not in st.AFTER_CLOSE


def test_group_can_send():
    """SEND is allowed in ESTABLISHED and CLOSE_WAIT (RFC 9293 3.10.2); after
    our own FIN (FIN_WAIT*, CLOSING, LAST_ACK, TIME_WAIT) it fails."""
    assert _names("can-send") == {"ESTABLISHED", "CLOSE_WAIT"}


def test_group_peer_closed():
    """The peer's FIN has arrived (RFC 9293 3.10.7.4): read() returns 0."""
    assert _names("peer-closed") == {"CLOSE_WAIT", "LAST_ACK", "CLOSING", "TIME_WAIT"}


def test_group_reset_on_abort():
    """tcp_need_reset() (include/net/tcp.h): tcp_abort() sends a RST from
    these; from LAST_ACK, CLOSING or TIME_WAIT the peer hears nothing."""
    assert _names("reset-on-abort") == {"ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT1", "FIN_WAIT2",
                                        "SYN_RECV"}


def test_derived_sets():
    assert st.IN_USE == st.members("open") | st.members("opening")
    assert st.NOT_CONNECTION == {TcpState.LISTEN, TcpState.CLOSE, TcpState.BOUND_INACTIVE}
    # no outgoing connection's local port: listener, unconnected, request socket
    assert st.NOT_OUTGOING == {TcpState.LISTEN, TcpState.CLOSE, TcpState.NEW_SYN_RECV}


def test_every_group_is_tested():
    tested = {name[len("test_group_"):].replace("_", "-")
              for name in globals() if name.startswith("test_group_")}
    assert st.GROUPS == tested


@pytest.mark.parametrize("spelling", ["close-wait", "CLOSE_WAIT", "closewait", "Close Wait",
                                      "TCP_CLOSE_WAIT", "CLOSE-WAIT"])
def test_spellings(spelling):
    assert st.parse_state(spelling) is TcpState.CLOSE_WAIT


@pytest.mark.parametrize("spelling,state", [
    ("estab", TcpState.ESTABLISHED), ("ESTABLISHED", TcpState.ESTABLISHED),
    ("fin-wait-2", TcpState.FIN_WAIT2), ("FIN_WAIT2", TcpState.FIN_WAIT2),
    ("finwait1", TcpState.FIN_WAIT1), ("time-wait", TcpState.TIME_WAIT),
    ("timewait", TcpState.TIME_WAIT), ("syn-recv", TcpState.SYN_RECV),
    ("last_ack", TcpState.LAST_ACK), ("listen", TcpState.LISTEN),
])
def test_other_spellings(spelling, state):
    assert st.parse_state(spelling) is state


def test_unknown_state():
    with pytest.raises(st.UnknownState):
        st.parse_states("close-wiat")
    with pytest.raises(st.UnknownState):
        st.parse_states(",")


def test_lists_and_groups_mix():
    assert st.parse_states("listen,passive-close") == {
        TcpState.LISTEN, TcpState.CLOSE_WAIT, TcpState.LAST_ACK}


def test_state_mask_includes_request_sockets_for_syn_recv():
    assert st.state_mask([TcpState.CLOSE_WAIT]) == 1 << 8
    assert st.state_mask([TcpState.SYN_RECV]) == (1 << 3) | (1 << 12)


def test_json_names():
    assert st.name(12) == "SYN_RECV"
    assert st.name(5) == "FIN_WAIT2"
