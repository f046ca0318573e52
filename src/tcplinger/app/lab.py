"""Use case: reproduce a teardown pathology on this kernel (``tcplinger
lab``, docs/lab.md): a scenario of lab/ run in throwaway namespaces with
the diagnosis at its moments (app/lab_diagnosis.py), what a front end
lists of the scenarios and their parameters, and the clean-up of what
earlier runs left. The CLI's only way to lab/.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..lab import registry, runner
from ..lab.params import SYSCTLS, parse_sets
from ..lab.recorder import DEFAULT_INTERVAL_S, MAX_INTERVAL_S, MIN_INTERVAL_S
from ..lab.result import LabResult
from ..lab.scenario import Scenario, prepare
from ..lab.scenarios import ALL, get
from ..lab.script import LabError, RunOptions
from ..model.params import ParamError
from .lab_diagnosis import LabDiagnosis

__all__ = ["ALL", "SYSCTLS", "DEFAULT_INTERVAL_S", "MAX_INTERVAL_S", "MIN_INTERVAL_S", "LabError",
           "RunOptions", "get", "parse_sets", "expected_s", "run", "clean", "Cleaned"]


def expected_s(scenario: Scenario, opts: RunOptions) -> float:
    """How long the run will last: ``--duration``, else the scenario's
    horizon for its parameters (0 when one is wrong: the run says which)."""
    if opts.duration:
        return opts.duration
    try:
        return scenario.horizon(prepare(scenario, opts.sets).params)
    except ParamError:
        return 0.0


def run(scenario: Scenario, opts: RunOptions, msg, progress=None) -> LabResult:
    """One run, diagnosed unless ``opts.diagnose`` is False."""
    return runner.run(opts, scenario, msg, progress, LabDiagnosis() if opts.diagnose else None)


@dataclass(frozen=True)
class Cleaned:
    report: registry.CleanReport
    #: namespaces and trace instances of the lab still there, but for runs going on
    left: list[str]


def clean() -> Cleaned:
    """Remove what runs that are over left behind (namespaces, processes,
    trace instances, records), then say what is left."""
    report = registry.clean()
    left = registry.leftovers()
    live = tuple(f"{registry.PREFIX}{rid}-" for rid in report.in_use)
    return Cleaned(report, [n for n in left["namespaces"] + left["instances"]
                            if not n.startswith(live)])
