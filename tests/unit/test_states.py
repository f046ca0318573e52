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


@pytest.mark.parametrize("group,expected", [
    ("active-close", {"FIN_WAIT1", "FIN_WAIT2", "CLOSING", "TIME_WAIT"}),
    ("passive-close", {"CLOSE_WAIT", "LAST_ACK"}),
    ("lingering", {"FIN_WAIT1", "FIN_WAIT2", "CLOSING", "TIME_WAIT", "CLOSE_WAIT", "LAST_ACK"}),
    ("opening", {"SYN_SENT", "SYN_RECV", "NEW_SYN_RECV"}),
    ("open", {"ESTABLISHED"}),
    ("listening", {"LISTEN"}),
    ("closed", {"CLOSE", "BOUND_INACTIVE"}),
    ("connected", {"ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
                   "CLOSE_WAIT", "LAST_ACK", "CLOSING"}),
])
def test_group(group, expected):
    assert {s.name for s in st.members(group)} == expected


def test_every_group_is_tested():
    tested = {"active-close", "passive-close", "lingering", "opening", "open", "listening",
              "closed", "connected"}
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
