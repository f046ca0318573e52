"""Evidence helpers: the counts, peers, ports and ages a finding rests on,
as JSON-ready values, plus short human forms for message fields."""

from __future__ import annotations

import math

import numpy as np

from ..model.socket import format_address
from ..model.table import median, member
from .context import NsContext, address_words, mix64


def duration(seconds: float | None) -> str:
    """Short human duration, the same in every language.

    >>> duration(0.4), duration(75), duration(7322), duration(None), duration(3 * 86400)
    ('0.4s', '1m15s', '2h02m', '?', '3d00h')
    """
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "?"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def percent(ratio: float) -> str:
    """Short percentage.

    >>> percent(0.5), percent(0.0123), percent(1.5)
    ('50%', '1.2%', '150%')
    """
    value = ratio * 100
    return f"{value:.0f}%" if value >= 10 or value == 0 else f"{value:.1f}%"


def _addr(ctx: NsContext, i: int, column: str) -> str:
    return format_address(int(ctx.rows["family"][i]), ctx.rows[column][i].tobytes())


def top_remote(ctx: NsContext, idx: np.ndarray, n: int = 5, *, with_port: bool = False) -> list[dict]:
    """Most frequent peers (remote address, optionally with port)."""
    return _top(ctx, idx, "daddr", "dport" if with_port else None, n)


def top_local_ports(ctx: NsContext, idx: np.ndarray, n: int = 5) -> list[dict]:
    if len(idx) == 0:
        return []
    ports, counts = np.unique(ctx.rows["sport"][idx], return_counts=True)
    order = np.lexsort((ports, -counts))[:n]
    return [{"port": int(ports[k]), "count": int(counts[k])} for k in order]


def by_side(ctx: NsContext, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``idx`` split into server side (the local port has a listener in
    this namespace: accepted connections) and client side (the rest:
    connections this host opened, on ephemeral local ports, which say
    nothing; their remote address:port names the service)."""
    idx = np.asarray(idx, dtype=np.int64)
    ports = np.fromiter(ctx.listen_ports, dtype=np.uint16, count=len(ctx.listen_ports))
    server = member(ctx.rows["sport"][idx], ports)
    return idx[server], idx[~server]


def top_remote_ports(ctx: NsContext, idx: np.ndarray, n: int = 5) -> list[dict]:
    if len(idx) == 0:
        return []
    ports, counts = np.unique(ctx.rows["dport"][idx], return_counts=True)
    order = np.lexsort((ports, -counts))[:n]
    return [{"port": int(ports[k]), "count": int(counts[k])} for k in order]


#: Rows up to which :func:`_top` counts in a dict: a finding's few rows
#: (7 per pod of 150) took numpy's hashing and sorting ~0.3 ms each time.
TOP_IN_PYTHON_MAX = 256


def _top(ctx: NsContext, idx: np.ndarray, addr_col: str, port_col: str | None, n: int) -> list[dict]:
    """Most frequent (address[, port]) among ``idx``, ties in the order of
    their first row: grouped by a 64-bit hash (one uint64 sort), each
    reported group checked column by column; a few rows by the values
    themselves in a dict (the same answer: tests/unit/test_evidence_top.py)."""
    if len(idx) == 0:
        return []
    if len(idx) <= TOP_IN_PYTHON_MAX:
        return _top_few(ctx, idx, addr_col, port_col, n)
    rows = ctx.rows
    words = address_words(rows[addr_col][idx])
    with np.errstate(over="ignore"):
        h = mix64(rows["family"][idx].astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15))
        h = mix64(h ^ words[:, 0])
        h = mix64(h ^ words[:, 1])
        if port_col:
            h = mix64(h ^ rows[port_col][idx].astype(np.uint64))
    uniq, first, counts = np.unique(h, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))[:n]
    out = []
    for k in order:
        i = int(idx[first[k]])
        members = idx[h == uniq[k]]
        same = (rows["family"][members] == rows["family"][i]) & \
            (rows[addr_col][members] == rows[addr_col][i])
        if port_col:
            same &= rows[port_col][members] == rows[port_col][i]
        entry = {"address": _addr(ctx, i, addr_col), "count": int(np.count_nonzero(same))}
        if port_col:
            entry["port"] = int(rows[port_col][i])
        out.append(entry)
    return out


def _top_few(ctx: NsContext, idx: np.ndarray, addr_col: str, port_col: str | None,
             n: int) -> list[dict]:
    rows = ctx.rows
    sub = rows[idx]
    keys = zip(sub["family"].tolist(), sub[addr_col].tolist(),
               sub[port_col].tolist() if port_col else [None] * len(idx))
    groups: dict[tuple, list[int]] = {}  # key -> [count, position of its first row]
    for k, key in enumerate(keys):
        g = groups.get(key)
        if g is None:
            groups[key] = [1, k]
        else:
            g[0] += 1
    out = []
    for count, k in sorted(groups.values(), key=lambda g: -g[0])[:n]:  # stable
        i = int(idx[k])
        entry = {"address": _addr(ctx, i, addr_col), "count": count}
        if port_col:
            entry["port"] = int(rows[port_col][i])
        out.append(entry)
    return out


def endpoint_text(entries: list[dict], limit: int = 3) -> str:
    """``10.0.0.7 (120), 10.0.0.9 (3)``: the top of a list, for sentences."""
    parts = []
    for e in entries[:limit]:
        where = e["address"]
        if "port" in e:
            where = f"[{where}]:{e['port']}" if ":" in where else f"{where}:{e['port']}"
        parts.append(f"{where} ({e['count']})")
    return ", ".join(parts) if parts else "-"


def port_text(entries: list[dict], limit: int = 5) -> str:
    return ", ".join(f"{e['port']} ({e['count']})" for e in entries[:limit]) or "-"


def age_stats(ctx: NsContext, idx: np.ndarray) -> dict:
    """Oldest and median known age of the rows, and whether those are
    lower bounds (tcp_info) rather than exact (timer, tracker)."""
    if len(idx) == 0:
        return {"known": 0, "oldest_s": None, "oldest_at_least": False, "median_s": None}
    ages = ctx.age[idx]
    known = ~np.isnan(ages)
    if not known.any():
        return {"known": 0, "oldest_s": None, "oldest_at_least": False, "median_s": None}
    k = int(np.nanargmax(ages))
    return {
        "known": int(known.sum()),
        "oldest_s": round(float(ages[k]), 3),
        "oldest_at_least": bool(ctx.age_is_lower_bound[idx][k]),
        # the median of the known ages is np.nanmedian's value at a fraction
        # of its cost on small arrays (masked arrays; 0.8 ms a call)
        "median_s": round(float(median(ages[known])), 3),
    }


def age_text(stats: dict) -> str:
    if stats["oldest_s"] is None:
        return "?"
    return ("≥" if stats["oldest_at_least"] else "") + duration(stats["oldest_s"])


def count_older(ctx: NsContext, idx: np.ndarray, seconds: float) -> int:
    """Rows whose known age (exact or lower bound) is at least ``seconds``."""
    if len(idx) == 0:
        return 0
    ages = ctx.age[idx]
    return int(np.count_nonzero(~np.isnan(ages) & (ages >= seconds)))


def keepalive_mask(ctx: NsContext, idx: np.ndarray) -> np.ndarray:
    """Rows showing the keepalive timer: SO_KEEPALIVE is set on them.

    A socket with SO_KEEPALIVE shows ``timer:(keepalive,...)`` whenever no
    retransmission or probe timer is pending; without it a CLOSE_WAIT or
    ESTABLISHED socket shows no timer (sk_timer is armed by
    tcp_set_keepalive(), net/ipv4/tcp_timer.c). Orphans reuse that timer
    for FIN_WAIT2, so callers pass owned sockets only.
    """
    return ctx.rows["timer"][idx] == 2
