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
from prometheus_client.utils import floatToGoString

from ..diagnose.finding import Finding
from ..diagnose.inputs import NamespaceInput
from ..diagnose.rules.ephemeral_ports import destination_hash
from ..model.kernel import SYSCTLS, TCPEXT_COUNTERS
from ..model.socket import AgeSource, Endpoint, NetnsRef, format_address
from ..model.states import LINGERING, OWNABLE, TcpState, name as state_name
from ..model.table import member, outgoing_ephemeral
from ..track import age as age_mod
from . import stats as stats_export

OWNER_NONE = "none"  # inode 0: no process holds it (TIME_WAIT, orphans)
OWNER_UNKNOWN = "unknown"  # held by a process that was not looked up
OWNER_OTHER = "other"  # beyond the top-K owners of the state

#: States whose sockets are attributed to processes: those a process can
#: still hold while tearing down.
OWNER_STATES = OWNABLE
#: Age histograms are kept for the lingering states only: an ESTABLISHED
#: socket's age (tcp_info last_ack_recv) is an idle time, and only a
#: second tcp_info dump that is skipped on large hosts would give it.
AGE_STATES = tuple(sorted(LINGERING))
#: Seconds: 1 s to a day; 60 s is TIME_WAIT's length and the default
#: tcp_fin_timeout, 7200 s the default tcp_keepalive_time.
AGE_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
               21600.0, 86400.0)
#: Scalar sysctls exported as tcplinger_sysctl (conntrack has its own metrics).
SYSCTL_NAMES = tuple(s.name for s in SYSCTLS
                     if s.unit != "range" and s.name not in ("tcp_mem", "nf_conntrack_count",
                                                             "nf_conntrack_max"))
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
        label = ref.label()
        if label in seen:
            label = f"{label}@{ref.inode}"
        seen.add(label)
        pod = ref.workload.pod if ref.workload is not None else None
        out[ref.inode] = (label, ref.container or "", pod or "")
    return out


class _Part:
    """What export.stats.owner_counts reads: ``table`` and ``owners``."""

    def __init__(self, table, owners):
        self.table, self.owners = table, owners


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
        sub = table.select(mask)
        inodes = set(sub.rows["inode"].tolist())
        first = {i: held[:1] for i in inodes if (held := inp.owners.get(i))}
        for entry in stats_export.owner_counts(_Part(sub, first)):
            if not entry["comm"]:  # exited between the fd walk and reading comm
                continue
            for st, n in entry["states"].items():
                owned[st][entry["comm"]] += n
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


def age_columns(inp: NamespaceInput) -> list[tuple[str, np.ndarray]]:
    """``[(source, seconds per row, NaN where that source gives none)]``.

    A tracker's ages (``inp.ages``) when given, else what one snapshot
    tells (track.age): timewait-type timers exactly, tcp_info
    ``last_ack_recv`` as a lower bound where there is no timer.
    """
    if inp.ages is not None:
        secs = np.array([np.nan if a.seconds is None else a.seconds for a in inp.ages],
                        dtype=float)
        src = np.array([a.source.value for a in inp.ages], dtype=object)
        return [(s, np.where(src == s, secs, np.nan))
                for s in sorted(set(src.tolist()) - {AgeSource.UNKNOWN.value})]
    exact, lower = age_mod.age_arrays(inp.table, inp.kernel)
    lower = np.where(np.isnan(exact), lower, np.nan)
    since_close = age_mod.since_close_mask(inp.table)
    return [(AgeSource.TIMER.value, exact),
            (AgeSource.LAST_RECV.value, np.where(since_close, np.nan, lower)),
            (AgeSource.SINCE_CLOSE.value, np.where(since_close, lower, np.nan))]


def histogram(values: np.ndarray, buckets: Sequence[float] = AGE_BUCKETS):
    """Cumulative ``[(le, count)]`` with +Inf, and the sum.

    >>> histogram(np.array([0.5, 5.0, 61.0]), (1.0, 5.0, 60.0))
    ([('1.0', 1), ('5.0', 2), ('60.0', 2), ('+Inf', 3)], 66.5)
    """
    ordered = np.sort(values)
    counts = np.searchsorted(ordered, np.asarray(buckets, dtype=float), side="right")
    out = [(floatToGoString(b), int(c)) for b, c in zip(buckets, counts)]
    out.append(("+Inf", int(len(ordered))))
    return out, float(ordered.sum())


def busiest_destinations(table, port_range: tuple[int, int] | None,
                         n: int) -> list[tuple[str, str, int]]:
    """``[(local address, "remote:port", sockets)]`` for the ``n``
    destinations holding most local ports of the ephemeral range, most
    first (ties by a stable hash, so the same ones every scrape).

    Counted as the ephemeral-port-exhaustion rule does: sockets whose local
    port is in ip_local_port_range, except listeners and sockets on a
    listening port (those are a server's), grouped by (family, local
    address, remote address, remote port).
    """
    if not port_range or n <= 0 or not len(table):
        return []
    rows = table.rows
    listening = np.unique(rows["sport"][rows["state"] == int(TcpState.LISTEN)])
    idx = np.flatnonzero(outgoing_ephemeral(rows, int(port_range[0]), int(port_range[1]),
                                            listening))
    if not len(idx):
        return []
    keys = destination_hash(rows[idx])
    uniq, counts = np.unique(keys, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    out = []
    for g in order[: n * 2]:  # a few spare groups in case a hash collision splits one
        members = idx[keys == uniq[g]]
        r = rows[members]
        i = int(members[0])
        same = ((r["family"] == rows["family"][i]) & (r["saddr"] == rows["saddr"][i])
                & (r["daddr"] == rows["daddr"][i]) & (r["dport"] == rows["dport"][i]))
        fam = int(rows["family"][i])
        src = format_address(fam, rows["saddr"][i].tobytes())
        dst = str(Endpoint(format_address(fam, rows["daddr"][i].tobytes()), int(rows["dport"][i])))
        out.append((src, dst, int(np.count_nonzero(same))))
    out.sort(key=lambda t: -t[2])
    return out[:n]


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


def build(scrape: Scrape, limits: Limits = Limits()) -> list:
    """The metric families of one scrape (without the exporter's own)."""
    f = Families()
    labels = namespace_labels(inp.netns for inp in scrape.namespaces)
    host_orphans = host_max = None
    for inp in scrape.namespaces:
        ns = list(labels[inp.netns.inode])
        counts = stats_export.namespace_counts(inp.table)
        _sockets(f, ns, inp, limits, counts)
        _ages(f, ns, inp, limits.age_histograms)
        k = inp.kernel
        f.orphans.add_metric(ns, counts["orphans"])
        f.timewait.add_metric(ns, counts["timewait_type"])
        for name in SYSCTL_NAMES:
            value = k.sysctls.get(name)
            if isinstance(value, int):
                f.sysctl.add_metric(ns + [name], value)
        if k.port_range_size:
            f.ports.add_metric(ns, k.port_range_size)
        for src, dst, n in busiest_destinations(inp.table, k.get("ip_local_port_range"),
                                                limits.top_destinations):
            f.ports_used.add_metric(ns + [src, dst], n)
        for counter in TCPEXT_COUNTERS:
            if counter in k.tcpext:
                f.tcpext.add_metric(ns + [counter], k.tcpext[counter])
        if k.conntrack:
            f.ct_entries.add_metric(ns, k.conntrack[0])
            f.ct_max.add_metric(ns, k.conntrack[1])
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


def _ages(f: Families, ns: list, inp: NamespaceInput, histograms: bool) -> None:
    st = inp.table.rows["state"]
    columns = age_columns(inp)
    fin = inp.kernel.get("tcp_fin_timeout")
    fw2 = st == int(TcpState.FIN_WAIT2)
    if isinstance(fin, int):
        best = np.full(len(st), np.nan)
        for _, secs in columns:
            best = np.where(np.isnan(best), secs, best)
        f.fw2_past.add_metric(ns, int(np.count_nonzero(fw2 & (best > fin))))
    present = set(np.unique(st).tolist())
    for state in AGE_STATES:
        if int(state) not in present:
            continue
        in_state = st == int(state)
        for source, secs in columns:
            values = secs[in_state]
            values = values[~np.isnan(values)]
            if not len(values):
                continue
            if histograms:
                buckets, total = histogram(values)
                f.age.add_metric(ns + [state.name, source], buckets, total)
            f.oldest.add_metric(ns + [state.name, source], float(values.max()))


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
