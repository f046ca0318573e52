"""The Prometheus collector: one fresh :class:`~tcplinger.export.prometheus.Scrape`
per ``collect()``, built into metric families by export/prometheus.py, plus
the collector's own metrics (duration, success, errors by phase, version)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .. import __version__
from .prometheus import Families, Limits, Scrape, build

class TcplingerCollector(Collector):
    """Registers with a ``CollectorRegistry``; every ``collect()`` (one per
    scrape) calls ``source()`` for a fresh :class:`Scrape`.

    Scrapes are serialised: two scrapers arriving together wait for each
    other rather than dumping the kernel's tables twice at once. A failing
    source costs one tcplinger_scrape_errors_total{phase="scrape"} and
    tcplinger_scrape_success 0, not an HTTP error, and ``log`` gets one line.
    """

    def __init__(self, source: Callable[[], Scrape], limits: Limits = Limits(), *,
                 log: Callable[[str], None] | None = None):
        self._source = source
        self._limits = limits
        self._log = log
        self._lock = threading.Lock()
        self._errors: Counter = Counter()
        self.last_ok: bool | None = None  # None: no scrape yet

    def describe(self):
        """The families, without samples: registering (and ``?name[]=``
        filtering) must not take a snapshot."""
        return Families().all() + self._own(0.0, True, None)

    def collect(self):
        with self._lock:
            t0 = time.perf_counter()
            scrape, families, ok = None, [], True
            try:
                scrape = self._source()
                t1 = time.perf_counter()
                families = build(scrape, self._limits)
                scrape.phases = {**scrape.phases, "build": time.perf_counter() - t1}
            except Exception as exc:  # noqa: BLE001 - reported as a metric and a log line
                ok = False
                self._errors["scrape"] += 1
                if self._log:
                    self._log(f"{type(exc).__name__}: {exc}")
            if scrape is not None:
                for phase in scrape.errors:
                    self._errors[phase] += 1
            self.last_ok = ok
            families += self._own(time.perf_counter() - t0, ok, scrape)
        yield from families

    def _own(self, seconds: float, ok: bool, scrape: Scrape | None) -> list:
        g = GaugeMetricFamily
        duration = g("tcplinger_scrape_duration_seconds", "Wall time of the last scrape")
        duration.add_metric([], seconds)
        success = g("tcplinger_scrape_success", "1 when the last scrape read the kernel")
        success.add_metric([], 1 if ok else 0)
        errors = CounterMetricFamily("tcplinger_scrape_errors", "Scrapes in which a phase "
                                     "failed, by phase", labels=["phase"])
        for phase in ("scrape", "owners", "diagnose"):
            errors.add_metric([phase], self._errors.get(phase, 0))
        for phase in sorted(set(self._errors) - {"scrape", "owners", "diagnose"}):
            errors.add_metric([phase], self._errors[phase])
        phases = g("tcplinger_scrape_phase_seconds", "Wall time of each phase of the last "
                   "scrape", labels=["phase"])
        namespaces = g("tcplinger_namespaces", "Network namespaces read by the last scrape")
        skipped = g("tcplinger_namespaces_skipped", "Network namespaces that could not be read")
        owners = g("tcplinger_owners_resolved", "1 when the last scrape looked up the "
                   "processes owning sockets")
        info = g("tcplinger_build_info", "tcplinger version", labels=["version"])
        info.add_metric([__version__], 1)
        if scrape is not None:
            for phase, secs in sorted(scrape.phases.items()):
                phases.add_metric([phase], secs)
            namespaces.add_metric([], len(scrape.namespaces))
            skipped.add_metric([], scrape.skipped)
            owners.add_metric([], 1 if scrape.owners_resolved else 0)
        return [duration, success, errors, phases, namespaces, skipped, owners, info]
