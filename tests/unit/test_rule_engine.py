"""The engine over all rules: healthy namespaces stay quiet, findings are
ordered, every sentence exists in both languages, thresholds parse."""

import pytest

from tcplinger.diagnose.builder import SocketBuilder, namespace, owners_for
from tcplinger.diagnose.engine import UnknownRule, diagnose, worst
from tcplinger.diagnose.finding import Severity
from tcplinger.diagnose.metadata import RULES, BadThreshold, merge, parse_override
from tcplinger.diagnose.sysctl_files import SysctlSetting
from tcplinger.i18n import LANGS, Messages, catalog
from tcplinger.model.kernel import SockStat


def healthy():
    b = SocketBuilder()
    b.add("LISTEN", "0.0.0.0:80", inode=1)
    b.add("ESTABLISHED", "10.0.0.1:80", "10.0.0.9:50000", inode=100, count=200,
          last_ack_recv=20, last_data_recv=20, last_data_sent=20)
    b.add("ESTABLISHED", "10.0.0.1:41000", "10.0.0.7:5432", vary="sport", inode=400, count=50,
          timer=2, expires_ms=7_000_000, last_ack_recv=1000, last_data_recv=1000,
          last_data_sent=1000)
    owners = owners_for(1, 1, 5, "nginx") | owners_for(100, 200, 5, "nginx") | \
        owners_for(400, 50, 6, "app")
    return namespace(b.table(), owners=owners, conntrack=(250, 262144),
                     sockstat=SockStat(inuse=251, orphan=0), tcpext={"TCPTimeWaitOverflow": 0})


def test_healthy_namespace_has_no_finding():
    assert diagnose([healthy()]) == []


def everything():
    """A namespace where every rule has something to say."""
    b = SocketBuilder()
    b.add("LISTEN", "0.0.0.0:80", inode=1)
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.9:1000", inode=100, count=20, recv_q=1,
          last_ack_recv=400_000)
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.9:3000", inode=200, count=2, timer=2,
          expires_ms=1000)
    b.add("FIN_WAIT2", "10.0.0.1:50000", "10.0.0.8:443", vary="sport", inode=300, count=12,
          shutdown=2, last_ack_recv=1000)
    b.add("FIN_WAIT2", "10.0.0.1:80", "10.0.0.10:2000", inode=0, timer=3, expires_ms=20_000,
          count=5)
    # orphans towards a peer that never closes: orphan-fin-wait-2 (the ones on :80,
    # a listening port, are keepalive-timeout-fin-wait-2's)
    b.add("FIN_WAIT2", "10.0.0.1:51000", "10.0.0.11:9000", vary="sport", inode=0, timer=3,
          expires_ms=20_000, count=5)
    b.add("TIME_WAIT", "10.0.0.1:40000", "10.0.0.7:5432", vary="sport", inode=0, timer=3,
          expires_ms=10_000, count=1500)
    b.add("FIN_WAIT1", "10.0.0.1:80", "10.0.0.11:3000", inode=0, timer=1, retrans=4, count=3)
    b.add("FIN_WAIT1", "10.0.0.1:80", "10.0.0.11:4000", inode=0, timer=4, send_q=100)
    b.add("LAST_ACK", "10.0.0.1:80", "10.0.0.12:3000", inode=0, timer=1, retrans=3)
    b.add("ESTABLISHED", "10.0.0.1:80", "10.0.0.13:3000", inode=600, last_ack_recv=900_000,
          last_data_recv=900_000, last_data_sent=900_000)
    owners = (owners_for(100, 20, 9, "java") | owners_for(200, 2, 10, "py")
              | owners_for(300, 12, 11, "curl") | owners_for(600, 1, 12, "idle"))
    return namespace(
        b.table(), owners=owners, conntrack=(900, 1000),
        sysctls={"ip_local_port_range": (40000, 41999), "tcp_max_tw_buckets": 1600,
                 "tcp_fin_timeout": 30, "tcp_keepalive_time": 600, "tcp_max_orphans": 20,
                 "tcp_mem": (10, 20, 30)},
        sockstat=SockStat(orphan=9, mem_pages=5),
        tcpext={"TCPTimeWaitOverflow": 5, "TCPAbortOnMemory": 1},
        processes={9: type("P", (), {"open_fds": 950, "soft_limit": 1024})()})


def test_every_rule_fires_and_renders_in_both_languages():
    files = [SysctlSetting("/etc/sysctl.conf", 1, "net.ipv4.tcp_tw_recycle", "1", False)]
    found = diagnose([everything()], sysctl_files=files)
    assert {f.rule for f in found} == {m.id for m in RULES}
    assert [f.severity for f in found] == sorted((f.severity for f in found), reverse=True)
    assert worst(found) == Severity.CRITICAL
    for lang in LANGS:
        msg = Messages(lang)
        for f in found:
            texts = [f.title, f.confidence_reason, *f.facts, *f.cause, *f.lifetime,
                     *(x.text for x in f.fixes)]
            for t in texts:
                assert t.key in catalog(lang), t.key
                assert t.render(msg)


@pytest.mark.parametrize("lang", LANGS)
def test_metadata_messages_exist(lang):
    cat = catalog(lang)
    for meta in RULES:
        for key in (meta.title_key, meta.summary_key, meta.explain_key):
            assert key in cat, key
        for t in meta.thresholds:
            assert meta.threshold_key(t.name) in cat


def test_rule_selection():
    found = diagnose([everything()], rules=["time-wait-pressure"])
    assert {f.rule for f in found} == {"time-wait-pressure"}
    with pytest.raises(UnknownRule):
        diagnose([everything()], rules=["no-such-rule"])


def test_overrides():
    assert parse_override("orphan-limit.warning_ratio=0.1") == ("orphan-limit", "warning_ratio", 0.1)
    for bad in ("orphan-limit=3", "nope.x=1", "orphan-limit.nope=1", "orphan-limit.warning_ratio=x",
                "orphan-limit.warning_ratio=-1"):
        with pytest.raises(BadThreshold):
            parse_override(bad)
    merged = merge({"close-wait-leak": {"warning_count": None}})
    assert merged["close-wait-leak"]["warning_count"] is None
    assert merged["close-wait-leak"]["critical_count"] == 1000
    with pytest.raises(BadThreshold):
        merge({"close-wait-leak": {"bogus": 1}})
