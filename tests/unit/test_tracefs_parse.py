"""The pure half of collect/trace_events.py: trace_pipe lines recorded on 6.18
(tests/data/tracefs/record.py) parse to the events they show."""

import json
from pathlib import Path

import pytest

from tcplinger.collect import trace_events, tracefs
from tcplinger.model.states import TcpState

DATA = Path(__file__).resolve().parents[1] / "data" / "tracefs"


@pytest.mark.parametrize("name", ["default", "fields"])
def test_recorded_lines_parse_as_recorded(name):
    lines = (DATA / f"{name}.trace").read_text().splitlines()
    expected = json.loads((DATA / f"{name}.expected.json").read_text())
    assert len(lines) == len(expected) > 10
    for line, want in zip(lines, expected):
        ev = trace_events.parse_line(line)
        assert ev is not None, line
        got = {"t": ev.t, "event": ev.event, "local": list(ev.local),
               "remote": list(ev.remote), "oldstate": ev.oldstate, "newstate": ev.newstate,
               "cookie": ev.cookie}
        assert got == want


@pytest.mark.parametrize("name", ["default", "fields"])
def test_recording_tells_the_known_story(name):
    """Client closes first: FIN_WAIT1 -> FIN_WAIT2 -> CLOSE (handed to a
    minisock, nothing more is traced), then the server's LAST_ACK; the
    connect's SYN_SENT is traced before the socket has a port."""
    evs = [trace_events.parse_line(x) for x in (DATA / f"{name}.trace").read_text().splitlines()]
    states = [(e.local[1] == 20999, e.oldstate, e.newstate) for e in evs
              if e.event == "inet_sock_set_state"]
    assert (False, TcpState.CLOSE, TcpState.SYN_SENT) in states
    syn_sent = [e for e in evs if e.event == "inet_sock_set_state"
                and e.newstate == TcpState.SYN_SENT]
    assert all(e.local[1] == 0 for e in syn_sent)
    client = [(e.oldstate, e.newstate) for e in evs if e.event == "inet_sock_set_state"
              and e.local[1] not in (0, 20999)]
    assert client[:4] == [(2, 1), (1, 4), (4, 5), (5, 7)]
    server = [(e.oldstate, e.newstate) for e in evs if e.event == "inet_sock_set_state"
              and e.local[1] == 20999 and e.remote[1] != 0]
    assert (8, 9) in server and (9, 7) in server
    cookies = [e.cookie for e in evs if e.event == "tcp_destroy_sock"]
    assert cookies and all(isinstance(c, int) and c > 0 for c in cookies)
    assert [e.t for e in evs] == sorted(e.t for e in evs)


def test_fields_option_gives_the_socket_address():
    ev = trace_events.parse_line((DATA / "fields.trace").read_text().splitlines()[1])
    assert ev.fields["skaddr"].startswith("0xffff")
    assert ev.local == ("127.0.0.1", 0) and ev.remote == ("127.0.0.1", 20999)


@pytest.mark.parametrize("line,comm,pid,cpu", [
    ("          <idle>-0       [001] ..s2.  4711.000001: tcp_destroy_sock: family=AF_INET "
     "sport=1 dport=2 saddr=10.0.0.1 daddr=10.0.0.2 saddrv6=::ffff:10.0.0.1 "
     "daddrv6=::ffff:10.0.0.2 sock_cookie=ff", "<idle>", 0, 1),
    ("  kworker/u4:2-1234    [000] d..1.    12.5: tcp_destroy_sock: family=AF_INET sport=1 "
     "dport=2 saddr=10.0.0.1 daddr=10.0.0.2 saddrv6=::1 daddrv6=::1 sock_cookie=1",
     "kworker/u4:2", 1234, 0),
    # record-tgid adds "(  TGID)" after the pid
    ("  python3-77   (     77) [003] .....  9.25: tcp_destroy_sock: family=AF_INET sport=1 "
     "dport=2 saddr=10.0.0.1 daddr=10.0.0.2 saddrv6=::1 daddrv6=::1 sock_cookie=2",
     "python3", 77, 3),
    # a comm with a dash and a space
    ("  my proc-x-99  [000] .....  1.0: tcp_destroy_sock: family=AF_INET sport=1 dport=2 "
     "saddr=10.0.0.1 daddr=10.0.0.2 saddrv6=::1 daddrv6=::1 sock_cookie=3",
     "my proc-x", 99, 0),
])
def test_headers(line, comm, pid, cpu):
    ev = trace_events.parse_line(line)
    assert (ev.comm, ev.pid, ev.cpu, ev.event) == (comm, pid, cpu, "tcp_destroy_sock")


def test_ipv6_addresses_come_from_the_v6_fields():
    ev = trace_events.parse_line(
        " x-1 [000] ..... 1.0: inet_sock_set_state: family=AF_INET6 protocol=IPPROTO_TCP "
        "sport=443 dport=50000 saddr=0.0.0.0 daddr=0.0.0.0 saddrv6=2001:db8::1 "
        "daddrv6=2001:db8::2 oldstate=TCP_LAST_ACK newstate=TCP_CLOSE")
    assert ev.family == 10
    assert ev.local == ("2001:db8::1", 443) and ev.remote == ("2001:db8::2", 50000)
    assert (ev.oldstate, ev.newstate) == (TcpState.LAST_ACK, TcpState.CLOSE)


@pytest.mark.parametrize("line", ["", "# tracer: nop", "CPU:0 [LOST 3 EVENTS]",
                                  "garbage without structure"])
def test_non_events(line):
    assert trace_events.parse_line(line) is None


def test_lost_notes_and_stats():
    assert trace_events.lost_events("CPU:3 [LOST 1234 EVENTS]") == 1234
    assert trace_events.lost_events("python3-1 [000] ..... 1.0: x: y=1") == 0
    stats = trace_events.parse_stats("entries: 0\noverrun: 7\ncommit overrun: 0\nbytes: 0\n"
                                "oldest event ts:  2613.2\nnow ts:  2614.0\n"
                                "dropped events: 1\nread events: 10\n")
    assert stats["overrun"] == 7 and stats["dropped events"] == 1 and "now ts" not in stats


def test_unknown_state_names_are_none():
    ev = trace_events.parse_line(" x-1 [000] ..... 1.0: inet_sock_set_state: family=AF_INET "
                            "protocol=IPPROTO_TCP sport=1 dport=2 saddr=1.1.1.1 daddr=2.2.2.2 "
                            "oldstate=TCP_WHATEVER newstate=TCP_CLOSE")
    assert ev.oldstate is None and ev.newstate == TcpState.CLOSE


def test_filters_and_names():
    assert trace_events.port_filter([80, 80, 8080]) == \
        "sport == 80 || dport == 80 || sport == 8080 || dport == 8080"
    name = tracefs.instance_name("watch", 12)
    assert name == "tl-watch-12" and tracefs.instance_owner(name) == 12
    assert tracefs.instance_owner("tl-bench-24220-bdfaa6") is None
    with pytest.raises(ValueError):
        tracefs.instance_name("bad/purpose")
