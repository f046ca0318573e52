"""``tcplinger report --html`` rendered by a real browser (Debian ``chromium``).

A namespace holds a CLOSE_WAIT leak (40 sockets a process never closes,
their clients' orphaned FIN_WAIT2) and a few TIME_WAIT; ``tcplinger watch``
samples it for a few seconds so that the page has history plots too. The
page, in English and in Chinese (``fonts-wqy-zenhei`` for the glyphs), is
rendered headless; the test checks that:

* the screenshot is not blank (matplotlib's PNG reader: enough non-white
  pixels, of more than a few colours);
* the browser's console stays empty: no script error, and no fetch (the
  page's Content-Security-Policy forbids every load, and the browser
  reports any attempt there); a page that does log is caught by the same
  check (the control below);
* the text of every finding (title, evidence, fixes, commands) is in the
  rendered DOM, the sample sockets open without JavaScript (<details>),
  and every chart is an inline <svg>.

Screenshots are kept in the test's tmp directory for a human to look at.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged(needs=("chromium",))

import harness  # noqa: E402

LEAK = r"""
import socket, sys, time
srv = socket.create_server(("127.0.0.1", 7300), backlog=128)
held = []
for _ in range(40):
    c = socket.create_connection(("127.0.0.1", 7300)); s, _ = srv.accept()
    c.close(); held.append(s)                  # CLOSE_WAIT here, orphan FIN_WAIT2 there
for _ in range(4):
    c = socket.create_connection(("127.0.0.1", 7300)); s, _ = srv.accept()
    s.close(); time.sleep(0.02); c.close()     # TIME_WAIT on the server side
print("ready", flush=True)
sys.stdin.read()
"""


def chromium(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=timeout)


def console_lines(stderr: str) -> list[str]:
    """What the page wrote to, or caused in, the console (Chromium logs
    those as ``CONSOLE(line)`` or ``console`` messages)."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line or ":console" in line]


def render(page: Path, shot: Path) -> tuple[str, list[str]]:
    """(rendered DOM, console lines) of ``page``; a screenshot in ``shot``."""
    # one browser start for both (headless Chromium takes --screenshot and
    # --dump-dom together: ~2 s a start on this machine, twice per page before)
    p = chromium(f"--screenshot={shot}", "--dump-dom", "--window-size=1280,4800",
                 page.resolve().as_uri())
    assert shot.exists(), p.stderr[-2000:]
    return p.stdout, console_lines(p.stderr)


def not_blank(shot: Path) -> tuple[float, int]:
    """(fraction of non-white pixels, distinct colours) of the screenshot."""
    import matplotlib.image as mpimg
    import numpy as np
    img = mpimg.imread(shot)[:, :, :3]
    non_white = float((img.min(axis=2) < 0.9).mean())
    colours = len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    return non_white, colours


def text_of(dom: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", dom))


def seen_in_browser(page: Path, shot: Path, *, ink: float = 0.03) -> tuple[str, str]:
    """(rendered DOM, its text on one line) of ``page`` after Chromium drew
    it without a console message, on a screenshot that is not blank (more
    than ``ink`` of the pixels not white, more than 50 colours)."""
    dom, console = render(page, shot)
    assert console == [], console
    non_white, colours = not_blank(shot)
    print(f"\n{shot}: {non_white:.1%} non-white pixels, {colours} colours")
    assert non_white > ink and colours > 50
    return dom, " ".join(text_of(dom).split())


@pytest.fixture(scope="module")
def leaky(tmp_path_factory):
    pytest.importorskip("matplotlib", reason="the PNG reader (tcplinger[plot])")
    tmp = tmp_path_factory.mktemp("html")
    with harness.netns({"net.ipv4.tcp_fin_timeout": 300}) as ns:
        pop = ns.spawn([sys.executable, "-c", LEAK], stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, text=True)
        assert pop.stdout.readline().strip() == "ready"
        db = tmp / "watch.db"
        watch = subprocess.Popen(harness.tcplinger_argv("watch", "--netns", ns.name, "--db",
                                                        str(db), "--interval", "1",
                                                        "--no-trace"),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(6)  # some samples first; it keeps sampling (the database stays fresh)
            yield ns, db, tmp
        finally:
            watch.terminate()
            watch.wait(timeout=20)
            pop.stdin.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_report_page_in_a_real_browser(leaky, lang):
    ns, db, tmp = leaky
    page, shot = tmp / f"report-{lang}.html", tmp / f"report-{lang}.png"
    env = {**os.environ, "LANG": "C"}
    p = subprocess.run(harness.tcplinger_argv("--lang", lang, "report", "--netns", ns.name,
                                              "--db", str(db), "--html", str(page), "--json"),
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert {f["rule"] for f in doc["findings"]} >= {"close-wait-leak"}
    source = page.read_text()
    assert "<script" not in source and "http://" not in source.split("</style>")[0]
    assert not re.search(r'\b(src|href)\s*=\s*"(?!#)', source)  # nothing to load

    dom, text = seen_in_browser(page, shot)
    for f in doc["findings"]:
        for piece in [f["title"], *f["facts"], *f["cause"], *f["lifetime"],
                      *(x["text"] for x in f["fixes"]),
                      *(x["command"] for x in f["fixes"] if x["command"])]:
            assert " ".join(piece.split()) in text, piece
    assert dom.count("<details") == sum(1 for f in doc["findings"] if f.get("sockets"))
    assert "<svg" in dom and "<polyline" in dom  # histograms and the watch history
    assert ("History" if lang == "en" else "历史") in text


def test_console_check_catches_a_page_that_logs(tmp_path):
    """Control: the console check is not blind (a page with an error, and
    one that tries to fetch under the same policy)."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
                   'content="default-src \'none\'"></head><body><p>x</p>'
                   '<img src="http://127.0.0.1:9/x.png"></body></html>')
    _, console = render(bad, tmp_path / "bad.png")
    assert console, "a blocked fetch must show in the console"


def test_lab_run_page_in_a_real_browser(tmp_path):
    """``lab run --html``: the timeline picture and the run's report on one page."""
    pytest.importorskip("matplotlib", reason="the PNG reader (tcplinger[plot])")
    page, shot = tmp_path / "lab.html", tmp_path / "lab.png"
    p = subprocess.run(harness.tcplinger_argv("lab", "run", "orphan-fin-wait-2", "--set",
                                              "tcp_fin_timeout=2", "--html", str(page)),
                       capture_output=True, text=True, timeout=180,
                       env={**os.environ, "LANG": "C"})
    assert p.returncode == 0, p.stderr
    dom, text = seen_in_browser(page, shot, ink=0.01)  # a short page in a 1280x4800 window
    assert "Lab orphan-fin-wait-2 on Linux" in text and "Expected outcome" in text
    assert dom.count("<svg") == 1 and "FIN_WAIT2" in dom
