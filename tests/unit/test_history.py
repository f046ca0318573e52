"""`tcplinger history` on a synthetic watch database: sparklines, growth
rate, time to the owner's fd limit, TIME_WAIT against its buckets."""

import functools
import json
import time

import pytest

from tcplinger.track.store import CountRow, SampleInfo, Store
from tcplinger.ui.sparkline import sparkline


@pytest.fixture(scope="module")
def cli(cli):
    """A 100-column terminal: the sparklines' width."""
    return functools.partial(cli, width=100)


def build(path, now, hours=3.0, step=60.0):
    """CLOSE_WAIT of 1234/java grows 12/min; TIME_WAIT flat; ESTABLISHED flat."""
    with Store(path) as s:
        n = int(hours * 3600 / step)
        for i in range(n + 1):
            t = now - hours * 3600 + i * step
            cw = 100 + 12 * i * step / 60
            s.write_sample(SampleInfo(t, step, int(cw) + 50, 0, "trace"),
                           [CountRow(1, 8, "1234/java", int(cw)), CountRow(1, 6, "", 40),
                            CountRow(1, 1, "", 10)],
                           [(1, "tcp_max_tw_buckets", 262144), (1, "ephemeral_ports", 28232)],
                           owners=[("1234/java", 1234, "java", 65536, int(cw) + 300)],
                           netns_labels={1: "host"})


def test_growth_rate_and_time_to_fd_limit(cli, tmp_path):
    now = time.time()
    build(tmp_path / "w.db", now)
    code, out, err = cli("history", "--db", str(tmp_path / "w.db"), "--since", "4h", "--json")
    assert code == 0, err
    doc = json.loads(out)
    (g,) = [g for g in doc["growing"] if g["owner"] == "1234/java"]
    assert g["per_minute"] == pytest.approx(12, rel=0.01)
    assert g["limit_name"] == "fd limit" and g["limit"] == 65536
    # open fds now: 100 + 12*180 + 300 = 2560 -> (65536 - 2560) / 12 per minute
    assert g["time_to_limit_s"] == pytest.approx((65536 - 2560) / 12 * 60, rel=0.01)
    names = {s["key"]: s for s in doc["series"]}
    assert names["CLOSE_WAIT"]["growing"] and not names["TIME_WAIT"]["growing"]


def test_text_output_has_sparklines_and_the_sentence(cli, tmp_path):
    now = time.time()
    build(tmp_path / "w.db", now)
    code, out, _ = cli("history", "--db", str(tmp_path / "w.db"))
    assert code == 0
    assert "CLOSE_WAIT" in out and "▁" in out and "█" in out
    assert "growing: CLOSE_WAIT of 1234/java +12/min for 3h00m" in out
    assert "its fd limit 65536 is reached in about 3d15h" in out


def test_by_owner_and_state_filter(cli, tmp_path):
    build(tmp_path / "w.db", time.time())
    code, out, _ = cli("history", "--db", str(tmp_path / "w.db"), "--by", "owner",
                       "--state", "close-wait", "--json")
    doc = json.loads(out)
    assert [s["key"] for s in doc["series"]] == ["1234/java"]


def test_missing_database_is_not_found(cli, tmp_path):
    code, _, err = cli("history", "--db", str(tmp_path / "none.db"))
    assert code == 3 and "tcplinger watch" in err


def test_png_without_matplotlib_is_a_clear_error(cli, tmp_path):
    pytest.importorskip  # noqa: B018
    try:
        import matplotlib  # noqa: F401
        pytest.skip("matplotlib is installed")
    except ImportError:
        pass
    build(tmp_path / "w.db", time.time())
    code, _, err = cli("history", "--db", str(tmp_path / "w.db"), "--png", str(tmp_path / "x.png"))
    assert code == 5 and "matplotlib" in err


def test_sparkline_scales_to_width():
    assert len(sparkline(range(1000), width=30)) == 30
    assert sparkline([1, 1, 9]) == "▁▁█"
