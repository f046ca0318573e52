"""Diagnose a host: observe the scope (app/observation.py), then run the
rules (diagnose/engine.py) over every namespace at once. ``report``,
``check``, ``tune``, the exporter and the lab call this."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

from ..collect.roots import Roots
from ..collect.snapshot import Scope
from ..diagnose import engine
from ..diagnose.groups import FindingGroup, group_findings
from ..diagnose.summary import Overview, namespace_summary, overview
from ..diagnose.inputs import NamespaceInput
from ..diagnose.metadata import merge
from .observation import Observation, ObserveOptions, observe
from .view import View


@dataclass(frozen=True)
class DiagnoseOptions:
    observe: ObserveOptions
    thresholds: dict = field(default_factory=dict)  # {rule: {name: value}} overrides
    rules: tuple[str, ...] | None = None  # None: every rule
    sample: int = engine.SAMPLE_LIMIT  # sockets kept per finding


@dataclass
class Diagnosis:
    view: View
    inputs: list[NamespaceInput]
    findings: list
    owners_skipped: int | None  # open files the owner walk would have read when skipped
    thresholds: dict  # every rule's thresholds, overrides applied

    @cached_property
    def groups(self) -> list[FindingGroup]:
        """The findings grouped across namespaces by rule and program
        (diagnose/groups.py): what a node with many pods is shown."""
        return group_findings(self.findings)

    @cached_property
    def summaries(self) -> list[dict]:
        """Per namespace, the states and the limits that govern them."""
        return [namespace_summary(i) for i in self.inputs]

    @cached_property
    def overview(self) -> Overview:
        """The namespaces with lingering sockets or findings, the quiet ones
        counted (diagnose/summary.py)."""
        return overview(self.summaries, self.findings)


def diagnose(opts: DiagnoseOptions, roots: Roots = Roots(), *, previous: dict | None = None,
             extra_scopes: tuple[Scope, ...] = (), ages: Callable | None = None,
             tables: dict | None = None) -> Diagnosis:
    """Observe, then the rules. See :func:`app.observation.observe` for
    ``previous``, ``extra_scopes``, ``ages`` and ``tables``."""
    seen = observe(opts.observe, roots, previous=previous, extra_scopes=extra_scopes, ages=ages,
                   tables=tables)
    return Diagnosis(seen.view, seen.inputs, findings(seen, opts), seen.owners_skipped,
                     merge(opts.thresholds))


def findings(seen: Observation, opts: DiagnoseOptions) -> list:
    """The rules over what was observed."""
    return engine.diagnose(seen.inputs, thresholds=opts.thresholds, rules=opts.rules,
                           sysctl_files=seen.sysctl_files, sample_limit=opts.sample)
