"""fin-wait-1-stuck and last-ack-stuck: retransmitting FINs and zero windows."""

import pytest

from tcplinger.diagnose.builder import SocketBuilder, namespace, owners_for
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.finding import Severity


def run(ns, rule="fin-wait-1-stuck", **kw):
    return diagnose([ns], rules=[rule], **kw)


@pytest.mark.parametrize("retrans,stuck", [(1, False), (2, True)])
def test_min_retransmits(retrans, stuck):
    b = SocketBuilder()
    b.add("FIN_WAIT1", "10.0.0.1:80", "10.0.0.9:1000", inode=0, timer=1, retrans=retrans,
          expires_ms=800)
    assert bool(run(namespace(b.table()))) is stuck


@pytest.mark.parametrize("n,expected", [(9, Severity.INFO), (10, Severity.WARNING),
                                        (999, Severity.WARNING), (1000, Severity.CRITICAL)])
def test_count_thresholds(n, expected):
    b = SocketBuilder()
    b.add("FIN_WAIT1", "10.0.0.1:80", "10.0.0.9:1000", inode=0, timer=1, retrans=3, count=n)
    [f] = run(namespace(b.table()))
    assert f.severity == expected and f.count == n


def test_orphan_deadline_from_orphan_retries():
    b = SocketBuilder()
    b.add("FIN_WAIT1", "10.0.0.1:80", "10.0.0.9:1000", inode=0, timer=1, retrans=2,
          rto_us=204_000)
    [f] = run(namespace(b.table(), sysctls={"tcp_orphan_retries": 2}))
    assert f.evidence["effective_orphan_retries"] == 2
    # 4 firings at 0.204, 0.612, 1.428, 3.06 s: 3.06 minus the 0.612 s spent.
    assert f.evidence["time_left_s"]["min"] == pytest.approx(2.448, abs=0.01)
    assert f.lifetime[0].key == "rule.common.unacked.life.orphan"


def test_default_orphan_retries_mean_eight():
    b = SocketBuilder()
    b.add("LAST_ACK", "10.0.0.1:80", "10.0.0.9:1000", inode=0, timer=1, retrans=4)
    [f] = run(namespace(b.table()), rule="last-ack-stuck")
    assert f.evidence["effective_orphan_retries"] == 8
    assert f.rule == "last-ack-stuck"


def test_owned_uses_retries2_and_names_owner():
    b = SocketBuilder()
    b.add("FIN_WAIT1", "10.0.0.1:50000", "10.0.0.9:443", inode=900, timer=1, retrans=5,
          shutdown=2)
    [f] = run(namespace(b.table(), owners=owners_for(900, 1, 31, "uploader")))
    assert f.evidence["owned"] == 1 and f.evidence["orphans"] == 0
    assert [(o.pid, o.comm) for o in f.owners] == [(31, "uploader")]
    assert f.lifetime[0].key == "rule.common.unacked.life.owned"
    assert any(x.text.key.endswith("fix.user_timeout") for x in f.fixes)


def test_zero_window_probe_is_stuck_whatever_the_count():
    b = SocketBuilder()
    b.add("FIN_WAIT1", "127.0.0.1:43598", "127.0.0.1:43039", inode=0, timer=4, retrans=0,
          send_q=8193)
    [f] = run(namespace(b.table()))
    assert f.evidence["zero_window"] == 1 and f.evidence["send_q_bytes"] == 8193
    assert any(t.key == "rule.common.unacked.cause.zero_window" for t in f.cause)


def test_normal_fin_wait1_is_no_finding():
    b = SocketBuilder()
    b.add("FIN_WAIT1", "10.0.0.1:80", "10.0.0.9:1000", inode=0, timer=1, retrans=0, count=50)
    assert run(namespace(b.table())) == []
