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


def test_title_names_the_first_sample_not_the_window(cli, tmp_path):
    """A watch of 10 minutes under the default --since 6h: the title says
    when the samples start (it said six hours ago)."""
    now = time.time()
    build(tmp_path / "w.db", now, hours=10 / 60)
    code, out, _ = cli("history", "--db", str(tmp_path / "w.db"))
    assert code == 0
    first = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now - 600))
    assert out.splitlines()[0].startswith(f"History since {first} (11 samples")


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


def build_with_gap(path, now):
    """Samples every 60 s for an hour, none for the next 13 minutes (the
    daemon was stopped), then another half hour."""
    with Store(path) as s:
        for i in range(91):
            t = now - 90 * 60 + i * 60
            if 60 <= i < 73:
                continue
            s.write_sample(SampleInfo(t, 60, 60, 0, "trace"),
                           [CountRow(1, 6, "", 30 + i), CountRow(1, 8, "1234/java", 20)],
                           [(1, "tcp_max_tw_buckets", 150), (1, "ephemeral_ports", 28232)],
                           owners=[("1234/java", 1234, "java", 64, 40)],
                           netns_labels={1: "tl-web"})


def test_png_title_limits_gap_and_legend_outside(cli, tmp_path):
    """The figure (ui/plot_png.py) checked through matplotlib's own objects,
    then the file through matplotlib's PNG reader."""
    pytest.importorskip("matplotlib", reason="the plot extra")
    import math

    import matplotlib.image as mpimg

    from tcplinger.i18n import Messages
    from tcplinger.ui import plot_png

    now = time.time()
    build_with_gap(tmp_path / "w.db", now)
    code, out, err = cli("history", "--db", str(tmp_path / "w.db"), "--json",
                         "--png", str(tmp_path / "h.png"))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["namespaces"] == ["tl-web"]
    assert {(lim["name"], lim["value"]) for lim in doc["limits"]} == {
        ("tcp_max_tw_buckets", 150), ("ip_local_port_range", 28232)}
    fig = plot_png.figure(doc, Messages("en"))
    ax = fig.axes[0]
    title = ax.get_title(loc="left")
    assert title.startswith("tcplinger history, tl-web: ") and " to " in title
    tw = [ln for ln in ax.lines if ln.get_label() == "TIME_WAIT"][0]
    ys = list(tw.get_ydata())
    assert sum(1 for y in ys if math.isnan(y)) == 1  # the 13-minute gap, not a straight line
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "tcp_max_tw_buckets 150" in labels  # drawn: close to the data
    # a database without watch's busiest-remote-port series: the range is
    # named, not drawn beside states whose counts do not run into it
    assert ("ip_local_port_range 28232 (not drawn: this database has no count of ports per"
            " remote port)") in labels
    assert not [ln for ln in ax.lines if list(ln.get_ydata()) == [28232, 28232]]
    fig.canvas.draw()
    legend_box = ax.get_legend().get_window_extent()
    assert legend_box.x0 >= ax.get_window_extent().x1  # outside the data
    img = mpimg.imread(tmp_path / "h.png")
    assert img.shape[:2] == (460, 1100)
    assert (img[:, :, :3].min(axis=2) < 0.9).mean() > 0.02  # not blank
    # by owner: the owner's RLIMIT_NOFILE
    code, out, _ = cli("history", "--db", str(tmp_path / "w.db"), "--by", "owner", "--json")
    assert json.loads(out)["limits"] == [{"name": "RLIMIT_NOFILE java (1234)", "value": 64,
                                          "for": "1234/java"}]


def leak(path, now, seconds, owner="", step=1.0, per_s=4.0):
    """CLOSE_WAIT rising ``per_s`` a second, sampled every ``step`` s
    (``owner`` "" : not attributed, as with ``watch --no-owners``)."""
    with Store(path) as s:
        for i in range(int(seconds / step) + 1):
            t = now - seconds + i * step
            n = int(per_s * i * step)
            s.write_sample(SampleInfo(t, step, n + 1, 0, "trace"),
                           [CountRow(1, 8, owner, n), CountRow(1, 10, "", 1)],
                           [(1, "tcp_max_tw_buckets", 262144)], netns_labels={1: "host"})


def test_a_short_clean_rise_is_named_not_nothing(cli, tmp_path):
    """Issue 11 point 7: 4/s for 40 s showed +240/min in the table and
    "nothing is growing." under it."""
    leak(tmp_path / "w.db", time.time(), 40, owner="77/python3")
    code, out, _ = cli("history", "--db", str(tmp_path / "w.db"), "--since", "5m")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("CLOSE_WAIT"))
    assert row.split()[-1] == "+240"
    assert "nothing is growing" not in out
    assert "rising, not yet a trend: CLOSE_WAIT +240/min over 40s (41 samples)" in out
    code, out, _ = cli("history", "--db", str(tmp_path / "w.db"), "--since", "5m", "--json")
    doc = json.loads(out)
    assert doc["growing"] == [] and doc["rising"][0]["what"] == "CLOSE_WAIT"
    assert {s["key"]: s["trend"] for s in doc["series"]}["CLOSE_WAIT"] == "short"


def test_the_verdict_names_every_growing_series_of_the_table(cli, tmp_path):
    """Unattributed CLOSE_WAIT (no owner series to fit) growing for 2 min:
    the table's own series is in the verdict."""
    leak(tmp_path / "w.db", time.time(), 120, owner="")
    code, out, _ = cli("history", "--db", str(tmp_path / "w.db"), "--since", "5m")
    assert "growing: CLOSE_WAIT +240/min for 2m00s" in out
    assert "nothing is growing" not in out and "rising" not in out


def test_nothing_growing_says_what_growing_means(cli, tmp_path):
    with Store(tmp_path / "w.db") as s:
        now = time.time()
        for i in range(100):
            s.write_sample(SampleInfo(now - 100 + i, 1, 5, 0, "trace"), [CountRow(1, 8, "", 5)])
    code, out, _ = cli("history", "--db", str(tmp_path / "w.db"), "--since", "5m")
    assert "nothing is growing (growing: a rise that holds at least 1m00s and fits a line, " \
           "R² ≥ 0.6)." in out


def test_port_range_projection_counts_one_end_of_each_connection(cli, tmp_path):
    """Loopback clients of a local server: ESTABLISHED grows 20/min (both
    ends), the clients' ephemeral ports towards the server's port 10/min
    (watch's busiest-remote-port series): history projects the latter
    against ip_local_port_range (it projected the sum of every state)."""
    from tcplinger.track.series import BUSIEST_PORT

    now = time.time()
    with Store(tmp_path / "w.db") as s:
        for i in range(181):
            t = now - 180 * 60 + i * 60
            s.write_sample(SampleInfo(t, 60, 100 + 20 * i, 0, "trace"),
                           [CountRow(1, 1, "", 100 + 20 * i), CountRow(1, 10, "", 1)],
                           [(1, "ephemeral_ports", 28232), (1, BUSIEST_PORT, 50 + 10 * i)],
                           netns_labels={1: "host"})
    code, out, err = cli("history", "--db", str(tmp_path / "w.db"), "--json")
    assert code == 0, err
    [g] = [g for g in json.loads(out)["growing"] if g["limit_name"] == "ephemeral ports"]
    assert g["what"] == "ephemeral ports towards the busiest remote port in host"
    assert g["per_minute"] == pytest.approx(10) and g["current"] == 50 + 1800
    assert g["time_to_limit_s"] == pytest.approx((28232 - 1850) / 10 * 60, rel=0.01)
    code, out, _ = cli("history", "--db", str(tmp_path / "w.db"))
    assert ("growing: local ports of the ephemeral range towards the busiest remote port in host"
            " +10/min for 3h00m; at that rate its ip_local_port_range (size 28232) is used up in"
            " about 1d19h at the earliest") in out


def _ports_store(path, now, ranges):
    """ESTABLISHED grows 20/min in each namespace (both ends of loopback
    connections), watch's busiest remote port 50 + k*i (k: 3 in the first,
    1 in the others), each namespace with its own port range ``ranges``."""
    from tcplinger.track.series import BUSIEST_PORT
    with Store(path) as s:
        for i in range(121):
            t = now - 120 * 60 + i * 60
            rows = [CountRow(ns, 1, "", 100 + 20 * i) for ns in range(1, len(ranges) + 1)]
            kernel = [row for ns, size in enumerate(ranges, 1) for row in
                      ((ns, "ephemeral_ports", size), (ns, BUSIEST_PORT, 50 + (3 if ns == 1 else 1) * i))]
            s.write_sample(SampleInfo(t, 60, 100 + 20 * i, 0, "trace"), rows, kernel,
                           netns_labels={ns: f"tl-n{ns}" for ns in range(1, len(ranges) + 1)})


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_png_draws_the_port_range_beside_the_busiest_remote_port(cli, tmp_path, lang):
    """The range's limit line goes with the series history projects against
    it (watch's busiest remote port), not with ESTABLISHED (which counts
    both ends of every connection and would pass the range harmlessly)."""
    pytest.importorskip("matplotlib", reason="the plot extra")
    from tcplinger.i18n import Messages
    from tcplinger.ui import plot_png

    msg = Messages(lang)
    _ports_store(tmp_path / "w.db", time.time(), [1000])
    code, out, err = cli("history", "--db", str(tmp_path / "w.db"), "--json",
                         "--png", str(tmp_path / "h.png"))
    assert code == 0, err
    doc = json.loads(out)
    ports = doc["busiest_port"]
    assert ports["netns"] == "tl-n1" and ports["limit"] == 1000 and ports["of_namespaces"] == 1
    assert ports["values"] == [50 + 3 * i for i in range(121)]
    assert doc["limits"] == [{"name": "ip_local_port_range", "value": 1000,
                              "for": "busiest_port"}]
    ax = plot_png.figure(doc, msg).axes[0]
    label = msg("history.png.busiest_port", netns="tl-n1")
    [line] = [ln for ln in ax.lines if ln.get_label() == label]
    assert list(line.get_ydata()) == ports["values"]
    [limit] = [ln for ln in ax.lines if ln.get_label() == msg("history.png.limit_ports", limit=msg(
        "history.png.limit", name="ip_local_port_range", value="1000"))]
    assert list(limit.get_ydata()) == [1000, 1000]  # drawn: the series reaches 410 of it
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert label in legend and "ESTABLISHED" in legend
    if lang == "zh":
        assert "发往最繁忙远端端口" in label


def test_png_port_series_of_the_namespace_nearest_its_range(cli, tmp_path):
    """Two namespaces: the one whose busiest remote port is nearest its own
    range is drawn, with that range (not the largest of the two)."""
    pytest.importorskip("matplotlib", reason="the plot extra")
    from tcplinger.i18n import Messages
    from tcplinger.ui import plot_png

    # tl-n1: 410 of 28232 at the end (1.5%); tl-n2: 170 of 500 (34%)
    _ports_store(tmp_path / "w.db", time.time(), [28232, 500])
    code, out, err = cli("history", "--db", str(tmp_path / "w.db"), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["busiest_port"]["netns"] == "tl-n2" and doc["busiest_port"]["of_namespaces"] == 2
    assert doc["limits"] == [{"name": "ip_local_port_range", "value": 500, "for": "busiest_port"}]
    en = Messages("en")
    ax = plot_png.figure(doc, en).axes[0]
    labels = [ln.get_label() for ln in ax.lines]
    assert en("history.png.busiest_port_of", netns="tl-n2", n=2) in labels
    assert "ip_local_port_range 500: the limit of those ports" in labels
    # --by owner: no port series, no range
    code, out, _ = cli("history", "--db", str(tmp_path / "w.db"), "--json", "--by", "owner")
    assert json.loads(out)["busiest_port"] is None
