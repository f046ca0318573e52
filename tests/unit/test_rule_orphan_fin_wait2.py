"""orphan-fin-wait-2: lifetime by the kernel's two phases, time left from
timers, close rate, anomalies."""

import pytest

from tcplinger.diagnose.builder import SocketBuilder, namespace
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.finding import Severity


def run(ns, **kw):
    return diagnose([ns], rules=["orphan-fin-wait-2"], **kw)


def orphans(n, *, fin=60, left_ms=30_000, full=False, timer_ms=None):
    b = SocketBuilder()
    if full:
        b.add("FIN_WAIT2", "10.0.0.1:80", "10.0.0.9:1000", inode=0, timer=2, timewait=False,
              expires_ms=timer_ms if timer_ms is not None else left_ms, count=n)
    else:
        b.add("FIN_WAIT2", "10.0.0.1:80", "10.0.0.9:1000", inode=0, timer=3,
              expires_ms=timer_ms if timer_ms is not None else left_ms, count=n)
    return namespace(b.table(), sysctls={"tcp_fin_timeout": fin})


@pytest.mark.parametrize("n,expected", [(999, Severity.INFO), (1000, Severity.WARNING),
                                        (49_999, Severity.WARNING), (50_000, Severity.CRITICAL)])
def test_count_thresholds(n, expected):
    [f] = run(orphans(n))
    assert f.severity == expected and f.count == n


def test_short_fin_timeout_lifetime_and_time_left():
    [f] = run(orphans(10, fin=5, left_ms=2_000))
    assert f.evidence["lifetime_s"] == 5.0
    assert f.evidence["phases_s"] == {"full": 0.0, "minisocket": 5.0}
    assert f.evidence["time_left_s"] == {"min": 2.0, "median": 2.0, "max": 2.0}
    # no rate from count ÷ lifetime (a burst is not a rate): diagnose.rates
    assert "implied_close_rate_per_s" not in f.evidence
    assert f.lifetime[0].key == "rule.orphan-fin-wait-2.life.short"
    assert f.sockets.ages[0].seconds == 3.0  # 5 s minus 2 s left


def test_long_fin_timeout_two_phases():
    # T = 70: 10 s as a full socket, then 10 s as a minisocket (measured).
    b = SocketBuilder()
    b.add("FIN_WAIT2", "10.0.0.1:80", "10.0.0.9:1000", inode=0, timer=2, timewait=False,
          expires_ms=4_000)
    b.add("FIN_WAIT2", "10.0.0.1:80", "10.0.0.9:2000", inode=0, timer=3, expires_ms=9_000)
    [f] = run(namespace(b.table(), sysctls={"tcp_fin_timeout": 70}))
    assert f.evidence["lifetime_s"] == 20.0
    assert f.evidence["time_left_s"]["max"] == 14.0  # 4 s + the 10 s minisocket phase
    assert f.evidence["time_left_s"]["min"] == 9.0
    assert f.lifetime[0].key == "rule.orphan-fin-wait-2.life.long"
    assert f.evidence["timer_longer_than_fin_timeout"] == 0


@pytest.mark.parametrize("timer_ms,anomaly", [(5_000, False), (6_000, False), (6_001, True)])
def test_timer_longer_than_setting_is_an_anomaly(timer_ms, anomaly):
    # fin 5 s plus 1 s of slack for rounding: more left cannot come from the sysctl.
    [f] = run(orphans(1, fin=5, timer_ms=timer_ms))
    assert (f.evidence["timer_longer_than_fin_timeout"] == 1) is anomaly


def test_full_socket_below_60_is_an_anomaly():
    [f] = run(orphans(2, fin=30, full=True, timer_ms=3000))
    assert f.evidence["full_orphans_below_60s"] == 2
    assert any(t.key == "rule.orphan-fin-wait-2.anomaly.full" for t in f.facts)


def test_owned_fin_wait2_is_not_an_orphan():
    b = SocketBuilder()
    b.add("FIN_WAIT2", "10.0.0.1:80", "10.0.0.9:1000", inode=55, shutdown=2)
    assert run(namespace(b.table(), owners={})) == []
