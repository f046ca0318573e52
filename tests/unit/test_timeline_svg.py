"""Lab and simulator pictures (ui/timeline.py) drawn by a real SVG renderer
(``rsvg-convert``, Debian librsvg2-bin) and read back with matplotlib's
PNG reader; the SVG's own text checked for what the legend and the axis
say."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tcplinger.i18n import Messages
from tcplinger.model.states import TcpState
from tcplinger.model.timeline import Packet, PartyTimeline, StateSpan, Timeline, Note
from tcplinger.sim.presets import build
from tcplinger.sim.scenario import from_document
from tcplinger.sim.simulation import simulate
from tcplinger.ui.ticks import time_label
from tcplinger.ui.timeline import render_svg, visible_states

RSVG = shutil.which("rsvg-convert")

TL = Timeline((
    PartyTimeline("client", "endpoint", "linux", (
        StateSpan(TcpState.SYN_SENT, 0.0, 0.0),            # passed through: no legend entry
        StateSpan(TcpState.ESTABLISHED, 0.0, 10.0),
        StateSpan(TcpState.FIN_WAIT2, 10.0, 70.0, orphan=True, minisock=True))),
    PartyTimeline("server", "endpoint", "linux", (
        StateSpan(TcpState.ESTABLISHED, 0.0, 10.0),
        StateSpan(TcpState.CLOSE_WAIT, 10.0, None)))),     # still held at the end
    3000.0,
    packets=(Packet(10.0, "client", "server", "F."), Packet(11.0, "server", "client", ".",
                                                             dropped_by="path")),
    notes=(Note(10.0, "client", "sim.note.close"),))


def legend(svg: str) -> list[str]:
    """Texts after the axis line (the legend and the axis caption)."""
    tail = svg.split('stroke="#444"/>')[-1]
    return re.findall(r">([^<>]+)</text>", tail)


def test_legend_names_what_is_drawn_and_explains_marks():
    svg = render_svg(TL, title="t", msg=Messages("en"))
    texts = legend(svg)
    assert [t for t in texts if t.isupper() or "_" in t] == ["ESTABLISHED", "FIN_WAIT2",
                                                             "CLOSE_WAIT"]
    assert "SYN_SENT" not in svg.split("</title>")[-1]
    for key in ("hatched", "open", "packet", "dropped", "note"):
        assert Messages("en")(f"timeline.legend.{key}") in texts, key
    assert visible_states(TL) == [TcpState.ESTABLISHED, TcpState.FIN_WAIT2,
                                  TcpState.CLOSE_WAIT]


def test_axis_ticks_are_round():
    svg = render_svg(TL)
    ticks = re.findall(r'text-anchor="middle" font-weight="normal" fill="#222">([^<]+)<', svg)
    assert ticks == ["0", "10m", "20m", "30m", "40m", "50m"]
    assert time_label(1000.0) == "16m40s"  # what the old axis showed; never a tick now


def test_chinese_legend():
    svg = render_svg(TL, msg=Messages("zh"))
    assert "结束时仍处于该状态" in svg


@pytest.mark.skipif(RSVG is None, reason="needs rsvg-convert (Debian librsvg2-bin)")
@pytest.mark.parametrize("name", ["linux-close-wait", "linux-orphan-fin-wait-2"])
def test_real_renderer_draws_the_simulated_timeline(tmp_path, name):
    import matplotlib.image as mpimg
    import numpy as np

    tl = simulate(from_document(build(name))).timeline()
    svg_path, png = tmp_path / "t.svg", tmp_path / "t.png"
    svg_path.write_text(render_svg(tl, title=name))
    subprocess.run([RSVG, "-o", str(png), str(svg_path)], check=True, timeout=60)
    img = mpimg.imread(png)
    assert img.shape[1] == 960
    ink = img[:, :, :3].min(axis=2) < 0.9
    assert ink.mean() > 0.05
    assert len(np.unique((img[:, :, :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 8
