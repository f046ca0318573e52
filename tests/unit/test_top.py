"""`tcplinger top` headless: Textual's pilot at 80x24 on a recorded model
(tests/data/watch/top_model.json, from record_top.py), keys that filter
and sort, and the plain-text fallback."""

import asyncio
import json
from pathlib import Path

import pytest

from tcplinger.i18n import Messages
from tcplinger.ui import top as top_ui

DATA = Path(__file__).resolve().parents[1] / "data" / "watch" / "top_model.json"
MODEL = top_ui.TopModel.from_json(json.loads(DATA.read_text()))
MSG = Messages("en")


def test_plain_text_fits_80_columns():
    lines = top_ui.render_text(MODEL, width=80, msg=MSG)
    assert lines[0].startswith("tcplinger top — 35 sockets, 1 namespace,")
    assert all(len(line) <= 80 for line in lines)
    assert any("CLOSE_WAIT" in line and "▁" in line for line in lines)
    assert any("(trace)" in line for line in lines)


def test_filters_and_sort():
    only_cw = top_ui.apply(MODEL, top_ui.Filter(state="CLOSE_WAIT"))
    assert {o.state for o in only_cw.oldest} == {"CLOSE_WAIT"}
    assert [s[1] for s in only_cw.states] == ["CLOSE_WAIT"]
    by_state = top_ui.apply(MODEL, top_ui.Filter(sort="state"))
    assert [o.state for o in by_state.oldest] == sorted(o.state for o in MODEL.oldest)
    ages = [o.seconds for o in top_ui.apply(MODEL, top_ui.Filter()).oldest]
    assert ages == sorted(ages, reverse=True)
    assert top_ui.cycle(["b", "a"], None) == "a" and top_ui.cycle(["b", "a"], "b") is None


def test_pilot_80x24():
    pytest.importorskip("textual")
    from textual.widgets import DataTable, Footer, Static

    async def scenario():
        app = top_ui.make_app(lambda: MODEL, MSG, refresh=0, model=MODEL)
        async with app.run_test(size=(80, 24)) as pilot:
            oldest = app.query_one("#oldest", DataTable)
            assert oldest.row_count == len(MODEL.oldest)
            states = app.query_one("#states", DataTable)
            assert states.row_count == 5
            # the footer composes its keys after the screen publishes its
            # bindings (textual/widgets/_footer.py: bindings_changed ->
            # call_after_refresh(recompose)); one pause was not always
            # enough under load (the screenshot lacked "quit"): wait for them
            footer = app.query_one(Footer)
            while not footer.query("FooterKey"):
                await pilot.pause()
            svg_before = app.export_screenshot()
            await pilot.press("f")  # first state in sorted order
            first = sorted({s for _, s, _, _ in MODEL.states} | {o.state for o in MODEL.oldest})[0]
            assert app.flt.state == first
            assert states.row_count == 1
            assert all(r[1] == first for r in
                       (oldest.get_row_at(i) for i in range(oldest.row_count)))
            await pilot.press("s")
            assert app.flt.sort == "state"
            title = str(app.query_one("#title", Static).render())
            assert "filter: state=" in title and "sort=state" in title
            await pilot.press("c")
            assert app.flt == top_ui.Filter() and states.row_count == 5
            await pilot.press("q")
        return svg_before

    svg = asyncio.run(scenario())
    # the screen holds the title, the tables and the footer keys
    for text in ("tcplinger", "CLOSE_WAIT", "TIME_WAIT", "tl-w-rec", "quit"):
        assert text in svg.replace("&#160;", " "), text


def test_top_once_without_terminal(cli, tmp_path, monkeypatch):
    """The CLI path with no tty: one screen of text (live namespace, no DB
    at the default path: absent quietly)."""
    monkeypatch.setattr("tcplinger.track.paths.default_path",
                        lambda euid, env: tmp_path / "none.db")
    code, text, _ = cli("top", "--once", width=80)
    assert code == 0
    assert text.startswith("tcplinger top —") and "no watch database" in text


def test_top_explicit_db_that_is_missing_is_an_error(cli, tmp_path):
    """An explicit --db must be usable; only the default path may be absent."""
    code, text, err = cli("top", "--once", "--db", str(tmp_path / "none.db"), width=80)
    assert (code, text) == (3, "")
    assert err == f"tcplinger: No such file or directory: {tmp_path / 'none.db'}\n"


def _kill_flow(keys):
    pytest.importorskip("textual")
    killed = []

    def kill(cookies):
        killed.append(list(cookies))
        return f"ended {len(cookies)}"

    async def scenario():
        app = top_ui.make_app(lambda: MODEL, MSG, refresh=0, model=MODEL, kill=kill)
        async with app.run_test(size=(80, 24)) as pilot:
            app.flt = top_ui.Filter(state="CLOSE_WAIT")
            app.show()
            for key in keys:
                await pilot.press(key)
                await pilot.pause()
            return app.status
    return asyncio.run(scenario()), killed


def test_kill_key_ends_the_sockets_shown_after_confirmation():
    status, killed = _kill_flow(["k", "y"])
    want = [o.cookie for o in top_ui.apply(MODEL, top_ui.Filter(state="CLOSE_WAIT")).oldest]
    assert want and killed == [want]
    assert status == f"ended {len(want)}"


def test_kill_key_cancelled_ends_nothing():
    status, killed = _kill_flow(["k", "n"])
    assert killed == [] and status == MSG("top.kill_cancelled")


def test_model_names_owners_and_findings_as_the_report():
    """As the report finds them (not from the watch database): the owner of the
    CLOSE_WAIT by pid/comm and command line, the inferred culprit of the
    orphans and TIME_WAIT with its basis, never ``inode N``; the findings."""
    assert not any(o.owner.startswith("inode") for o in MODEL.oldest)
    owned = [o for o in MODEL.owners if o.basis == "owner"]
    assert owned and owned[0].state == "CLOSE_WAIT" and owned[0].command.startswith("python3")
    inferred = [o for o in MODEL.owners if o.basis != "owner"]
    assert inferred and all(o.owner.endswith("(inferred)") for o in inferred)
    assert {o.owner for o in MODEL.oldest} <= {o.owner for o in MODEL.owners}
    assert {f.rule for f in MODEL.findings} >= {"close-wait-leak"}
    text = "\n".join(top_ui.render_text(MODEL, width=120, msg=MSG))
    assert "close-wait-leak" in text and "COMMAND" in text


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_panels_fill_the_terminal(size):
    """Issue 11 point 8: at 200x50 the panels widen and grow; the findings
    panel is there at both sizes."""
    pytest.importorskip("textual")
    from textual.widgets import DataTable, Footer, Static

    async def scenario():
        app = top_ui.make_app(lambda: MODEL, MSG, refresh=0, model=MODEL)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            regions = {w: app.query_one(f"#{w}").region
                       for w in ("states", "owners", "findings-box", "oldest")}
            owners = app.query_one("#owners", DataTable)
            cells = [owners.get_row_at(i) for i in range(owners.row_count)]
            findings = str(app.query_one("#findings", Static).render())
            return regions, cells, findings

    regions, cells, findings = asyncio.run(scenario())
    width, height = size
    # side by side, together the whole width; the others span it
    assert regions["states"].width + regions["owners"].width == width
    assert regions["findings-box"].width == width and regions["oldest"].width == width
    # title, footer and borders aside, the panels share the height
    used = sum(regions[w].height for w in ("states", "findings-box", "oldest"))
    assert used >= height - 6
    assert regions["oldest"].height >= (height - 6) // 3
    assert any(c[4].startswith("python3") and c[3] == "owner" for c in cells)
    assert "close-wait-leak" in findings and "[INFO]" in findings
