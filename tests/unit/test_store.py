"""The watch database: samples, live ages by difference, retention and
downsampling, read-only access."""

import sqlite3

import numpy as np
import pytest

from tcplinger.model.socket import AgeSource
from tcplinger.track.paths import default_path
from tcplinger.track.store import CountRow, SampleInfo, Store
from tcplinger.track.events import Transition


def sample(store, t, n_cw, owner="42/java", live=None):
    store.write_sample(SampleInfo(t, 10.0, n_cw + 5, 0, "trace"),
                       [CountRow(1, 8, owner, n_cw), CountRow(1, 1, "", 5)],
                       [(1, "tcp_max_tw_buckets", 4096)], live=live)


def test_sample_roundtrip_and_series(tmp_path):
    with Store(tmp_path / "w.db") as s:
        for i in range(5):
            sample(s, 1000.0 + 10 * i, i)
        assert s.last_sample().t == 1040.0
        by_state = s.series(0.0, by="state")
        assert by_state[8][1].tolist() == [0, 1, 2, 3, 4]
        assert by_state[1][1].tolist() == [5] * 5
        assert s.series(0.0, by="owner", states=[8])["42/java"][1].tolist() == [0, 1, 2, 3, 4]
        assert s.kernel_latest() == {(1, "tcp_max_tw_buckets"): 4096}
    assert (tmp_path / "w.db").exists()
    ro = Store(tmp_path / "w.db", readonly=True)
    assert ro.last_sample().sockets == 9
    with pytest.raises(sqlite3.OperationalError):
        ro.db.execute("DELETE FROM samples")
    assert ro.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_readonly_missing_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        Store(tmp_path / "none.db", readonly=True)


def test_freshness(tmp_path):
    with Store(tmp_path / "w.db") as s:
        assert not s.is_fresh(1000.0)
        sample(s, 1000.0, 1)
        assert s.is_fresh(1030.0) and not s.is_fresh(1040.0)


def live(cookies, states, since):
    n = len(cookies)
    return {7: (np.array(cookies, np.uint64), np.array(states, np.uint8),
                np.array(since, float), np.full(n, 3, np.int8), np.zeros(n, bool))}


def test_live_is_written_by_difference(tmp_path):
    with Store(tmp_path / "w.db") as s:
        big = (1 << 64) - 5  # cookies use all 64 bits
        sample(s, 1.0, 0, live=live([1, 2, big], [8, 8, 6], [0.5, 0.6, 0.7]))
        changes = s.db.total_changes
        sample(s, 2.0, 0, live=live([1, 2, big], [8, 8, 6], [0.5, 0.6, 0.7]))
        # the sample and its two counts; the kernel value did not change
        # (same 5-minute bucket) and nothing changed in live
        assert s.db.total_changes - changes == 3
        sample(s, 3.0, 0, live=live([2, big, 9], [9, 6, 8], [2.5, 0.7, 2.9]))
        rows = s.db.execute("SELECT cookie, state, since FROM live ORDER BY since").fetchall()
        assert [(c & (1 << 64) - 1, st, t) for c, st, t in rows] == [
            (big, 6, 0.7), (2, 9, 2.5), (9, 8, 2.9)]
        since, code, low = s.live_since(7, np.array([big, 2, 9, 4], np.uint64),
                                        np.array([6, 8, 8, 8]))
        assert since[0] == 0.7 and np.isnan(since[1]) and since[2] == 2.9 and np.isnan(since[3])
        assert code.tolist() == [3, 0, 3, 0]


def test_events_and_correction(tmp_path):
    tr = Transition(1, 5, 1, 8, 10.0, AgeSource.FIRST_SEEN, 10.0, True)
    fix = Transition(1, 5, 1, 8, 9.8, AgeSource.TRACE, 9.8, True, corrects=True)
    gone = Transition(1, 5, 8, None, 30.0, AgeSource.TRACE, 20.2, False)
    with Store(tmp_path / "w.db") as s:
        s.write_sample(SampleInfo(10.0, 10, 1, 0, "trace"), [], events=[tr])
        s.write_sample(SampleInfo(20.0, 10, 1, 0, "trace"), [], events=[fix])
        s.write_sample(SampleInfo(30.0, 10, 0, 0, "trace"), [], events=[gone])
        evs = s.events(cookie=5)
    assert [(e["old"], e["new"], e["t"], e["source"]) for e in evs] == [
        (1, 8, 9.8, "trace"), (8, None, 30.0, "trace")]


def test_retention_downsamples_then_drops(tmp_path):
    day = 86400.0
    with Store(tmp_path / "w.db") as s:
        # 10-second samples over 3 days; CLOSE_WAIT = minute of the day
        t0 = 1_000_000_200.0 - 1_000_000_200.0 % 300
        for i in range(0, 3 * 8640):
            t = t0 + 10 * i
            s.write_sample(SampleInfo(t, 10.0, 1, 0, "trace"), [CountRow(1, 8, "", i % 60)],
                           [(1, "tcp_max_tw_buckets", 100 + i % 2)])
        end = t0 + 3 * day
        s.retain(end, raw_keep=day, keep=2 * day)
        res = dict(s.db.execute("SELECT res, COUNT(*) FROM counts GROUP BY res").fetchall())
        # one day raw (8640 samples), one more day as 5-minute buckets (288)
        assert res[0] == pytest.approx(8640, abs=30)
        assert res[300] == pytest.approx(288, abs=2)
        # the first kept bucket holds i = 0..29 or 30..59: mean and max of those
        n, n_max = s.db.execute("SELECT n, n_max FROM counts WHERE res=300 ORDER BY t"
                                " LIMIT 1").fetchone()
        assert (n, n_max) in ((14.5, 29), (44.5, 59))
        kv = s.db.execute("SELECT value FROM kernel WHERE res=300 LIMIT 1").fetchone()[0]
        assert kv == pytest.approx(100.5)
        oldest = s.db.execute("SELECT MIN(t) FROM counts").fetchone()[0]
        assert oldest >= end - 2 * day - 300
        # series reads both resolutions in one time axis
        ser = s.series(0.0, by="state")[8]
        assert np.all(np.diff(ser[0]) > 0)


def test_default_paths():
    assert str(default_path(0, {})) == "/var/lib/tcplinger/watch.db"
    assert str(default_path(1000, {"HOME": "/h"})) == "/h/.local/state/tcplinger/watch.db"


def test_gone_namespace_loses_its_live_rows(tmp_path):
    with Store(tmp_path / "w.db") as s:
        sample(s, 1.0, 0, live=live([1, 2], [8, 8], [0.5, 0.6]))
        s.write_sample(SampleInfo(2.0, 10.0, 0, 0, "trace"), [], gone_netns=[7])
        assert s.db.execute("SELECT COUNT(*) FROM live").fetchone()[0] == 0


def test_counter_series_carries_unchanged_values_forward(tmp_path):
    """Rows are written only when a value changes: the series fills them in
    at every sample, from a row before the window too."""
    with Store(tmp_path / "w.db") as s:
        tw = [100, 100, 160, 160, 160, 220]
        for i, v in enumerate(tw):
            s.write_sample(SampleInfo(1000.0 + 10 * i, 10.0, 1, 0, "trace"), [],
                           [(1, "tcpext_TW", v), (1, "tcpext_TCPTimeWaitOverflow", 0)])
        times, cols = s.counter_series(1015.0, ["tcpext_TW", "tcpext_TCPTimeWaitOverflow"])[1]
        assert times.tolist() == [1020.0, 1030.0, 1040.0, 1050.0]
        assert cols["tcpext_TW"].tolist() == [160, 160, 160, 220]
        assert cols["tcpext_TCPTimeWaitOverflow"].tolist() == [0, 0, 0, 0]


def test_active_close_rate_from_the_watch_database(tmp_path):
    """nginx under ab with the table full (docs/real-software.md): TW +232
    and TCPTimeWaitOverflow +16215 in 3 s; watch samples every 10 s."""
    from tcplinger.app.watchdb import rates_of
    with Store(tmp_path / "w.db") as s:
        for i in range(7):
            t = 1000.0 + 10 * i
            s.write_sample(SampleInfo(t, 10.0, 512, 0, "trace"), [CountRow(1, 6, "-", 512)],
                           [(1, "tcpext_TW", 10_000 + 770 * i),
                            (1, "tcpext_TCPTimeWaitOverflow", 50_000 + 53_000 * i)])
        rate = rates_of(s, 1000.0)[1]["active_close"]
    assert rate.source == "watch" and rate.window_s == 60.0
    assert rate.per_s == pytest.approx(5377.0)
