"""The diagnosis's trends (app/watchdb.py) from a synthetic watch database
(track/store.py API): what grows per process and per namespace reaches the
diagnosis inputs, and close-wait-leak turns it into evidence."""

from dataclasses import replace

import pytest

from tcplinger.app import watchdb
from tcplinger.diagnose.builder import SocketBuilder, namespace, owners_for
from tcplinger.diagnose.engine import diagnose
from tcplinger.diagnose.finding import Severity
from tcplinger.track.series import BUSIEST_PORT
from tcplinger.track.store import CountRow, SampleInfo, Store

NS = 4026531999
CLOSE_WAIT, TIME_WAIT, ESTABLISHED, LISTEN = 8, 6, 1, 10
NOW = 1_800_000_000.0


def build(path, now=NOW, hours=3.0, step=60.0, tw_per_min=50.0, busiest_per_min=10.0):
    """CLOSE_WAIT of 1234/java +12/min (fd limit 4096), TIME_WAIT
    +``tw_per_min`` against 20000 buckets, ESTABLISHED and LISTEN flat;
    the busiest remote port's ephemeral ports +``busiest_per_min``."""
    with Store(path) as s:
        n = int(hours * 3600 / step)
        for i in range(n + 1):
            t = now - hours * 3600 + i * step
            minutes = i * step / 60
            cw = int(100 + 12 * minutes)
            tw = int(1000 + tw_per_min * minutes)
            s.write_sample(SampleInfo(t, step, cw + tw + 60, 0, "trace"),
                           [CountRow(NS, CLOSE_WAIT, "1234/java", cw),
                            CountRow(NS, CLOSE_WAIT, "", 7),
                            CountRow(NS, TIME_WAIT, "", tw), CountRow(NS, ESTABLISHED, "", 50),
                            CountRow(NS, LISTEN, "", 3)],
                           [(NS, "tcp_max_tw_buckets", 20000), (NS, "ephemeral_ports", 28232),
                            (NS, BUSIEST_PORT, int(20 + busiest_per_min * minutes))],
                           owners=[("1234/java", 1234, "java", 4096, cw + 300)],
                           netns_labels={NS: "host"})


def test_fresh_database_gives_trends(tmp_path):
    build(tmp_path / "w.db")
    w = watchdb.watch_trends(tmp_path / "w.db", now=NOW + 5)
    assert w is not None
    cw = w.by_owner[(1234, CLOSE_WAIT)]
    assert cw.per_minute == pytest.approx(12, rel=0.01)
    assert cw.window == pytest.approx(3 * 3600)
    # open fds at the last sample: 100 + 12*180 + 300 = 2560 of 4096
    assert (cw.limit, cw.current) == (4096, 2560)
    assert cw.ttl == pytest.approx((4096 - 2560) / 12 * 60, rel=0.01)
    assert set(w.by_owner) == {(1234, CLOSE_WAIT)}  # unattributed series are not owners
    mine = w.of(NS)
    tw = mine.by_state[TIME_WAIT]
    assert tw.limit_name == "tcp_max_tw_buckets" and tw.limit == 20000
    assert tw.per_minute == pytest.approx(50, rel=0.01)
    assert tw.ttl == pytest.approx((20000 - 10000) / 50 * 60, rel=0.01)
    conns = mine.connections  # the busiest remote port's series, not every connection's
    assert conns.limit == 28232 and conns.per_minute == pytest.approx(10, rel=0.01)
    assert conns.current == 20 + 10 * 180
    other = w.of(1)  # a namespace the database has no series for: owners only
    assert other.by_state == {} and other.connections is None and other.by_owner is w.by_owner


def test_connections_growing_elsewhere_are_not_port_exhaustion(tmp_path):
    """TIME_WAIT and CLOSE_WAIT grow (every socket of the namespace: both
    ends of loopback connections, a server's accepted ones), the busiest
    remote port's ephemeral ports do not: no projection against the port
    range (the sum of every state was projected before)."""
    build(tmp_path / "w.db", busiest_per_min=0.0)
    w = watchdb.watch_trends(tmp_path / "w.db", now=NOW + 5)
    assert TIME_WAIT in w.of(NS).by_state and w.of(NS).connections is None


def test_window_limits_the_fit(tmp_path):
    build(tmp_path / "w.db")
    w = watchdb.watch_trends(tmp_path / "w.db", now=NOW + 5, window=1800)
    assert w.by_owner[(1234, CLOSE_WAIT)].window == pytest.approx(1800, abs=60)


def test_flat_series_are_not_trends(tmp_path):
    build(tmp_path / "w.db", tw_per_min=0.0)
    w = watchdb.watch_trends(tmp_path / "w.db", now=NOW + 5)
    assert TIME_WAIT not in w.of(NS).by_state


def test_stale_or_missing_database_gives_none(tmp_path):
    assert watchdb.watch_trends(tmp_path / "absent.db", now=NOW) is None
    build(tmp_path / "w.db")
    assert watchdb.watch_trends(tmp_path / "w.db", now=NOW + 3600) is None
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    assert watchdb.watch_trends(tmp_path / "junk.db", now=NOW) is None


def test_database_trend_reaches_the_finding(tmp_path):
    build(tmp_path / "w.db")
    w = watchdb.watch_trends(tmp_path / "w.db", now=NOW + 5)
    b = SocketBuilder()
    b.add("CLOSE_WAIT", "10.0.0.1:8080", "10.0.0.9:40000", inode=5000, recv_q=1,
          last_ack_recv=1000, count=3)
    ns = replace(namespace(b.table(), inode=NS, owners=owners_for(5000, 3, 1234, "java")),
                 trends=w.of(NS))
    [f] = diagnose([ns], rules=["close-wait-leak"])
    g = f.evidence["growing"]
    # no fd usage read now: the database's (2560 of 4096, 2 h 8 min to go)
    assert g["limit"] == 4096 and g["limit_name"] == "RLIMIT_NOFILE"
    assert g["time_to_limit_s"] == pytest.approx(7680, rel=0.01)
    assert f.severity == Severity.WARNING  # within warning_ttl (24 h), beyond critical_ttl (1 h)


def test_state_plots_from_a_fresh_database(tmp_path):
    """The report's HTML plots: the lingering states with samples, and
    tcp_max_tw_buckets beside TIME_WAIT; nothing from a stale database."""
    build(tmp_path / "w.db")
    plots = watchdb.state_plots(tmp_path / "w.db", now=NOW + 5)
    assert [s["label"] for s in plots["series"]] == ["TIME_WAIT", "CLOSE_WAIT"]
    cw = plots["series"][1]
    assert cw["values"][-1] == 100 + 12 * 180 + 7 and len(cw["times"]) == len(cw["values"])
    assert plots["limits"] == [("tcp_max_tw_buckets", 20000)]
    assert watchdb.state_plots(tmp_path / "w.db", now=NOW + 3600) is None
    assert watchdb.state_plots(tmp_path / "absent.db", now=NOW) is None
