"""ephemeral-port-exhaustion: local ports per destination against the range.

connect() needs a local port unused for its (local address, remote
address, remote port): ``__inet_hash_connect()`` in
net/ipv4/inet_hashtables.c searches ip_local_port_range, so one
destination can hold at most that many connections from one source
address, TIME_WAIT included (tcp_tw_reuse lets connect() take a TIME_WAIT
port over for outgoing connections).

With a watch history (``NamespaceInput.trends``) the growth of the
ephemeral ports held towards the busiest remote port (track/series.
busiest_remote_port) stands for one destination's: the time until the
fullest group runs out at that rate is the *earliest* it can (evidence
only; the severity stays with the counts).
"""

from __future__ import annotations

import numpy as np

from ...model.socket import format_address
from ...model.states import TcpState
from ...model.table import outgoing_ephemeral
from ..peers import address_words, column, mix64
from .. import sysctl_proposals as propose
from ..evidence import duration, percent
from ..finding import Confidence, Fix, FixKind
from ..rates import number_text
from ..metadata import BY_ID
from ..rule_finding import RuleFinding
from ..sysctl_bounds import BOUNDS
from ._common import at_least, level, sysctl_fix

META = BY_ID["ephemeral-port-exhaustion"]


def destination_hash(rows, idx: np.ndarray | None = None) -> np.ndarray:
    """64-bit key of (family, local address, remote address, remote port)
    of each row (of ``idx``, when given)."""
    with np.errstate(over="ignore"):
        h = mix64(column(rows, "family", idx).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15))
        for name in ("saddr", "daddr"):  # one address column at a time: less memory
            words = address_words(column(rows, name, idx))
            for k in (0, 1):
                h ^= words[:, k]
                h = mix64(h)
            del words
        h ^= column(rows, "dport", idx).astype(np.uint64)
        return mix64(h)


GROUPS_SHOWN = 5


def evaluate(ctx, th, world, limit):
    rng = ctx.sysctl("ip_local_port_range")
    if not rng or th["info_ratio"] is None and th["warning_ratio"] is None \
            and th["critical_ratio"] is None:
        return []
    lo, hi = int(rng[0]), int(rng[1])
    lowest = min(v for v in (th["info_ratio"], th["warning_ratio"], th["critical_ratio"])
                 if v is not None)
    groups = destination_groups(ctx, lo, hi, lowest)
    if not groups:
        return []
    members = groups[0].pop("_members")
    for g in groups[1:]:
        g.pop("_members")
    return PortExhaustion(ctx, th, world, limit, members, port_range=(lo, hi),
                          groups=groups).findings()


def destination_groups(ctx, lo: int, hi: int, lowest: float) -> list[dict]:
    """The destinations (family, local address, remote address, remote
    port) holding at least ``lowest`` of the range's ports, fullest first;
    each with its rows as ``_members``."""
    size = hi - lo + 1
    rows = ctx.rows
    idx = np.flatnonzero(outgoing_ephemeral(rows, lo, hi, ctx.listen_ports))
    if len(idx) < lowest * size:
        return []  # no group can reach the lowest threshold: skip the grouping
    # Group by a 64-bit hash of (family, local address, remote address,
    # remote port): sorting one uint64 column is ~10x faster than
    # np.unique(axis=0) on the columns. Each reported group is then checked
    # column by column, so a hash collision could only under-count a group.
    keys = destination_hash(rows, idx)
    # Sorted once, each group is a slice (np.unique's inverse had a pass
    # over every candidate per group shown).
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    counts = np.diff(np.append(starts, len(keys)))
    del keys
    groups = []
    for g in np.argsort(-counts, kind="stable"):
        if counts[g] < lowest * size:
            break
        members = idx[order[starts[g]:starts[g] + counts[g]]]
        i = int(members[0])
        same = (rows["family"][members] == rows["family"][i]) & \
            (rows["dport"][members] == rows["dport"][i])
        for col in ("saddr", "daddr"):
            words = address_words(rows[col][members])
            mine = address_words(rows[col][i:i + 1])[0]
            same &= (words[:, 0] == mine[0]) & (words[:, 1] == mine[1])
        members = members[same]
        c = int(len(members))
        if c < lowest * size:
            continue
        fam = int(rows["family"][i])
        st = np.bincount(rows["state"][members], minlength=16)
        groups.append({
            "local_address": format_address(fam, rows["saddr"][i].tobytes()),
            "remote_address": format_address(fam, rows["daddr"][i].tobytes()),
            "remote_port": int(rows["dport"][i]),
            "sockets": c,
            "ratio": round(c / size, 4),
            "states": {TcpState(s).name: int(v) for s, v in enumerate(st) if v},
            "_members": members,
        })
    groups.sort(key=lambda g: -g["sockets"])
    return groups


class PortExhaustion(RuleFinding):
    """The fullest destination's sockets (``rows``) against the range."""

    meta = META

    def __init__(self, ctx, th, world, limit, rows, *, port_range: tuple[int, int],
                 groups: list[dict]):
        super().__init__(ctx, th, world, limit, rows)
        self.lo, self.hi = port_range
        self.groups = groups

    def measure(self) -> None:
        self.size = self.hi - self.lo + 1
        self.worst = worst = self.groups[0]
        self.ratio = worst["sockets"] / self.size
        self.tw_share = worst["states"].get("TIME_WAIT", 0) / worst["sockets"]
        self.reuse = self.ctx.sysctl("tcp_tw_reuse")
        addr, port = worst["remote_address"], worst["remote_port"]
        self.dest = f"{addr}:{port}" if ":" not in addr else f"[{addr}]:{port}"

    def severity(self):
        return level(self.ratio, self.th["warning_ratio"], self.th["critical_ratio"])

    def evidence(self) -> dict:
        return {
            "ip_local_port_range": [self.lo, self.hi],
            "ports_in_range": self.size,
            "groups": self.groups[:GROUPS_SHOWN],
            "groups_over_info": len(self.groups),
            "tcp_tw_reuse": self.reuse,
            "growing": _growing(self.ctx, self.worst["sockets"], self.size),
        }

    def title(self):
        return self.T("title", n=self.worst["sockets"], size=self.size, dest=self.dest,
                      pct=percent(self.ratio))

    def facts(self) -> list:
        T = self.T
        facts = [T("fact.range", lo=self.lo, hi=self.hi, size=self.size)]
        for g in self.groups[:GROUPS_SHOWN]:
            d = f"{g['remote_address']}:{g['remote_port']}"
            facts.append(T("fact.group", src=g["local_address"], dest=d, n=g["sockets"],
                           pct=percent(g["ratio"]),
                           states=", ".join(f"{k} {v}" for k, v in sorted(g["states"].items()))))
        growing = self.ev["growing"]
        if growing is not None and growing["time_to_limit_s"] is not None:
            facts.append(T("fact.growing", rate=number_text(growing["per_minute"], signed=True),
                           window=duration(growing["window_s"]), dest=self.dest,
                           eta=duration(growing["time_to_limit_s"])))
        return facts

    def cause(self) -> list:
        if self.tw_share >= 0.5:
            return [self.T("cause"), self.T("cause.time_wait", pct=percent(self.tw_share))]
        return [self.T("cause"), self.T("cause.open")]

    def lifetime(self) -> list:
        return [self.T("life")]

    def fixes(self) -> list:
        T, lo, hi, reuse = self.T, self.lo, self.hi, self.reuse
        fixes = [Fix(FixKind.APP, T("fix.reuse"))]
        if self.tw_share > 0:
            value = propose.tw_reuse(reuse)
            if value is not None:
                fixes.append(sysctl_fix(T("fix.tw_reuse", value=reuse), "tcp_tw_reuse", value,
                                        reuse, requires=propose.TW_REUSE_REQUIRES))
        wider = propose.port_range((lo, hi))
        if wider is not None:
            fixes.append(sysctl_fix(T("fix.range", lo=lo, hi=hi, size=self.size,
                                      new_lo=wider[0], new_hi=wider[1],
                                      new_size=wider[1] - wider[0] + 1, dest=self.dest,
                                      low=BOUNDS["ip_local_port_range"].low),
                                    "ip_local_port_range", wider, (lo, hi)))
        fixes.append(Fix(FixKind.SOCKET, T("fix.more_addresses")))
        return fixes

    def confidence(self):
        if at_least(self.ratio, self.th["warning_ratio"]):
            return Confidence.HIGH, self.T("conf.high")
        return Confidence.MEDIUM, self.T("conf.medium")


def _growing(ctx, sockets: int, size: int) -> dict | None:
    """The ``growing`` evidence: the trend of the busiest remote port's
    ephemeral ports (the watch database counts no destinations), with the
    time until the fullest group would take the whole range at that rate."""
    trends = ctx.inp.trends
    trend = trends.connections if trends is not None else None
    if trend is None:
        return None
    return trend.evidence(current=sockets, limit=size, limit_name="ephemeral ports",
                          ttl=trend.until(sockets, size), time_to_limit_is_earliest=True)
