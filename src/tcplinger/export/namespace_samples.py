"""The samples of one namespace that need neither its sockets' owners
nor the findings: ages, kernel settings and counters, ephemeral ports.

export/prometheus.build adds them namespace by namespace; the exporter's
scrape makes them as each namespace's snapshot arrives, while the others
are still being read (app/scrape.py, collect/setns.map_in_netns's
``on_result``), and build takes those it is handed (``Scrape.prepared``).
Pure: no I/O.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from prometheus_client.utils import floatToGoString

from ..diagnose.rules.ephemeral_ports import destination_hash
from ..model.kernel import SYSCTLS, TCPEXT_COUNTERS
from ..model.socket import AgeSource, Endpoint, format_address
from ..model.states import LINGERING, TcpState
from ..model.table import outgoing_ephemeral
from ..track import age as age_mod

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

#: the families :func:`add` fills (attributes of export.prometheus.Families)
FAMILIES = ("fw2_past", "age", "oldest", "orphans", "timewait", "sysctl", "ports", "ports_used",
            "tcpext", "ct_entries", "ct_max")


def add(f, ns: list, inp, limits, counts: dict) -> None:
    """Add one namespace's samples to the families ``f`` (their
    :data:`FAMILIES`): ``ns`` its label values, ``inp`` anything with
    ``table``, ``kernel`` and ``ages`` (a NamespaceInput), ``counts``
    export.stats.namespace_counts of its table, ``limits`` the
    exporter's (export.prometheus.Limits)."""
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


def age_columns(inp) -> list[tuple[str, np.ndarray]]:
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
    made = _BUCKETS.get(buckets) if isinstance(buckets, tuple) else None
    edges, labels = made or _bucket_labels(buckets)
    counts = np.searchsorted(ordered, edges, side="right").tolist()
    out = list(zip(labels, counts))
    out.append(("+Inf", int(len(ordered))))
    return out, float(ordered.sum())


_BUCKETS: dict = {}


def _bucket_labels(buckets: Sequence[float]) -> tuple:
    """(edges as a float array, their ``le`` texts): made once a bucket
    layout (a namespace's two histograms each asked for them, 13 texts)."""
    made = (np.asarray(buckets, dtype=float), [floatToGoString(b) for b in buckets])
    if isinstance(buckets, tuple):
        _BUCKETS[buckets] = made
    return made


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
    keys = destination_hash(rows, idx)
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


def _ages(f, ns: list, inp, histograms: bool) -> None:
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
