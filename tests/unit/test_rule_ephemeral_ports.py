"""ephemeral-port-exhaustion: per (local address, destination) group."""

import pytest

from tcplinger.diagnose.builder import SocketBuilder, namespace
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.finding import Severity

RANGE = (40000, 40999)  # 1000 ports


def run(ns, **kw):
    return diagnose([ns], rules=["ephemeral-port-exhaustion"], **kw)


def clients(n, *, state="TIME_WAIT", dest="10.0.0.7:5432", start=40000):
    b = SocketBuilder()
    b.add(state, f"10.0.0.1:{start}", dest, vary="sport", inode=0 if state == "TIME_WAIT" else None,
          timer=3 if state == "TIME_WAIT" else 0, count=n)
    return b


@pytest.mark.parametrize("n,expected", [(199, None), (200, Severity.INFO), (499, Severity.INFO),
                                        (500, Severity.WARNING), (899, Severity.WARNING),
                                        (900, Severity.CRITICAL)])
def test_thresholds(n, expected):
    found = run(namespace(clients(n).table(), sysctls={"ip_local_port_range": RANGE}))
    assert (found[0].severity if found else None) == expected
    if found:
        g = found[0].evidence["groups"][0]
        assert g["sockets"] == n and g["remote_address"] == "10.0.0.7" and g["remote_port"] == 5432
        assert g["states"] == {"TIME_WAIT": n}


def test_groups_are_per_destination():
    b = clients(300, dest="10.0.0.7:5432")
    b.add("ESTABLISHED", "10.0.0.1:40300", "10.0.0.8:6379", vary="sport", count=300)
    [f] = run(namespace(b.table(), sysctls={"ip_local_port_range": RANGE}))
    assert f.count == 300 and f.severity == Severity.INFO
    assert {g["remote_port"] for g in f.evidence["groups"]} == {5432, 6379}


def test_listening_ports_are_not_ephemeral():
    b = SocketBuilder()
    b.add("LISTEN", "0.0.0.0:40500")
    b.add("ESTABLISHED", "10.0.0.1:40500", "10.0.0.7:1000", count=600)  # accepted connections
    assert run(namespace(b.table(), sysctls={"ip_local_port_range": RANGE})) == []


def test_ports_outside_the_range_do_not_count():
    found = run(namespace(clients(600, start=20000).table(),
                          sysctls={"ip_local_port_range": RANGE}))
    assert found == []
