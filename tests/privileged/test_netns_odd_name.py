"""A namespace whose name holds a terminal escape and a tab (root names
/run/netns entries with any byte but '/' and NUL; ip-netns(8) checks
neither) is shown as one printable line by every view that names it:
stats' header, ls' namespace column, the report's overview, finding and
summary lines, the HTML page. Unprintable characters become '?'
(model/text.printable), as a process's comm does."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.privileged

import harness  # noqa: E402
from harness import Item  # noqa: E402

ODD = "tl-t-\x1b[31m\tx-"


def test_an_odd_namespace_name_is_shown_printable(cli, tmp_path):
    web, _, worker = (o.name for o in harness.standard_owners("-o"))
    with harness.netns(prefix=ODD) as ns:
        harness.populate(ns, harness.standard_owners("-o"),
                         [Item("listen", "ipv4", server=(web,)),
                          Item("close_wait", "ipv4", server=(worker,))])
        shown = ns.name.replace("\x1b", "?").replace("\t", "?")
        page = tmp_path / "r.html"
        runs = {what: cli(*argv) for what, argv in (
            ("stats", ("stats", "--all-netns")),
            ("ls", ("ls", "--all-netns", "--state", "close-wait")),
            ("report", ("report", "--all-netns")),
            ("html", ("report", "--all-netns", "--html", str(page))))}
        for what, run in runs.items():
            assert run.code in (0, 1), (what, run.err)
            assert "\x1b" not in run.out + run.err and "\t" not in run.out, what
        for what in ("stats", "ls", "report"):
            assert shown in runs[what].out, (what, runs[what].out[-1500:])
        text = page.read_text()
        assert "\x1b" not in text and shown in text
