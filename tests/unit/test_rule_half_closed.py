"""half-closed-fin-wait-2: owned FIN_WAIT2, never the orphans."""

import pytest

from tcplinger.diagnose.builder import SocketBuilder, namespace, owners_for
from tcplinger.diagnose.engine import diagnose
from tcplinger.i18n import Messages
from tcplinger.diagnose.finding import Severity


def run(ns, **kw):
    return diagnose([ns], rules=["half-closed-fin-wait-2"], **kw)


def half_closed(n, age_ms=15_000):
    b = SocketBuilder()
    b.add("FIN_WAIT2", "10.0.0.1:50000", "10.0.0.9:443", vary="sport", inode=700,
          shutdown=2, last_ack_recv=age_ms, count=n)
    b.add("FIN_WAIT2", "10.0.0.1:40000", "10.0.0.9:443", vary="sport", inode=0, timer=3,
          expires_ms=30_000, count=4)  # orphans: another rule's
    return namespace(b.table(), owners=owners_for(700, n, 99, "curl"),
                     sysctls={"tcp_fin_timeout": 5})


@pytest.mark.parametrize("n,expected", [(9, Severity.INFO), (10, Severity.WARNING),
                                        (999, Severity.WARNING), (1000, Severity.CRITICAL)])
def test_count_thresholds(n, expected):
    [f] = run(half_closed(n))
    assert f.severity == expected and f.count == n
    assert f.evidence["shutdown"]["send"] == n
    assert f.evidence["tcp_fin_timeout"] == 5
    assert [(o.pid, o.comm) for o in f.owners] == [(99, "curl")]


@pytest.mark.parametrize("age_ms,expected", [(299_999, Severity.INFO), (300_000, Severity.WARNING)])
def test_age_threshold(age_ms, expected):
    [f] = run(half_closed(1, age_ms))
    assert f.severity == expected


def test_fin_timeout_said_not_to_apply():
    [f] = run(half_closed(1))
    assert any(t.key == "rule.half-closed-fin-wait-2.fact.fin_timeout" for t in f.facts)
    assert f.lifetime[0].fields["orphan_life"] == "5.0s"


def test_peer_close_wait_is_the_cause():
    b = SocketBuilder()
    b.add("FIN_WAIT2", "127.0.0.1:50000", "127.0.0.1:9000", inode=1, shutdown=2)
    b.add("CLOSE_WAIT", "127.0.0.1:9000", "127.0.0.1:50000", inode=2)
    owners = owners_for(1, 1, 10, "client") | owners_for(2, 1, 20, "leaky")
    [f] = run(namespace(b.table(), owners=owners))
    assert f.cause[1].key == "rule.half-closed-fin-wait-2.cause.peer_leak"
    assert "held by leaky (pid 20): that side never closes" in f.cause[1].render(Messages("en"))


def test_lingering_close_is_not_a_warning():
    """Apache holds 20 half-closed FIN_WAIT2 for its lingering close (~2 s,
    measured 2.05 s, docs/real-software.md): INFO, not an accusation."""
    [f] = run(half_closed(20, age_ms=2_000))
    assert f.severity == Severity.INFO
    assert f.evidence["older_than_min_age"] == 0
    [f] = run(half_closed(20, age_ms=10_000))
    assert f.severity == Severity.WARNING
