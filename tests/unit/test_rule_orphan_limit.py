"""orphan-limit: host-wide, once, at 1/4 and 1/2 of tcp_max_orphans."""

import pytest

from tcplinger.diagnose.builder import SocketBuilder, namespace
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.finding import Severity
from tcplinger.model.kernel import SockStat


def run(*ns, **kw):
    return diagnose(list(ns), rules=["orphan-limit"], **kw)


def ns_with(orphans, *, maximum=1000, name="host", **kw):
    b = SocketBuilder()
    b.add("FIN_WAIT1", "10.0.0.1:80", "10.0.0.9:1000", inode=0, timer=1, retrans=3, count=5)
    sysctls = {"tcp_max_orphans": maximum, "tcp_mem": (1000, 2000, 3000)}
    if maximum is None:
        sysctls["tcp_max_orphans"] = None
    return namespace(b.table(), name=name, sysctls=sysctls,
                     sockstat=SockStat(orphan=orphans, mem_pages=10), **kw)


@pytest.mark.parametrize("orphans,expected", [(249, None), (250, Severity.WARNING),
                                              (499, Severity.WARNING), (500, Severity.CRITICAL)])
def test_ratio_thresholds(orphans, expected):
    found = run(ns_with(orphans))
    assert (found[0].severity if found else None) == expected
    if found:
        assert found[0].evidence["host_wide"] is True
        assert found[0].evidence["orphans_by_state_seen"] == {"FIN_WAIT1": 5}


def test_once_for_all_namespaces_and_limit_from_the_initial_namespace():
    # Child namespaces have no tcp_max_orphans (global sysctl): the value
    # comes from whichever namespace has it, and the finding is made once.
    child = ns_with(300, maximum=None, name="child", inode=2)
    host = ns_with(300, name="host", inode=1)
    found = run(child, host)
    assert len(found) == 1 and found[0].evidence["tcp_max_orphans"] == 1000


def test_abort_on_memory_rising_is_critical():
    ns = ns_with(10, tcpext={"TCPAbortOnMemory": 7}, previous_tcpext={"TCPAbortOnMemory": 5},
                 interval=1.0)
    [f] = run(ns)
    assert f.severity == Severity.CRITICAL
    assert f.evidence["TCPAbortOnMemory_delta"] == {"host": 2}


def test_abort_in_the_past_is_reported():
    [f] = run(ns_with(10, tcpext={"TCPAbortOnMemory": 7}))
    assert f.severity == Severity.INFO and f.evidence["TCPAbortOnMemory"] == {"host": 7}


def test_memory_pressure():
    b = SocketBuilder()
    ns = namespace(b.table(), sysctls={"tcp_mem": (100, 200, 300), "tcp_max_orphans": 1000},
                   sockstat=SockStat(orphan=1, mem_pages=250))
    [f] = run(ns)
    assert f.evidence["memory"] == "pressure" and f.severity == Severity.WARNING
