"""sysctl-folklore: settings that do not do what they are set for."""

from tcplinger.diagnose.builder import SocketBuilder, namespace
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.finding import Severity
from tcplinger.diagnose.sysctl_files import SysctlSetting, parse


def run(*ns, **kw):
    return diagnose(list(ns), rules=["sysctl-folklore"], **kw)


def items(found):
    return sorted(f.evidence["item"] for f in found)


def test_fin_timeout_against_time_wait_boundary():
    b = SocketBuilder()
    b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.9:1", inode=0, timer=3, count=99)
    assert run(namespace(b.table(), sysctls={"tcp_fin_timeout": 10})) == []
    b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.8:1", inode=0, timer=3)
    found = run(namespace(b.table(), sysctls={"tcp_fin_timeout": 10}))
    assert items(found) == ["fin_timeout_vs_time_wait"]
    assert all(f.severity == Severity.INFO for f in found)
    # The default value is no folklore.
    assert run(namespace(b.table())) == []


def test_fin_timeout_above_60():
    [f] = run(namespace(SocketBuilder().table(), sysctls={"tcp_fin_timeout": 90}))
    assert f.evidence == {"item": "fin_timeout_above_60", "tcp_fin_timeout": 90,
                          "lifetime_s": 60.0}


def test_keepalive_against_close_wait_without_so_keepalive():
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.9:1", count=2)
    b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.9:9", timer=2, expires_ms=100)
    [f] = run(namespace(b.table(), sysctls={"tcp_keepalive_time": 60}))
    assert f.evidence["close_wait_without_keepalive"] == 2
    assert run(namespace(b.table())) == []  # default 7200: not lowered


def test_tw_reuse_on_a_server():
    b = SocketBuilder()
    b.add("LISTEN", "0.0.0.0:80")
    b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.9:1", inode=0, timer=3, count=150)
    assert items(run(namespace(b.table(), sysctls={"tcp_tw_reuse": 1}))) == ["tw_reuse_incoming"]
    assert run(namespace(b.table(), sysctls={"tcp_tw_reuse": 2})) == []


def test_removed_and_legacy_keys_in_files():
    settings = [SysctlSetting(s.path, s.line, s.key, s.value, exists=False)
                for s in parse("/etc/sysctl.d/99-old.conf",
                               "net.ipv4.tcp_tw_recycle = 1\nnet.ipv4.tcp_tw_timeout=10\n")]
    settings.append(SysctlSetting("/etc/sysctl.conf", 3, "net.ipv4.tcp_low_latency", "1", True))
    settings.append(SysctlSetting("/etc/sysctl.conf", 4, "net.ipv4.tcp_fin_timeout", "30", True))
    found = run(namespace(SocketBuilder().table()), sysctl_files=settings)
    assert items(found) == ["legacy_key", "removed_key", "removed_key"]
    recycle = next(f for f in found if f.evidence.get("key") == "net.ipv4.tcp_tw_recycle")
    assert recycle.evidence["removed_in"] == "4.12" and recycle.evidence["line"] == 1
