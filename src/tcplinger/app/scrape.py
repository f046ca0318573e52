"""The exporter's scrape source: what one Prometheus scrape reads
(export/prometheus.py builds the metrics from it).

Each scrape observes the scope afresh (app/observation.py) with tcp_info
for the teardown states and owners by the one policy, then the diagnosis
for ``tcplinger_finding``. Kernel counters of the previous scrape make the
"rising counter" rules work without ``--interval``'s sleep. A failing
owner walk or diagnosis is counted and logged; the other metrics still
come.

The samples of a namespace that need neither owners nor findings (ages,
sysctls, counters, ports: export/namespace_samples.py) are made as each
namespace's snapshot arrives, on this thread, while the workers still
read the namespaces after it (the kernel's walks run in recvmsg(),
without the GIL); the owner walk and the diagnosis look at every
namespace and come after.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..collect.owners import OwnerPolicy
from ..collect.roots import Roots
from ..collect.snapshot import Scope
from ..diagnose import engine
from . import counters
from .observation import ObserveOptions, observe


@dataclass(frozen=True)
class ScrapeOptions:
    scope: Scope
    owners: OwnerPolicy = OwnerPolicy()
    findings: bool = True  # run the diagnosis (tcplinger_finding)
    thresholds: dict = field(default_factory=dict)

    @property
    def observe(self) -> ObserveOptions:
        # No watch database (the exporter keeps its own previous readings),
        # no second dump of ESTABLISHED sockets at every scrape, and what
        # only the rules read only when they run.
        return ObserveOptions(self.scope, self.owners, history=False, idle_info=False,
                              fd_usage=self.findings, sysctl_files=self.findings)


class ScrapeSource:
    """Called once per scrape; returns export.prometheus.Scrape."""

    def __init__(self, opts: ScrapeOptions, roots: Roots = Roots(), log=None, limits=None):
        from ..export.prometheus import Limits, Preparation, Scrape

        self._Scrape, self._Preparation = Scrape, Preparation
        self.limits = Limits() if limits is None else limits  # the collector's: build's
        self.opts = opts
        self.roots = roots
        self.log = log or (lambda phase, text: None)
        self._previous: dict = {}  # netns inode -> (KernelContext, time.time())

    def __call__(self):
        # A namespace that vanishes mid-scan (a pod going away) is skipped
        # by collect.snapshot.take() under --all-netns.
        prepared = self._Preparation(self.limits)
        seen = observe(self.opts.observe, self.roots, previous=self._previous, strict=False,
                       log=self.log, on_namespace=prepared)
        phases, errors = dict(seen.phases), list(seen.errors)
        findings = None
        if self.opts.findings:
            t = time.perf_counter()
            try:
                findings = engine.diagnose(seen.inputs, thresholds=self.opts.thresholds,
                                           sysctl_files=seen.sysctl_files, sample_limit=0,
                                           brief=True)
            except Exception as exc:  # noqa: BLE001 - the other metrics still count
                errors.append("diagnose")
                self.log("diagnose", f"{type(exc).__name__}: {exc}")
            phases["diagnose"] = time.perf_counter() - t
        self._previous = counters.of_view(seen.view)
        skipped = sum(1 for ref, _ in seen.view.snapshot.skipped if ref is not None)
        return self._Scrape(seen.inputs, findings, skipped=skipped,
                            owners_resolved=seen.view.owners_resolved, phases=phases,
                            errors=errors, prepared=prepared.done)

