"""Growth from the watch history in the diagnosis: close-wait-leak against
RLIMIT_NOFILE, time-wait-pressure against tcp_max_tw_buckets,
ephemeral-port-exhaustion against the port range (built inputs)."""

from dataclasses import replace

import pytest

from tcplinger.diagnose.builder import SocketBuilder, namespace, owners_for
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.finding import Confidence, Severity
from tcplinger.diagnose.inputs import NamespaceTrends, ProcessFacts, Trend
from tcplinger.i18n import Messages
from tcplinger.track.growth import Growth

CLOSE_WAIT, TIME_WAIT = 8, 6
THREE_HOURS = 3 * 3600.0


def trend(per_minute, *, current=0.0, limit=None, limit_name=None, ttl=None, span=THREE_HOURS):
    g = Growth(per_minute / 60.0, 0.0, 0.98, span, 181, True)
    return Trend(g, current, limit, limit_name, ttl)


def text(t, lang="en"):
    return t.render(Messages(lang))


# ---- close-wait-leak ---------------------------------------------------------

def leaking(n=5, *, pid=4242, fds=None, trends=None):
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:8080", "10.0.0.9:40000", inode=5000, recv_q=1,
          last_ack_recv=60_000, count=n)  # past min_age
    ns = namespace(b.table(), owners=owners_for(5000, n, pid, "java"),
                   processes={pid: fds} if fds else {})
    return replace(ns, trends=trends)


def close_wait(ns, **kw):
    [f] = diagnose([ns], rules=["close-wait-leak"], **kw)
    return f


def test_no_history_no_growing_evidence():
    f = close_wait(leaking(fds=ProcessFacts(2300, 65536)))
    assert f.evidence["growing"] is None
    assert f.severity == Severity.INFO and f.confidence == Confidence.MEDIUM
    assert not any(t.key.endswith("fact.growing") for t in f.facts)


def test_growing_uses_fresh_fd_usage_for_the_time_to_limit():
    # the database knew 2000 open fds; /proc says 2300 now: the rule uses 2300
    tr = NamespaceTrends(by_owner={(4242, CLOSE_WAIT): trend(12, current=2000, limit=65536,
                                                             limit_name="fd limit", ttl=1.0)})
    f = close_wait(leaking(fds=ProcessFacts(2300, 65536), trends=tr))
    g = f.evidence["growing"]
    assert g["per_minute"] == pytest.approx(12) and g["slope_per_s"] == pytest.approx(0.2)
    assert g["window_s"] == THREE_HOURS and g["points"] == 181
    assert (g["current"], g["limit"], g["limit_name"]) == (2300, 65536, "RLIMIT_NOFILE")
    assert g["time_to_limit_s"] == pytest.approx((65536 - 2300) / 0.2)  # 87.8 h
    # far away: the severity stays, but steady growth makes it a leak
    assert f.severity == Severity.INFO
    assert f.confidence == Confidence.HIGH and f.confidence_reason.key.endswith("conf.growing")
    [fact] = [t for t in f.facts if t.key.endswith("fact.growing")]
    assert text(fact) == ("Its CLOSE_WAIT grew +12/min over the last 3h00m (watch history); at "
                          "that rate its open files reach RLIMIT_NOFILE (65536) in about 3d15h.")
    assert "3d15h" in text(fact, "zh") and "65536" in text(fact, "zh")


@pytest.mark.parametrize("per_second,expected", [
    (0.74, Severity.INFO),       # 64800 fds to go: 87568 s, beyond warning_ttl (24 h)
    (0.75, Severity.WARNING),    # exactly warning_ttl
    (17.9, Severity.WARNING),    # 3620 s
    (18.0, Severity.CRITICAL),   # exactly critical_ttl (1 h)
])
def test_severity_rises_as_the_fd_limit_nears(per_second, expected):
    tr = NamespaceTrends(by_owner={(4242, CLOSE_WAIT): trend(per_second * 60)})
    # 3 young sockets, 736 of 65536 fds open: INFO without the trend
    f = close_wait(leaking(3, fds=ProcessFacts(736, 65536), trends=tr))
    assert f.severity == expected
    has_nofile_fix = any(fx.text.key.endswith("fix.nofile") for fx in f.fixes)
    assert has_nofile_fix == (expected != Severity.INFO)


def test_ttl_thresholds_can_be_turned_off():
    tr = NamespaceTrends(by_owner={(4242, CLOSE_WAIT): trend(600)})  # 10/s
    ns = leaking(3, fds=ProcessFacts(1000, 4096), trends=tr)
    assert close_wait(ns).severity == Severity.CRITICAL  # 309 s to go
    off = {"close-wait-leak": {"warning_ttl": None, "critical_ttl": None}}
    assert close_wait(ns, thresholds=off).severity == Severity.INFO


def test_without_fd_usage_the_database_limit_is_used():
    tr = NamespaceTrends(by_owner={(4242, CLOSE_WAIT): trend(12, current=65000, limit=65536,
                                                             limit_name="fd limit",
                                                             ttl=536 / 0.2)})
    f = close_wait(leaking(3, trends=tr))
    g = f.evidence["growing"]
    assert (g["current"], g["limit"], g["limit_name"]) == (65000, 65536, "RLIMIT_NOFILE")
    assert g["time_to_limit_s"] == pytest.approx(2680)
    assert f.severity == Severity.CRITICAL


def test_unlimited_nofile_has_growth_but_no_time_to_limit():
    tr = NamespaceTrends(by_owner={(4242, CLOSE_WAIT): trend(12)})
    f = close_wait(leaking(3, fds=ProcessFacts(5000, None), trends=tr))
    g = f.evidence["growing"]
    assert g["limit"] is None and g["time_to_limit_s"] is None
    assert f.severity == Severity.INFO
    assert any(t.key.endswith("fact.growing_no_limit") for t in f.facts)


def test_other_processes_trend_is_not_taken():
    tr = NamespaceTrends(by_owner={(999, CLOSE_WAIT): trend(600),
                                   (4242, TIME_WAIT): trend(600)})
    f = close_wait(leaking(3, fds=ProcessFacts(1000, 4096), trends=tr))
    assert f.evidence["growing"] is None and f.severity == Severity.INFO


# ---- time-wait-pressure ------------------------------------------------------

def time_wait(n, trends=None, buckets=131072):
    b = SocketBuilder()
    b.add("TIME_WAIT", "10.0.0.1:40000", "10.0.0.7:80", vary="sport", inode=0, timer=3, count=n)
    ns = namespace(b.table(), sysctls={"tcp_max_tw_buckets": buckets})
    return replace(ns, trends=trends)


def tw_findings(ns, **kw):
    return diagnose([ns], rules=["time-wait-pressure"], **kw)


def test_time_wait_growing_against_buckets_warns_below_info_count():
    # 500 TIME_WAIT (below info_count 1000): no finding unless the buckets near
    slow = NamespaceTrends(by_state={TIME_WAIT: trend(60 * (131072 - 500) / 3601)})
    assert tw_findings(time_wait(500, slow)) == []
    fast = NamespaceTrends(by_state={TIME_WAIT: trend(60 * (131072 - 500) / 3600)})
    [f] = tw_findings(time_wait(500, fast))
    assert f.severity == Severity.WARNING
    g = f.evidence["growing"]
    assert g["limit_name"] == "tcp_max_tw_buckets" and g["limit"] == 131072
    assert g["current"] == 500 and g["time_to_limit_s"] == pytest.approx(3600)
    assert any(t.key.endswith("fact.growing") for t in f.facts)
    assert any(fx.sysctl is not None and fx.sysctl.key == "tcp_max_tw_buckets" for fx in f.fixes)


def test_time_wait_growth_is_evidence_when_far():
    tr = NamespaceTrends(by_state={TIME_WAIT: trend(100)})
    [f] = tw_findings(time_wait(2000, tr))
    assert f.severity == Severity.INFO
    assert f.evidence["growing"]["time_to_limit_s"] == pytest.approx((131072 - 2000) / (100 / 60))
    [f] = tw_findings(time_wait(2000))
    assert f.evidence["growing"] is None


# ---- ephemeral-port-exhaustion -----------------------------------------------

def test_ephemeral_ports_earliest_exhaustion():
    b = SocketBuilder()
    b.add("TIME_WAIT", "10.0.0.1:40000", "10.0.0.7:5432", vary="sport", inode=0, timer=3,
          count=300)
    ns = namespace(b.table(), sysctls={"ip_local_port_range": (40000, 40999)})
    [f] = diagnose([ns], rules=["ephemeral-port-exhaustion"])
    assert f.evidence["growing"] is None
    tr = NamespaceTrends(connections=trend(70, current=5000, limit=1000,
                                           limit_name="ephemeral ports", ttl=0.0))
    [f] = diagnose([replace(ns, trends=tr)], rules=["ephemeral-port-exhaustion"])
    g = f.evidence["growing"]
    assert (g["current"], g["limit"], g["limit_name"]) == (300, 1000, "ephemeral ports")
    assert g["time_to_limit_s"] == pytest.approx(700 / (70 / 60)) and g["time_to_limit_is_earliest"]
    assert f.severity == Severity.INFO  # an upper bound of one destination's growth: evidence only
    [fact] = [t for t in f.facts if t.key.endswith("fact.growing")]
    assert "10.0.0.7:5432" in text(fact) and "10m00s" in text(fact)
