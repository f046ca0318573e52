"""keepalive-vs-idle-timeout: idle ESTABLISHED sockets from tcp_info."""

import pytest

from tcplinger.diagnose.builder import SocketBuilder, namespace, owners_for
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.finding import Severity


def run(ns, **kw):
    return diagnose([ns], rules=["keepalive-vs-idle-timeout"], **kw)


def idle(ms, *, timer=0, expires_ms=0, count=1):
    b = SocketBuilder()
    b.add("ESTABLISHED", "10.0.0.1:50000", "10.0.0.9:5432", inode=300, timer=timer,
          expires_ms=expires_ms, last_ack_recv=ms, last_data_recv=ms, last_data_sent=ms,
          count=count)
    return namespace(b.table(), owners=owners_for(300, count, 8, "worker"))


@pytest.mark.parametrize("ms,found", [(239_999, False), (240_000, True)])
def test_idle_threshold(ms, found):
    result = run(idle(ms))
    assert bool(result) is found
    if found:
        assert result[0].severity == Severity.INFO  # a risk, not a fault


def test_warning_count_when_set():
    [f] = run(idle(400_000, count=3),
              thresholds={"keepalive-vs-idle-timeout": {"warning_count": 3}})
    assert f.severity == Severity.WARNING


def test_keepalive_sockets_named_and_late_ones_counted():
    b = SocketBuilder()
    # SO_KEEPALIVE with the first probe due in 7000 s: silent far past 350 s.
    b.add("ESTABLISHED", "10.0.0.1:50000", "10.0.0.9:5432", inode=1, timer=2,
          expires_ms=7_000_000, last_ack_recv=300_000, last_data_recv=300_000,
          last_data_sent=300_000)
    # SO_KEEPALIVE with TCP_KEEPIDLE short: probe in 10 s (idle 300 s + 10 s < ... no: > 240)
    b.add("ESTABLISHED", "10.0.0.1:50001", "10.0.0.9:5432", inode=2, timer=0,
          last_ack_recv=300_000, last_data_recv=300_000, last_data_sent=300_000)
    [f] = run(namespace(b.table(), owners={}))
    assert f.evidence["with_so_keepalive"] == 1 and f.evidence["without_so_keepalive"] == 1
    assert f.evidence["keepalive_too_late"] == 1
    assert [b["name"] for b in f.evidence["middleboxes_exceeded"]] == [
        "Azure Load Balancer (default)"]


def test_any_recent_packet_means_not_idle():
    b = SocketBuilder()
    b.add("ESTABLISHED", "10.0.0.1:50000", "10.0.0.9:5432", last_ack_recv=5_000,
          last_data_recv=900_000, last_data_sent=900_000)
    assert run(namespace(b.table())) == []


def test_without_tcp_info_silent():
    b = SocketBuilder()
    b.add("ESTABLISHED", "10.0.0.1:50000", "10.0.0.9:5432", count=10)
    assert run(namespace(b.table())) == []
