"""Use case: ``report --capture SECONDS``. Capture every namespace of the
scope for SECONDS, diagnose the sockets at the end of the capture (so both
views cover the same moment), then analyse the captures and put, next to
each finding's sockets, the connection the wire showed on the same
4-tuple (wire/join.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..collect.roots import Roots
from ..wire.join import SocketWire, explain, record_key, tuple_key
from .diagnosis import DiagnoseOptions, Diagnosis, diagnose
from .pcap import CaptureOptions, FileResult, PcapOptions, analyse_file, capture_scope


@dataclass(frozen=True)
class JoinOptions:
    diagnose: DiagnoseOptions
    seconds: float


@dataclass
class NamespaceWire:
    """One namespace's capture and its analysis."""

    inode: int
    label: str
    result: FileResult
    captured: int | None


@dataclass
class JoinedReport:
    diagnosis: Diagnosis
    seconds: float
    captures: list[NamespaceWire]
    #: finding index -> what the wire showed for each of its sampled sockets
    sockets: dict[int, list[SocketWire]] = field(default_factory=dict)


def _sampled(finding):
    """(local, remote) of the sockets a finding shows."""
    if finding.sockets is None:
        return []
    table = finding.sockets.table
    out = []
    cache: dict = {}
    for i in range(len(table)):
        r = table.record(i, address_cache=cache)
        out.append(((r.local.address, r.local.port), (r.remote.address, r.remote.port)))
    return out


def report_with_capture(opts: JoinOptions, roots: Roots = Roots()) -> JoinedReport:
    captured = capture_scope(CaptureOptions(opts.diagnose.observe.scope, opts.seconds))
    try:
        d = diagnose(opts.diagnose, roots)
        wanted: dict[tuple, list] = {}
        per_finding = []
        for f in d.findings:
            pairs = _sampled(f)
            per_finding.append(pairs)
            for local, remote in pairs:
                wanted.setdefault(tuple_key(*local, *remote), [])
        spaces = []
        found: dict[tuple, tuple] = {}  # (inode, key) -> (record, capture start)
        for ns, stats in captured.files:
            holder: list = []

            def keep(rec, _found, holder=holder):
                if record_key(rec) in wanted:
                    holder.append(rec)
            res = analyse_file(stats.path, PcapOptions((stats.path,), end_t=stats.end_t), keep)
            start = stats.start_t or res.counts.first_t or 0.0
            for rec in holder:  # the latest connection of a 4-tuple wins
                found[(ns.inode, record_key(rec))] = (rec, start)
            spaces.append(NamespaceWire(ns.inode, ns.label(), res, stats.captured))
        out = JoinedReport(d, opts.seconds, spaces)
        for i, (f, pairs) in enumerate(zip(d.findings, per_finding)):
            rows = []
            for local, remote in pairs:
                rec, start = found.get((f.netns.inode, tuple_key(*local, *remote)),
                                       (None, 0.0))
                rows.append(explain(rec, local, remote, opts.seconds, start))
            if rows:
                out.sockets[i] = rows
        return out
    finally:
        captured.cleanup()
