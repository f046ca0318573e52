"""``tcplinger top``: what it shows (:class:`TopModel`, plain data), as
plain text (:func:`render_text`, no terminal needed) and as a Textual app
(:class:`TopApp`, imported lazily: textual is the optional ``tui`` extra).

The model is built by app/live_view.py from the diagnosis of the scope
and the watch database; tests build it from recorded JSON
(tests/data/watch/).

>>> m = TopModel.from_json({"sockets": 3, "namespaces": 1, "source": "trace",
...     "states": [{"netns": "host", "state": "CLOSE_WAIT", "count": 2, "history": [0, 1, 2]}],
...     "owners": [{"owner": "42/java", "state": "CLOSE_WAIT", "count": 2,
...                 "command": "java -jar app.jar"}],
...     "findings": [{"severity": "warning", "rule": "close-wait-leak", "netns": "host",
...                   "count": 2, "title": "java (pid 42) holds 2"}],
...     "oldest": [{"seconds": 75.0, "at_least": False, "source": "trace", "state": "CLOSE_WAIT",
...                 "local": "10.0.0.1:80", "remote": "10.0.0.2:5000", "netns": "host",
...                 "owner": "42/java"}],
...     "growth": ["CLOSE_WAIT of 42/java +12/min for 3h"]})
>>> print("\\n".join(render_text(m, width=80, msg=lambda k, **f: k)))
top.title
NETNS  STATE       COUNT  TREND
host   CLOSE_WAIT      2  ▁▅█
<BLANKLINE>
OWNER    STATE       COUNT  BASIS  COMMAND
42/java  CLOSE_WAIT      2  owner  java -jar app.jar
<BLANKLINE>
[report.severity.warning] close-wait-leak (host): java (pid 42) holds 2
<BLANKLINE>
AGE           STATE       LOCAL        REMOTE         NETNS  OWNER
1m15s(trace)  CLOSE_WAIT  10.0.0.1:80  10.0.0.2:5000  host   42/java
<BLANKLINE>
CLOSE_WAIT of 42/java +12/min for 3h
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .sparkline import sparkline
from .table import duration, render



@dataclass(frozen=True)
class OldSocket:
    seconds: float | None
    at_least: bool
    source: str
    state: str
    local: str
    remote: str
    netns: str
    owner: str
    cookie: int = 0  # sock_diag cookie: what `top`'s kill key ends

    def age_text(self) -> str:
        return ("≥" if self.at_least else "") + duration(self.seconds) + f"({self.source})"


@dataclass(frozen=True)
class OwnerRow:
    """A process and how many sockets of one state it holds (``basis``
    "owner") or is inferred to be behind (``basis`` "listener :8080",
    "destination 10.0.0.7:5432"; diagnose/culprits.py)."""

    owner: str  # "pid/comm", " (inferred)" appended when inferred
    state: str
    count: int
    command: str = ""
    basis: str = "owner"


@dataclass(frozen=True)
class FindingRow:
    severity: str  # "info", "warning", "critical"
    rule: str
    netns: str
    count: int
    title: str


@dataclass(frozen=True)
class TopModel:
    sockets: int = 0
    namespaces: int = 0
    source: str = "timer"
    states: tuple = ()  # (netns, state, count, history list)
    owners: tuple[OwnerRow, ...] = ()
    oldest: tuple[OldSocket, ...] = ()
    growth: tuple[str, ...] = ()
    note: str | None = None
    findings: tuple[FindingRow, ...] = ()  # most severe first, as the report

    @staticmethod
    def from_json(doc: dict) -> "TopModel":
        return TopModel(doc["sockets"], doc["namespaces"], doc["source"],
                        tuple((s["netns"], s["state"], s["count"], tuple(s.get("history", ())))
                              for s in doc["states"]),
                        tuple(OwnerRow(**o) for o in doc["owners"]),
                        tuple(OldSocket(**o) for o in doc["oldest"]), tuple(doc["growth"]),
                        doc.get("note"), tuple(FindingRow(**f) for f in doc.get("findings", ())))

    def to_json(self) -> dict:
        return {"sockets": self.sockets, "namespaces": self.namespaces, "source": self.source,
                "states": [{"netns": n, "state": s, "count": c, "history": list(h)}
                           for n, s, c, h in self.states],
                "owners": [o.__dict__ for o in self.owners],
                "oldest": [o.__dict__ for o in self.oldest], "growth": list(self.growth),
                "note": self.note, "findings": [f.__dict__ for f in self.findings]}


@dataclass(frozen=True)
class Filter:
    state: str | None = None
    owner: str | None = None
    netns: str | None = None
    sort: str = "age"  # age | state | netns

    def text(self) -> str:
        parts = [f"{k}={v}" for k, v in (("state", self.state), ("owner", self.owner),
                                         ("netns", self.netns)) if v]
        return " ".join(parts + [f"sort={self.sort}"])


def apply(model: TopModel, f: Filter) -> TopModel:
    """The model restricted to the filter, oldest sorted as asked."""
    states = tuple(s for s in model.states if (f.state is None or s[1] == f.state)
                   and (f.netns is None or s[0] == f.netns))
    owners = tuple(o for o in model.owners if (f.state is None or o.state == f.state)
                   and (f.owner is None or o.owner == f.owner))
    oldest = [o for o in model.oldest if (f.state is None or o.state == f.state)
              and (f.owner is None or o.owner == f.owner)
              and (f.netns is None or o.netns == f.netns)]
    key = {"age": lambda o: -(o.seconds or 0.0), "state": lambda o: (o.state, -(o.seconds or 0)),
           "netns": lambda o: (o.netns, -(o.seconds or 0))}[f.sort]
    return replace(model, states=states, owners=owners, oldest=tuple(sorted(oldest, key=key)))


def cycle(values, current):
    """The next of ``values`` after ``current`` (None = all, then each)."""
    options = [None] + sorted(set(values))
    i = options.index(current) if current in options else 0
    return options[(i + 1) % len(options)]


def state_rows(model: TopModel, spark: int = 12):
    return [[n, s, c, sparkline(h, spark)] for n, s, c, h in model.states]


def oldest_rows(model: TopModel):
    return [[o.age_text(), o.state, o.local, o.remote, o.netns, o.owner] for o in model.oldest]


def owner_rows(model: TopModel):
    return [[o.owner, o.state, o.count, o.basis, o.command] for o in model.owners]


def finding_lines(model: TopModel, msg) -> list[str]:
    """``[WARNING] rule (netns): title``, most severe first."""
    return [f"[{msg('report.severity.' + f.severity)}] {f.rule} ({f.netns}): {f.title}"
            for f in model.findings]


STATE_HEADERS = ["NETNS", "STATE", "COUNT", "TREND"]
OWNER_HEADERS = ["OWNER", "STATE", "COUNT", "BASIS", "COMMAND"]
OLDEST_HEADERS = ["AGE", "STATE", "LOCAL", "REMOTE", "NETNS", "OWNER"]


def render_text(model: TopModel, *, width: int = 80, msg, limit: int = 10) -> list[str]:
    """One screen as plain lines: what ``top`` prints without a terminal."""
    out = [msg("top.title", n=model.sockets, ns=model.namespaces, source=model.source)]
    if model.note:
        out.append(model.note)
    out += render(STATE_HEADERS, state_rows(model), align="llrl", max_width=width)
    out.append("")
    out += render(OWNER_HEADERS, owner_rows(model)[:limit], align="llrll", max_width=width)
    out.append("")
    if model.findings:
        out += [_cut(line, width) for line in finding_lines(model, msg)[:limit]]
        out.append("")
    out += render(OLDEST_HEADERS, oldest_rows(model)[:limit], max_width=width)
    if model.growth:
        out.append("")
        out += list(model.growth)
    return out


def _cut(line: str, width: int) -> str:
    return line if len(line) <= width else line[:width - 1] + "…"


def make_app(load, msg, *, refresh: float = 2.0, model: TopModel | None = None, kill=None):
    """The Textual app (ui/top_app.py: Textual is imported only for the live
    view). ``load()`` returns a fresh TopModel; it is called every
    ``refresh`` seconds (not at all when ``refresh`` is 0). ``kill(cookies)``
    ends sockets and returns a one-line result; the ``k`` key offers it for
    the oldest sockets shown (the current filter), after a confirmation
    (``y``; anything else cancels). Without it ``k`` says killing is not
    available."""
    from .top_app import TopApp

    return TopApp(load, msg, refresh=refresh, model=model, kill=kill)
