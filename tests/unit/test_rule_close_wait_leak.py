"""close-wait-leak on built tables: one finding per process, thresholds at
their boundaries, Recv-Q reading, keepalive, fd usage."""

import pytest

from tcplinger.diagnose.builder import SocketBuilder, namespace, owners_for
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.finding import Confidence, Severity
from tcplinger.diagnose.inputs import ProcessFacts


def run(ns, **kw):
    return [f for f in diagnose([ns], rules=["close-wait-leak"], **kw)]


def leaking(n, *, recv_q=1, age_ms=15_000, timer=0, pid=4242, comm="java", fds=None):
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:8080", "10.0.0.9:40000", inode=5000, recv_q=recv_q,
          timer=timer, expires_ms=7_000_000 if timer == 2 else 0,
          last_ack_recv=age_ms, count=n)
    b.add("LISTEN", "0.0.0.0:8080", inode=4999)
    owners = owners_for(5000, n, pid, comm)
    procs = {pid: fds} if fds else {}
    return namespace(b.table(), owners=owners, processes=procs)


@pytest.mark.parametrize("n,expected", [(9, Severity.INFO), (10, Severity.WARNING),
                                        (999, Severity.WARNING), (1000, Severity.CRITICAL)])
def test_count_thresholds(n, expected):
    [f] = run(leaking(n))
    assert f.severity == expected
    assert f.count == n
    assert [(o.pid, o.comm) for o in f.owners] == [(4242, "java")]
    assert f.evidence["pid"] == 4242 and f.evidence["close_wait"] == n


@pytest.mark.parametrize("age_ms,expected", [(299_000, Severity.INFO), (300_000, Severity.WARNING)])
def test_age_threshold(age_ms, expected):
    [f] = run(leaking(2, age_ms=age_ms))
    assert f.severity == expected
    assert f.evidence["age"]["oldest_at_least"] is True  # tcp_info: a lower bound


@pytest.mark.parametrize("open_fds,expected", [(899, Severity.INFO), (900, Severity.CRITICAL)])
def test_fd_ratio(open_fds, expected):
    [f] = run(leaking(2, fds=ProcessFacts(open_fds, 1000, 4096)))
    assert f.severity == expected
    assert f.evidence["fds"]["soft_limit"] == 1000


def test_threshold_override():
    [f] = run(leaking(5), thresholds={"close-wait-leak": {"warning_count": 5}})
    assert f.severity == Severity.WARNING


def test_one_finding_per_process_and_unowned():
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.9:1000", inode=100, count=3, recv_q=1)
    b.add("CLOSE_WAIT", "10.0.0.1:81", "10.0.0.9:2000", inode=200, count=2, recv_q=0)
    b.add("CLOSE_WAIT", "10.0.0.1:82", "10.0.0.9:3000", inode=300, count=1)
    owners = owners_for(100, 3, 11, "nginx") | owners_for(200, 2, 22, "python3")
    found = run(namespace(b.table(), owners=owners))
    by_pid = {f.evidence["pid"]: f for f in found}
    assert set(by_pid) == {11, 22, None}
    assert by_pid[11].count == 3 and by_pid[22].count == 2 and by_pid[None].count == 1
    assert by_pid[None].confidence == Confidence.LOW
    assert by_pid[11].evidence["recv_q"] == {"eof_unread": 3, "eof_read": 0, "data_unread": 0}
    assert by_pid[22].evidence["recv_q"]["eof_read"] == 2
    assert by_pid[11].cause[1].key.endswith("cause.eof_unread")
    assert by_pid[22].cause[1].key.endswith("cause.eof_read")


def test_keepalive_split_and_lifetime_text():
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.9:1000", inode=100, count=2, timer=2,
          expires_ms=7000)
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.9:2000", inode=200, count=3)
    ns = namespace(b.table(), owners=owners_for(100, 2, 7, "app") | owners_for(200, 3, 7, "app"),
                   sysctls={"tcp_keepalive_time": 600})
    [f] = run(ns)
    assert f.evidence["keepalive"]["with_so_keepalive"] == 2
    assert f.evidence["keepalive"]["without"] == 3
    keys = [t.key for t in f.lifetime]
    assert keys == ["rule.close-wait-leak.life.forever", "rule.close-wait-leak.life.keepalive",
                    "rule.close-wait-leak.life.no_keepalive"]
    # 600 s idle + 9 probes x 75 s: 1275 s = 21m15s
    assert f.lifetime[1].fields["deadline"] == "21m15s"


def test_other_end_in_same_namespace_is_named():
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "127.0.0.1:8080", "127.0.0.1:40000", inode=100)
    b.add("FIN_WAIT2", "127.0.0.1:40000", "127.0.0.1:8080", inode=200, shutdown=2)
    owners = owners_for(100, 1, 1, "server") | owners_for(200, 1, 2, "client")
    [f] = run(namespace(b.table(), owners=owners))
    assert f.evidence["other_end"] == [{"netns": "test", "state": "FIN_WAIT2", "pid": 2,
                                        "comm": "client", "orphan": False, "command": "client",
                                        "count": 1}]


def test_no_close_wait_no_finding():
    b = SocketBuilder()
    b.add("ESTABLISHED", "10.0.0.1:80", "10.0.0.9:1000", count=50)
    assert run(namespace(b.table(), owners={})) == []


def test_sample_is_capped_and_oldest_first():
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.9:1000", inode=100, count=30, last_ack_recv=5)
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.9:5000", inode=200, count=1, last_ack_recv=99_000)
    ns = namespace(b.table(), owners=owners_for(100, 30, 1, "a") | owners_for(200, 1, 1, "a"))
    [f] = run(ns, sample_limit=5)
    assert len(f.sockets.table) == 5 and f.sockets.total == 31
    assert f.sockets.table.rows["dport"][0] == 5000
    assert f.sockets.ages[0].seconds == 99.0


def test_socket_shared_by_two_processes_counts_for_both():
    from tcplinger.model.socket import Owner
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.9:1000", inode=100, count=3)
    owners = owners_for(100, 3, 1, "parent")
    owners[100] = (Owner(pid=1, comm="parent", fd=3), Owner(pid=1, comm="parent", fd=9),
                   Owner(pid=2, comm="child", fd=3))
    found = {f.evidence["pid"]: f.count for f in run(namespace(b.table(), owners=owners))}
    assert found == {1: 3, 2: 1}


@pytest.mark.parametrize("age_ms,expected", [(0, Severity.INFO), (9_999, Severity.INFO),
                                            (10_000, Severity.WARNING)])
def test_min_age_young_sockets_accuse_nobody(age_ms, expected):
    """Under ab, 8 CLOSE_WAIT aged ≥0.0 s were called a leak: sockets not
    known to be min_age (10 s) old are at most INFO, whatever their count."""
    [f] = run(leaking(50, age_ms=age_ms))
    assert f.severity == expected
    assert f.evidence["older_than_min_age"] == (50 if age_ms >= 10_000 else 0)
    if expected == Severity.INFO:
        assert f.confidence == Confidence.LOW


def test_min_age_override():
    [f] = run(leaking(50, age_ms=3_000), thresholds={"close-wait-leak": {"min_age": 2}})
    assert f.severity == Severity.WARNING
    [f] = run(leaking(50, age_ms=3_000), thresholds={"close-wait-leak": {"min_age": None}})
    assert f.severity == Severity.WARNING


def test_sides_name_the_service_never_ephemeral_ports():
    """A client's CLOSE_WAIT (httpx.Client per job against Node.js :9000)
    are named by the address:port it connected to; a server's by its
    listening port. "Local ports: 33836 (1), 33838 (1), ..." said nothing."""
    from tcplinger.i18n import Messages
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "127.0.0.1:33836", "127.0.0.1:9000", vary="sport", inode=5000,
          recv_q=1, last_ack_recv=15_000, count=30)
    b.add("CLOSE_WAIT", "10.0.0.1:8080", "10.0.0.9:40000", inode=6000, recv_q=1,
          last_ack_recv=15_000, count=3)
    b.add("LISTEN", "0.0.0.0:8080", inode=4999)
    owners = owners_for(5000, 30, 7, "python3") | owners_for(6000, 3, 7, "python3")
    [f] = run(namespace(b.table(), owners=owners))
    assert f.evidence["destinations"] == [{"address": "127.0.0.1", "port": 9000, "count": 30}]
    assert f.evidence["local_ports"] == [{"port": 8080, "count": 3}]
    assert f.evidence["peers"] == [{"address": "10.0.0.9", "count": 3}]
    text = " ".join(t.render(Messages("en")) for t in f.facts)
    assert "Connections it opened to 127.0.0.1:9000 (30)." in text
    assert "Connections to its listening ports 8080 (3); peers 10.0.0.9 (3)." in text
    assert "33836" not in text
