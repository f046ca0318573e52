"""conntrack-mismatch: table fullness, and closing sockets older than the
close_wait timeout of a namespace that tracks."""

import pytest

from tcplinger.diagnose.builder import SocketBuilder, namespace, owners_for
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.finding import Confidence, Severity


def run(*ns, **kw):
    return diagnose(list(ns), rules=["conntrack-mismatch"], **kw)


def server(age_ms, *, conntrack=None, name="server", inode=10):
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.98.2.1:9000", "10.98.1.1:59256", inode=500, last_ack_recv=age_ms)
    return namespace(b.table(), name=name, inode=inode, conntrack=conntrack,
                     owners=owners_for(500, 1, 77, "srv"))


def router(count=1, close_wait=5):
    return namespace(SocketBuilder().table(), name="router", inode=20, conntrack=(count, 1000),
                     sysctls={"nf_conntrack_tcp_timeout_close_wait": close_wait})


@pytest.mark.parametrize("age_ms,found", [(5_000, False), (5_001, True)])
def test_older_than_router_timeout(age_ms, found):
    result = [f for f in run(server(age_ms), router()) if f.netns.name == "server"]
    assert bool(result) is found
    if found:
        f = result[0]
        assert f.severity == Severity.WARNING
        assert f.confidence == Confidence.LOW  # another namespace: may be on the path
        assert f.evidence["conntrack_netns"] == "router"
        assert f.evidence["nf_conntrack_tcp_timeout_close_wait"] == 5
        assert [(o.pid, o.comm) for o in f.owners] == [(77, "srv")]


def test_own_namespace_tracking_is_certain():
    ns = server(61_000, conntrack=(3, 1000))
    [f] = run(ns)
    assert f.confidence == Confidence.HIGH and f.evidence["same_namespace"] is True
    assert f.evidence["nf_conntrack_tcp_timeout_close_wait"] == 60


def test_no_tracking_no_finding():
    # Module loaded (counts known) but nothing tracked anywhere.
    assert run(server(600_000, conntrack=(0, 1000))) == []


@pytest.mark.parametrize("count,expected", [(799, None), (800, Severity.WARNING),
                                            (949, Severity.WARNING), (950, Severity.CRITICAL)])
def test_fullness(count, expected):
    ns = namespace(SocketBuilder().table(), conntrack=(count, 1000))
    found = run(ns)
    assert (found[0].severity if found else None) == expected
