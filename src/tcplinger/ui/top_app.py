"""``top``'s live full-screen view, in Textual (the optional ``tui``
extra): the tables of ui/top.py's TopModel, its filters and sort, and the
kill key with its confirmation."""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from .top import (OLDEST_HEADERS, OWNER_HEADERS, STATE_HEADERS, Filter, TopModel, apply, cycle,
                  finding_lines, oldest_rows, owner_rows, state_rows)


class Confirm(ModalScreen):
    BINDINGS = [("y", "yes", "yes"), ("n", "no", "no"), ("escape", "no", "no")]

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        yield Static(self.text, id="confirm")

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_no(self) -> None:
        self.dismiss(False)

class TopApp(App):
    # Every panel in fractions of the screen, so that a larger terminal
    # (200x50) gets wider and taller panels, not the same boxes with empty
    # space around them (issue 11).
    CSS = """
    Screen { layout: vertical; }
    #title { height: 1; background: $accent; color: $text; }
    #upper { height: 2fr; }
    #states { width: 1fr; height: 100%; }
    #owners { width: 2fr; height: 100%; }
    #findings-box { height: 1fr; border-top: solid $accent; }
    #oldest { height: 3fr; border-top: solid $accent; }
    #growth { height: auto; max-height: 4; color: $warning; }
    """
    BINDINGS = [("q", "quit", "quit"), ("s", "sort", "sort"), ("f", "filter_state", "state"),
                ("o", "filter_owner", "owner"), ("n", "filter_netns", "netns"),
                ("c", "clear", "clear"), ("k", "kill", "kill")]

    def __init__(self, load, msg, *, refresh: float = 2.0, model: TopModel | None = None,
                 kill=None):
        super().__init__()
        # not self.refresh/.load: App has methods of those names
        self.loader, self.say, self.every, self.killer = load, msg, refresh, kill
        self.model = model if model is not None else load()
        self.flt = Filter()
        self.status = ""

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        with Vertical():
            with Horizontal(id="upper"):
                yield DataTable(id="states", zebra_stripes=True)
                yield DataTable(id="owners")
            with VerticalScroll(id="findings-box"):
                yield Static(id="findings")
            yield DataTable(id="oldest", cursor_type="row")
            yield Static(id="growth")
        yield Footer()

    def on_mount(self) -> None:
        for wid, headers in (("#states", STATE_HEADERS), ("#owners", OWNER_HEADERS),
                             ("#oldest", OLDEST_HEADERS)):
            self.query_one(wid, DataTable).add_columns(*headers)
        self.show()
        if self.every:
            self.set_interval(self.every, self.reload)

    def reload(self) -> None:
        self.model = self.loader()
        self.show()

    def show(self) -> None:
        m = apply(self.model, self.flt)
        msg = self.say
        title = msg("top.title", n=m.sockets, ns=m.namespaces, source=m.source)
        flt = msg("top.filter", text=self.flt.text())
        self.query_one("#title", Static).update(f"{title}   {flt}")
        lines = finding_lines(m, msg) or [msg("top.no_findings")]
        self.query_one("#findings", Static).update(Text("\n".join(lines)))
        for wid, rows in (("#states", state_rows(m)), ("#owners", owner_rows(m)),
                          ("#oldest", oldest_rows(m))):
            table = self.query_one(wid, DataTable)
            table.clear()
            table.add_rows([[str(c) for c in r] for r in rows])
        self.query_one("#growth", Static).update(
            "\n".join(([self.status] if self.status else []) + list(m.growth))
            or (m.note or ""))

    def action_sort(self) -> None:
        order = ["age", "state", "netns"]
        self.flt = replace(self.flt, sort=order[(order.index(self.flt.sort) + 1) % 3])
        self.show()

    def action_filter_state(self) -> None:
        states = [s for _, s, _, _ in self.model.states] + [o.state for o in self.model.oldest]
        self.flt = replace(self.flt, state=cycle(states, self.flt.state))
        self.show()

    def action_filter_owner(self) -> None:
        self.flt = replace(self.flt, owner=cycle([o.owner for o in self.model.owners],
                                                 self.flt.owner))
        self.show()

    def action_filter_netns(self) -> None:
        self.flt = replace(self.flt, netns=cycle([n for n, _, _, _ in self.model.states],
                                                 self.flt.netns))
        self.show()

    def action_kill(self) -> None:
        targets = [o for o in apply(self.model, self.flt).oldest if o.cookie]
        msg, kill = self.say, self.killer
        if kill is None or not targets:
            self.status = msg("top.kill_none")
            self.show()
            return

        def done(yes) -> None:
            if yes:
                self.status = kill([o.cookie for o in targets])
                if self.every:
                    self.model = self.loader()
            else:
                self.status = msg("top.kill_cancelled")
            self.show()
        self.push_screen(Confirm(msg("top.kill_confirm", n=len(targets),
                                     text=self.flt.text())), done)

    def action_clear(self) -> None:
        self.flt = Filter()
        self.show()
