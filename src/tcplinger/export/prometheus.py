"""Prometheus metrics, built at scrape time from one fresh snapshot.

A custom collector (export/collector.py, prometheus_client's ``Collector``
protocol): every scrape asks its *source* for a :class:`Scrape` (the
namespaces' socket tables, kernel context, owners and the current
findings); :func:`build` here turns it into metric families, and it is
forgotten.  Nothing per socket outlives a scrape, so
a socket that is gone leaves no series behind, and no gauge is ever kept
per socket.  The source is given by the caller (``tcplinger exporter``
reads the kernel; tests hand in built tables): this module does no I/O.

Cardinality is bounded by :class:`Limits`: per namespace and state the
``top_owners`` processes (by name) with most sockets keep their own
``owner`` label, the rest are summed under ``owner="other"``; sockets no
process holds (TIME_WAIT, orphans: inode 0) are ``owner="none"`` and owned
sockets whose process was not looked up are ``owner="unknown"`` — so the
series of one state always add up to the state's count.  Only the owner
states (lingering states a process can hold) are attributed: owners cost a
walk of /proc/*/fd, and TIME_WAIT has no owner to find.  Ephemeral-port use
is reported for the ``top_destinations`` busiest destinations only.

Metric names, labels and meanings are listed in docs/exporter.md.

>>> from tcplinger.diagnose.builder import SocketBuilder, namespace
>>> b = SocketBuilder()
>>> b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.2:40000", inode=7, count=3)
>>> b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.3:40000", inode=0, timer=3, expires_ms=50000)
>>> fams = {f.name: f for f in build(Scrape([namespace(b.table(), name="web")]))}
>>> sorted((s.labels["state"], s.labels["owner"], s.value) for s in fams["tcplinger_sockets"].samples)
[('CLOSE_WAIT', 'unknown', 3), ('TIME_WAIT', 'none', 1)]
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)

from ..diagnose.finding import Finding
from ..diagnose.inputs import NamespaceInput
from ..model.owner_map import OwnerMap
from ..model.socket import NetnsRef
from ..model.states import OWNABLE, name as state_name
from ..model.table import member
from . import namespace_samples as samples_mod
from . import stats as stats_export
from .namespace_samples import (AGE_BUCKETS, AGE_STATES, SYSCTL_NAMES,  # noqa: F401
                                age_columns, busiest_destinations, histogram)

OWNER_NONE = "none"  # inode 0: no process holds it (TIME_WAIT, orphans)
OWNER_UNKNOWN = "unknown"  # held by a process that was not looked up
OWNER_OTHER = "other"  # beyond the top-K owners of the state

#: States whose sockets are attributed to processes: those a process can
#: still hold while tearing down.
OWNER_STATES = OWNABLE
NS_LABELS = ("netns", "container", "pod")


@dataclass(frozen=True)
class Limits:
    """Cardinality controls (``tcplinger exporter --top-owners ...``)."""

    top_owners: int = 10  # per namespace and state
    top_destinations: int = 5  # per namespace
    owner_states: frozenset = OWNER_STATES
    age_histograms: bool = True  # False: the oldest age per state only

    def __post_init__(self):
        if self.top_owners < 0 or self.top_destinations < 0:
            raise ValueError("limits must not be negative")


@dataclass
class Scrape:
    """What one scrape saw. ``findings`` is None when the diagnosis did not
    run; ``errors`` names the phases that failed (they count in
    tcplinger_scrape_errors_total); ``phases`` are seconds per phase."""

    namespaces: Sequence[NamespaceInput]
    findings: Sequence[Finding] | None = None
    skipped: int = 0  # namespaces that could not be read
    owners_resolved: bool = False
    phases: Mapping[str, float] = field(default_factory=dict)
    errors: Sequence[str] = ()
    #: netns inode -> :class:`Prepared`: samples made while the scrape read
    #: the other namespaces (:class:`Preparation`); build makes the rest
    prepared: Mapping[int, Prepared] = field(default_factory=dict)


# ---- building families (pure) -------------------------------------------------

def namespace_labels(refs: Iterable[NetnsRef]) -> dict[int, tuple[str, str, str]]:
    """``{netns inode: (netns, container, pod)}`` label values; a label two
    namespaces would share gets the inode appended, so series never collide.
    ``pod`` is the Kubernetes pod ``NAMESPACE/NAME`` (one per pod, so the
    label stays bounded), empty elsewhere.

    >>> from tcplinger.model.workload import Workload
    >>> pod = Workload("containerd", "5d1f3c2b9a8e", pod_namespace="shop", pod_name="cart")
    >>> namespace_labels([NetnsRef(1, "a"), NetnsRef(2, None, "web"), NetnsRef(3, None, "web"),
    ...                   NetnsRef(4, None, pod.label(), pod)])
    {1: ('a', '', ''), 2: ('web', 'web', ''), 3: ('web@3', 'web', ''), 4: ('pod:shop/cart', 'pod:shop/cart', 'shop/cart')}
    """
    out: dict[int, tuple[str, str, str]] = {}
    seen: set[str] = set()
    for ref in refs:
        out[ref.inode] = _labels(ref, seen)
    return out


def _labels(ref: NetnsRef, seen: set) -> tuple[str, str, str]:
    """One namespace's labels in :func:`namespace_labels` (``seen``: the
    labels of the namespaces before it, added to)."""
    label = ref.label()
    if label in seen:
        label = f"{label}@{ref.inode}"
    seen.add(label)
    pod = ref.workload.pod if ref.workload is not None else None
    return (label, ref.container or "", pod or "")


def owner_breakdown(inp: NamespaceInput, limits: Limits = Limits(),
                    counts: dict | None = None) -> dict[str, dict[str, int]]:
    """``{state: {owner label: sockets}}``; each state's values add up to
    its count in export.stats.namespace_counts (``counts``, when the
    caller has it already).

    A socket several processes hold (an fd inherited over fork) counts
    once, for its lowest pid.
    """
    table = inp.table
    totals = (counts or stats_export.namespace_counts(table))["states"]
    rows = table.rows
    none = Counter()
    kernel_held = rows["state"][rows["inode"] == 0]
    for s, n in enumerate(np.bincount(kernel_held, minlength=16)):
        if n:
            none[state_name(s)] += int(n)
    owned: dict[str, Counter] = defaultdict(Counter)
    if inp.owners is not None and limits.owner_states:
        mask = member(rows["state"], [int(s) for s in limits.owner_states]) & (rows["inode"] != 0)
        _count_owned(owned, rows, np.flatnonzero(mask), OwnerMap.of(inp.owners))
    out: dict[str, dict[str, int]] = {}
    for st, total in totals.items():
        labels: dict[str, int] = {}
        ranked = sorted(owned.get(st, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        for comm, n in ranked[:limits.top_owners]:
            labels[comm] = labels.get(comm, 0) + n
        rest = sum(n for _, n in ranked[limits.top_owners:])
        if rest:
            labels[OWNER_OTHER] = labels.get(OWNER_OTHER, 0) + rest
        if none[st]:
            labels[OWNER_NONE] = labels.get(OWNER_NONE, 0) + none[st]
        unknown = total - sum(n for _, n in ranked) - none[st]
        if unknown:
            labels[OWNER_UNKNOWN] = labels.get(OWNER_UNKNOWN, 0) + unknown
        out[st] = labels
    return out


def _count_owned(owned: dict, rows: np.ndarray, idx: np.ndarray, om: OwnerMap) -> None:
    """Add the sockets ``idx`` of ``rows`` to ``owned[state][comm]``, each
    for the process of its first owner entry (the walk gives them by pid,
    so its lowest pid), under the comm of the process of that pid's last
    row; no comm (exited between the fd walk and reading comm): left out.

    From the owner columns (model/owner_map.py): a map of each socket's
    first Owner, then export.stats.owner_counts of it, took ~1 ms a
    namespace, 0.1 s of a 150-pod scrape (issue 16)."""
    if not len(idx) or not len(om):
        return
    start, count = om.runs(rows["inode"][idx])
    held = count > 0
    if not held.any():
        return
    proc = om.proc[start[held]]
    pid = np.array([p.pid for p in om.processes], np.int64)[proc]
    last = dict(zip(pid.tolist(), proc.tolist()))  # a later row's process replaces
    keys, n = np.unique(pid * 256 + rows["state"][idx[held]], return_counts=True)
    for key, c in zip(keys.tolist(), n.tolist()):
        comm = om.processes[last[key >> 8]].comm
        if comm:
            owned[state_name(key & 0xFF)][comm] += c


class Families:
    """Every family of one scrape, created up front so that each has HELP
    and TYPE even when it has no sample."""

    def __init__(self):
        ns = list(NS_LABELS)
        g, c = GaugeMetricFamily, CounterMetricFamily
        self.sockets = g("tcplinger_sockets", "TCP sockets by state and owning process (top "
                         "owners per state; other: the rest; none: no process holds them; "
                         "unknown: owner not looked up)", labels=ns + ["state", "owner"])
        self.age = HistogramMetricFamily(
            "tcplinger_socket_age_seconds", "Time in the current state of lingering sockets, "
            "by where the age comes from (timer: exact; last_recv: a lower bound)",
            labels=ns + ["state", "source"])
        self.oldest = g("tcplinger_socket_oldest_age_seconds", "Age in state of the oldest "
                        "lingering socket per state and age source", labels=ns + ["state", "source"])
        self.fw2_past = g("tcplinger_fin_wait2_past_timeout", "FIN_WAIT2 sockets in that state "
                          "for longer than tcp_fin_timeout (held open by a process that "
                          "shut down its sending side only)", labels=ns)
        self.orphans = g("tcplinger_orphans", "Orphaned sockets (closed by their process, "
                         "held by the kernel) in the namespace", labels=ns)
        self.timewait = g("tcplinger_timewait_sockets", "Timewait-type sockets (TIME_WAIT and "
                          "orphaned FIN_WAIT2), the count tcp_max_tw_buckets limits", labels=ns)
        self.sysctl = g("tcplinger_sysctl", "Kernel settings that govern teardown (global ones "
                        "repeat the host's value)", labels=ns + ["name"])
        self.ports = g("tcplinger_ephemeral_ports", "Ports in ip_local_port_range", labels=ns)
        self.ports_used = g("tcplinger_ephemeral_ports_used", "Local ports of the ephemeral "
                            "range held towards one destination (busiest destinations)",
                            labels=ns + ["source", "destination"])
        self.tcpext = c("tcplinger_tcpext", "TcpExt counters from /proc/net/netstat",
                        labels=ns + ["counter"])
        self.ct_entries = g("tcplinger_conntrack_entries", "nf_conntrack_count", labels=ns)
        self.ct_max = g("tcplinger_conntrack_max", "nf_conntrack_max", labels=ns)
        self.host_orphans = g("tcplinger_host_orphans", "Orphaned TCP sockets on the whole "
                              "host (sockstat), the count tcp_max_orphans limits")
        self.host_max_orphans = g("tcplinger_host_max_orphans", "tcp_max_orphans")
        # the namespace labels of every other family, so a finding names
        # the pod or container it is in, as the socket counts do
        # and the owner's shortened command line (one per finding's first
        # owner: the cardinality stays that of the findings)
        fl = ["rule", "severity", *NS_LABELS, "owner", "command"]
        self.finding = g("tcplinger_finding", "Current findings of the diagnosis (see "
                         "`tcplinger explain RULE`)", labels=fl)
        self.finding_sockets = g("tcplinger_finding_sockets", "Sockets (or entries) a current "
                                 "finding covers", labels=fl)

    def all(self) -> list:
        return list(vars(self).values())


@dataclass(frozen=True)
class Prepared:
    """One namespace's samples of namespace_samples.FAMILIES, made from
    ``table`` and ``kernel`` with ``limits`` and labelled ``labels``
    before the scrape had read every namespace; build takes them for a
    namespace whose input is still that table and kernel, with no
    tracked ages, and whose labels and limits are the same."""

    table: object
    kernel: object
    labels: tuple
    limits: Limits
    counts: dict  # export.stats.namespace_counts of table
    families: Families

    def fits(self, inp: NamespaceInput, labels: tuple, limits: Limits) -> bool:
        return (self.table is inp.table and self.kernel is inp.kernel and inp.ages is None
                and self.labels == labels and self.limits == limits)


class Preparation:
    """Called with each namespace's snapshot (model.snapshot.NetnsSnapshot)
    in the snapshot's order as it arrives (collect/snapshot.take's
    ``on_namespace``); ``done`` is what :class:`Scrape` takes as
    ``prepared``. Labels are given in arrival order as namespace_labels
    gives them in the scrape's order (the same order); build checks."""

    def __init__(self, limits: Limits = Limits()):
        self.limits = limits
        self.done: dict[int, Prepared] = {}
        self._seen: set = set()

    def __call__(self, ns) -> None:
        labels = _labels(ns.netns, self._seen)
        try:
            counts = stats_export.namespace_counts(ns.table)
            f = Families()
            # the samples as build would add them (ns.ages: none, a snapshot's)
            samples_mod.add(f, list(labels), _Snap(ns.table, ns.kernel), self.limits, counts)
        except Exception:  # noqa: BLE001 - build makes them again, and fails there if it must
            return
        self.done[ns.netns.inode] = Prepared(ns.table, ns.kernel, labels, self.limits, counts, f)


class _Snap:
    """What namespace_samples.add reads of a namespace: table, kernel, ages."""

    ages = None

    def __init__(self, table, kernel):
        self.table, self.kernel = table, kernel


def build(scrape: Scrape, limits: Limits = Limits()) -> list:
    """The metric families of one scrape (without the exporter's own)."""
    f = Families()
    labels = namespace_labels(inp.netns for inp in scrape.namespaces)
    host_orphans = host_max = None
    for inp in scrape.namespaces:
        label = labels[inp.netns.inode]
        ns = list(label)
        pre = scrape.prepared.get(inp.netns.inode)
        if pre is not None and pre.fits(inp, label, limits):
            counts = pre.counts
            _sockets(f, ns, inp, limits, counts)
            for name in samples_mod.FAMILIES:
                getattr(f, name).samples += getattr(pre.families, name).samples
        else:
            counts = stats_export.namespace_counts(inp.table)
            _sockets(f, ns, inp, limits, counts)
            samples_mod.add(f, ns, inp, limits, counts)
        k = inp.kernel
        if host_orphans is None and k.sockstat is not None:
            host_orphans = k.sockstat.orphan  # host-wide in every namespace
        if host_max is None and isinstance(k.get("tcp_max_orphans"), int):
            host_max = k.get("tcp_max_orphans")
    if host_orphans is not None:
        f.host_orphans.add_metric([], host_orphans)
    if host_max is not None:
        f.host_max_orphans.add_metric([], host_max)
    _findings(f, scrape.findings or (), labels)
    return f.all()


def _sockets(f: Families, ns: list, inp: NamespaceInput, limits: Limits, counts) -> None:
    for st, owners in sorted(owner_breakdown(inp, limits, counts).items()):
        for owner, n in sorted(owners.items()):
            f.sockets.add_metric(ns + [st, owner], n)


def _findings(f: Families, findings: Iterable[Finding], labels: Mapping) -> None:
    agg: dict[tuple, list[int]] = {}
    for x in findings:
        # a finding about a namespace the scrape did not list (the host's,
        # for host-wide rules) is labelled as namespace_labels would
        ns = labels.get(x.netns.inode) or namespace_labels([x.netns])[x.netns.inode]
        owner = x.owners[0].comm if x.owners else ""
        command = (x.owners[0].command or owner) if x.owners else ""
        key = (x.rule, x.severity.label, *ns, owner, command)
        n = agg.setdefault(key, [0, 0])
        n[0] += 1
        n[1] += int(x.count)
    for key, (n, sockets) in sorted(agg.items()):
        f.finding.add_metric(list(key), n)
        f.finding_sockets.add_metric(list(key), sockets)
