"""What tcplinger diagnoses at a moment of a lab run: the real diagnosis
(app/diagnosis.py, as ``report``), handed to the lab as a
:class:`LabDiagnosis` (the lab is below the application layer), over the run's namespaces at once, so
rules that look across namespaces (conntrack-mismatch: the router tracks
the endpoints' flows) see the whole path. The lab adds what it knows
better: the ages its recorder saw exactly (every transition), and the
kernel counters at the run's start (for the rules about rising ones).
Host-wide findings (tcp_max_orphans) are about the host, not the
scenario, and are left out; so are the host's sysctl.d files and watch
database."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from ..collect.owners import OwnerPolicy
from ..collect.roots import Roots
from ..collect.snapshot import ALL_STATES, Scope
from ..diagnose.finding import Finding
from ..diagnose.metadata import BY_ID
from ..model.socket import Age, AgeSource, UNKNOWN_AGE, format_address
from . import counters
from .diagnosis import DiagnoseOptions, diagnose as app_diagnose
from .observation import ObserveOptions


@dataclass(frozen=True)
class RunFinding:
    """A finding of the diagnosis at a moment (``at``, ``t_s`` seconds into
    the run: when the sockets were dumped) on one side of the path
    (client, server, router)."""

    at: str
    t_s: float
    side: str
    finding: Finding
    title: str  # the finding's title in the run's language

    @property
    def rule(self) -> str:
        return self.finding.rule

    @property
    def severity(self) -> str:
        return self.finding.severity.label

    @property
    def count(self) -> int:
        return self.finding.count

    def to_json(self) -> dict:
        return {"at": self.at, "t_s": round(self.t_s, 3), "side": self.side, "rule": self.rule,
                "severity": self.severity, "count": self.count, "title": self.title,
                "evidence": _plain(self.finding.evidence)}


def diagnose(namespaces: dict[str, str], *, at: str, t0: float, msg, age_of=None,
             previous: dict | None = None, tables: dict | None = None,
             taken_at: float | None = None, roots: Roots = Roots()) -> list[RunFinding]:
    """Findings for the run's namespaces (``side -> namespace name``).
    ``age_of(side, key, state)`` gives the recorder's seconds in state (or
    None); without it the snapshot's own estimates count. ``previous`` is
    an earlier reading of the counters (app/counters.sample).

    ``tables`` (side -> SocketTable) are the sides' sockets as dumped at
    the moment (``taken_at``, time.monotonic()): the diagnosis is of the
    sockets as they were then, however long the rest takes (on a loaded
    machine reading three namespaces' sysctls and counters took 2-8 s,
    longer than a keepalive-reset CLOSE_WAIT lives)."""
    inode = {side: os.stat(roots.run_netns / name).st_ino for side, name in namespaces.items()}
    side_of = {ino: side for side, ino in inode.items()}
    scopes = [Scope(netns=name) for name in namespaces.values()]
    # One dump a namespace, tcp_info for every socket (a lab namespace holds
    # a handful): the sockets of a run live seconds, the snapshot must be quick.
    opts = DiagnoseOptions(ObserveOptions(scopes[0], OwnerPolicy(walk=True), history=False,
                                          idle_info=False, info_states=ALL_STATES,
                                          sysctl_files=False))
    ages = None
    if age_of is not None:
        def ages(ns, table):
            side = side_of.get(ns.netns.inode, "?")
            states = table.rows["state"]
            out = []
            for i in range(len(table)):
                secs = age_of(side, _key(table, i), int(states[i]))
                out.append(UNKNOWN_AGE if secs is None else Age(secs, False, AgeSource.TRACE))
            return out
    d = app_diagnose(opts, roots, previous=previous, extra_scopes=tuple(scopes[1:]),
                     ages=ages, tables={inode[side]: table
                                        for side, table in (tables or {}).items()})
    t = (time.monotonic() if taken_at is None else taken_at) - t0
    return [RunFinding(at, t, side_of.get(f.netns.inode, "?"), f, f.title.render(msg))
            for f in d.findings if not BY_ID[f.rule].host_wide]


class LabDiagnosis:
    """The diagnosis a lab run calls at its moments (lab/script.py,
    ``Run.diagnose``). :meth:`start` reads the kernel counters when the
    run begins, so the rules about rising ones (TCPTimeWaitOverflow) see
    what rose during it."""

    def __init__(self, roots: Roots = Roots()):
        self.roots = roots
        self.baseline: dict = {}

    def start(self, namespaces: dict[str, str]) -> None:
        scopes = tuple(Scope(netns=name) for name in namespaces.values())
        self.baseline = counters.sample(scopes, self.roots)

    def __call__(self, namespaces: dict[str, str], **moment) -> list[RunFinding]:
        """:func:`diagnose` of ``namespaces`` against the baseline."""
        return diagnose(namespaces, previous=self.baseline, roots=self.roots, **moment)


def _key(table, i: int):
    """The row's (local, remote) endpoints, as the recorder keys them."""
    r = table.rows[i]
    fam = int(r["family"])
    return ((format_address(fam, r["saddr"].tobytes()), int(r["sport"])),
            (format_address(fam, r["daddr"].tobytes()), int(r["dport"])))


def _plain(obj):
    """Evidence as JSON-safe values (numpy numbers become Python ones)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
