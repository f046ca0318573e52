"""time-wait-pressure: ratio to tcp_max_tw_buckets, overflow, side."""

import pytest

from tcplinger.diagnose.builder import SocketBuilder, namespace
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.finding import Severity


def run(ns, **kw):
    return diagnose([ns], rules=["time-wait-pressure"], **kw)


def tw(n, *, buckets=1000, server=True, **kw):
    b = SocketBuilder()
    b.add("LISTEN", "0.0.0.0:80")
    if server:
        b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.9:1000", inode=0, timer=3,
              expires_ms=30_000, count=n)
    else:
        b.add("TIME_WAIT", "10.0.0.1:40000", "10.0.0.7:5432", vary="sport", inode=0, timer=3,
              expires_ms=30_000, count=n)
    return namespace(b.table(), sysctls={"tcp_max_tw_buckets": buckets}, **kw)


@pytest.mark.parametrize("n,expected", [
    (999, None),  # below info_count and below warning_ratio: no finding
    (1000, Severity.INFO),
])
def test_info_count(n, expected):
    found = run(tw(n, buckets=100_000))
    assert (found[0].severity if found else None) == expected


@pytest.mark.parametrize("n,expected", [(499, Severity.INFO), (500, Severity.WARNING),
                                        (899, Severity.WARNING), (900, Severity.CRITICAL)])
def test_ratio_thresholds(n, expected):
    found = run(tw(n, buckets=1000), thresholds={"time-wait-pressure": {"info_count": 1}})
    assert found[0].severity == expected
    assert found[0].evidence["ratio"] == n / 1000


def test_overflow_rising_is_critical():
    ns = tw(3, buckets=1000, tcpext={"TCPTimeWaitOverflow": 12, "TW": 50},
            previous_tcpext={"TCPTimeWaitOverflow": 4, "TW": 20}, interval=2.0)
    [f] = run(ns)
    assert f.severity == Severity.CRITICAL
    assert f.evidence["TCPTimeWaitOverflow_delta"] == 8
    # TW +30 and TCPTimeWaitOverflow +8 in 2 s: 19 active closes per second
    assert f.evidence["active_close_rate"]["per_s"] == 19.0
    assert f.evidence["active_close_rate"]["source"] == "interval"
    assert any(t.key.endswith("fact.overflow_delta") for t in f.facts)


def test_overflow_still_over_the_interval_says_none_destroyed():
    """http.server under ab (1,000 TIME_WAIT of 131,072): +0 over the
    interval had read "TIME_WAIT is being destroyed right now"."""
    ns = tw(3, buckets=1000, tcpext={"TCPTimeWaitOverflow": 12, "TW": 50},
            previous_tcpext={"TCPTimeWaitOverflow": 12, "TW": 20}, interval=2.0)
    [f] = run(ns)
    assert f.severity == Severity.INFO
    keys = [t.key for t in f.facts]
    assert any(k.endswith("fact.overflow_still") for k in keys)
    assert not any(k.endswith("fact.overflow_delta") for k in keys)


def test_overflow_in_the_past_is_info_evidence():
    [f] = run(tw(3, buckets=1000, tcpext={"TCPTimeWaitOverflow": 12}))
    assert f.severity == Severity.INFO
    assert any(t.key.endswith("fact.overflow") for t in f.facts)


def test_sides_and_fixes():
    server = run(tw(2000, buckets=100_000))[0]
    assert server.evidence["server_side"] == 2000 and server.evidence["client_side"] == 0
    assert server.cause[1].key.endswith("cause.server")
    assert not any(x.text.key.endswith("fix.tw_reuse") for x in server.fixes)
    client = run(tw(2000, buckets=100_000, server=False))[0]
    assert client.evidence["client_side"] == 2000
    assert client.evidence["client_destinations"][0] == {"address": "10.0.0.7", "count": 2000,
                                                         "port": 5432}
    fix = next(x for x in client.fixes if x.text.key.endswith("fix.tw_reuse"))
    assert fix.command == "sysctl -w net.ipv4.tcp_tw_reuse=1"


def test_says_fin_timeout_does_not_apply_and_recycle_is_gone():
    [f] = run(tw(2000, buckets=100_000))
    keys = [t.key for t in f.lifetime]
    assert "rule.time-wait-pressure.life.no_knob" in keys
    assert f.lifetime[0].fields["fin"] == 60


def test_fin_wait2_minisockets_count_against_buckets():
    b = SocketBuilder()
    b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.9:1000", inode=0, timer=3, expires_ms=1, count=400)
    b.add("FIN_WAIT2", "10.0.0.1:80", "10.0.0.9:5000", inode=0, timer=3, expires_ms=1, count=100)
    [f] = run(namespace(b.table(), sysctls={"tcp_max_tw_buckets": 1000}))
    assert f.evidence["timewait_type_sockets"] == 500 and f.severity == Severity.WARNING
