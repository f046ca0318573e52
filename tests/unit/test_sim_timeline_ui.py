"""The timeline renderers and the message catalogs the simulator uses."""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tcplinger.i18n import Messages, catalog
from tcplinger.model.timeline import Note, Packet, PartyTimeline, StateSpan, Timeline
from tcplinger.ui import timeline as view

SRC = Path(__file__).resolve().parents[2] / "src" / "tcplinger"


def sample() -> Timeline:
    client = PartyTimeline("client", "endpoint", "linux", (
        StateSpan(1, 0.0, 1.0), StateSpan(4, 1.0, 1.2, orphan=True),
        StateSpan(5, 1.2, 61.2, orphan=True, minisock=True)))
    server = PartyTimeline("server", "endpoint", "linux", (
        StateSpan(1, 0.0, 1.1), StateSpan(8, 1.1, None)))
    box = PartyTimeline("ipfw", "middlebox", "ipfw", (
        StateSpan(1, 0.0, 1.1, label="BOTH_SYN"), StateSpan(5, 1.1, 40.0, label="FIN")))
    return Timeline((client, server, box), 100.0,
                    (Packet(1.0, "client", "server", "F."),
                     Packet(50.0, "server", "client", ".", dropped_by="ipfw")),
                    (Note(1.0, "client", "sim.note.close"),))


def test_text_bars_and_span_tables():
    lines = view.render_text(sample(), Messages("en"), width=70, title="T")
    text = "\n".join(lines)
    assert lines[0] == "T"
    bars = {l.split("|")[0].strip(): l.split("|")[1] for l in lines if "  |" in l}
    assert bars["client"].startswith("2") is False and bars["client"].count("2") > 0
    assert bars["server"].endswith("CCCC")
    assert "orphan, timewait-type minisocket" in text
    assert "still held" in text and "BOTH_SYN" in text
    assert "legend:" in text and "2=FIN_WAIT2" in text


def test_bar_uses_the_state_held_longest_in_each_column():
    p = PartyTimeline("p", "endpoint", "", (StateSpan(1, 0, 0.4), StateSpan(4, 0.4, 1.0)))
    assert view.bar(p, 2.0, 2) == "1."


def test_svg_is_well_formed_with_bands_and_legend():
    svg = view.render_svg(sample(), title="a <title> & more")
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter() if t.tag.endswith("text")]
    assert "a <title> & more" in texts
    assert {"client", "server", "ipfw", "FIN_WAIT2", "CLOSE_WAIT"} <= set(texts)
    rects = [r for r in root.iter() if r.tag.endswith("rect")]
    assert any(r.get("fill") == "url(#mini)" for r in rects)  # minisocket hatch
    lines = [l for l in root.iter() if l.tag.endswith("line") and l.get("stroke") == "#c00"
             and len(l)]  # with a <title>: a packet, not the legend's sample mark
    assert len(lines) == 1  # the dropped packet


def test_chart_svg():
    svg = view.render_chart_svg([1, 2, 3], {"client": [1.0, float("nan"), None]}, "T", "s",
                                title="x")
    root = ET.fromstring(svg)
    assert len([e for e in root.iter() if e.tag.endswith("polyline")]) == 1
    assert len([e for e in root.iter() if e.tag.endswith("circle")]) == 1


def test_every_message_key_the_simulator_uses_exists():
    used = set()
    for path in list((SRC / "sim").rglob("*.py")) + [SRC / "ui" / "timeline.py",
                                                     SRC / "cli" / "commands" / "sim.py"]:
        text = path.read_text()
        used |= set(re.findall(r'"(sim\.[a-z0-9_.]+[a-z0-9_])"', text))
        used |= {"sim.note.forget_" + why for why in re.findall(r'forget\("([a-z0-9_]+)"', text)}
    from tcplinger.sim import presets
    used |= {"sim.preset." + p.name for p in presets.all_presets()}
    used |= {"sim.knob." + k.name for p in presets.all_presets() for k in p.knobs}
    cat = catalog("en")
    prefixes = {"sim.note.forget_", "sim.preset.", "sim.role.", "sim.packet_kind."}
    missing = sorted(k for k in used if k not in cat and k not in prefixes)
    assert not missing


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_notes_format_with_their_fields(lang):
    msg = Messages(lang)
    assert "FIN_WAIT2" in msg("sim.note.forget_reset", state="FIN_WAIT2")
    assert "3" in msg("sim.note.keepalive_abort", probes=3)
