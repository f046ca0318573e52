"""``tcplinger check``: the diagnosis as a monitoring plugin.

Monitoring-plugin convention (Nagios, Icinga, Sensu, cron): one line,
``TCPLINGER <STATUS> - <summary> | <perfdata>``, and the exit code 0 OK,
1 WARNING, 2 CRITICAL, 3 UNKNOWN. Thresholds are the rules' (``tcplinger
rules``), overridden with ``--threshold RULE.NAME=VALUE``. ``--state FILE``
keeps the kernel counters between runs so that counters *rising* since the
last run (TCPTimeWaitOverflow, TCPAbortOnMemory) count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...app import counters
from ...app.diagnosis import DiagnoseOptions, diagnose
from ...collect.roots import Roots
from ...diagnose.finding import Severity
from ...model.files import NotOurFile
from ...model.states import LINGERING, REPORTED
from ..errors import CatalogError, CliError, one_line
from ..options import add_diagnose_args, diagnose_options, input_file

NAME = "check"

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATUS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
#: Plugin status words are protocol tokens, the same in every language.
#: The perfdata counts: the lingering group of model/states.py, in the kernel's state order.
PERF_STATES = tuple(s for s in REPORTED if s in LINGERING)


@dataclass(frozen=True)
class CheckOptions:
    diagnose: DiagnoseOptions
    state: Path | None


def register(sub, h) -> None:
    p = sub.add_parser(NAME, help=h("help.check"),
                       description=h("help.check.about"))
    p.usage_exit_code = UNKNOWN  # bad arguments are UNKNOWN, not CRITICAL (2)
    add_diagnose_args(p, h)
    p.add_argument("--state", type=input_file, metavar="FILE",
                   help=h("help.check.state"))
    p.set_defaults(run=_run_args)


def _run_args(args, term, msg) -> int:
    try:
        opts = CheckOptions(diagnose_options(args), args.state)
    except CliError as exc:
        reason = exc.render(msg) if isinstance(exc, CatalogError) else exc.message
        term.out(one_line(f"TCPLINGER UNKNOWN - {msg('check.bad_threshold', reason=reason)}"))
        return UNKNOWN
    return run(opts, term, msg)


def run(opts: CheckOptions, term, msg, roots: Roots = Roots()) -> int:
    try:
        previous = counters.load(opts.state) if opts.state else None
        d = diagnose(opts.diagnose, roots, previous=previous)
        if opts.state:
            counters.save(opts.state, d.view)
    except Exception as exc:  # noqa: BLE001 - a plugin must answer UNKNOWN, not crash
        term.out(one_line(f"TCPLINGER UNKNOWN - {msg('check.unknown', reason=_reason(exc, msg))}"))
        return UNKNOWN
    code, text = status(d, msg)
    term.out(f"TCPLINGER {STATUS[code]} - {text} | {perfdata(d)}")
    return code


def status(d, msg) -> tuple[int, str]:
    """The plugin's exit code and summary of a diagnosis."""
    worst = max((f.severity for f in d.findings), default=Severity.INFO)
    code = {Severity.INFO: OK, Severity.WARNING: WARNING, Severity.CRITICAL: CRITICAL}[worst]
    counts = {s: [f for f in d.findings if f.severity == s] for s in Severity}
    if code == OK:
        sockets = sum(len(i.table) for i in d.inputs)
        text = msg("check.summary_ok", n=len(d.inputs), sockets=sockets)
    else:
        text = msg("check.summary", critical=len(counts[Severity.CRITICAL]),
                   warning=len(counts[Severity.WARNING]))
        # the same finding in many pods is one item (diagnose/groups.py)
        worst_first = [g for g in d.groups if g.severity >= Severity.WARNING]
        text += ": " + "; ".join(_item(g, msg) for g in worst_first[:3])
        if len(worst_first) > 3:
            text += f"; +{len(worst_first) - 3}"
    return code, text


def _item(group, msg) -> str:
    """A group of one finding as the finding; of several, its headline."""
    if len(group.members) == 1 and len(group.findings) == 1:
        f = group.findings[0]
        return f"{f.rule} [{f.netns.label()}] " + f.title.render(msg)
    return f"{group.rule}: {group.title(msg)}"


def perfdata(d) -> str:
    """Counts summed over the namespaces, as ``label=value`` pairs."""
    totals = {s: 0 for s in PERF_STATES}
    orphans = 0
    for i in d.inputs:
        counts = np.bincount(i.table.rows["state"], minlength=16)
        for s in PERF_STATES:
            totals[s] += int(counts[int(s)])
        orphans += int(i.table.orphan_mask().sum())
    parts = [f"{s.name.lower()}={n}" for s, n in totals.items()]
    parts.append(f"orphans={orphans}")
    for sev in Severity:
        parts.append(f"findings_{sev.label}={sum(1 for f in d.findings if f.severity == sev)}")
    return " ".join(parts)


def _reason(exc: Exception, msg) -> str:
    if isinstance(exc, CliError):
        return exc.message
    if isinstance(exc, NotOurFile):
        return msg(exc.key, **exc.fields)
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc} (run as root)"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return f"{type(exc).__name__}: {exc}"

