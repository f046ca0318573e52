"""Small helpers every rule uses: severity from thresholds, texts, sysctl
fixes, one finding per owner, the other ends of sockets (the finding's
shape itself is diagnose/rule_finding.py's)."""

from __future__ import annotations

from functools import cached_property
from itertools import repeat

import numpy as np

from ...model.owner_map import OwnerMap
from ...model.table import distinct
from ..evidence import age_stats
from ..finding import Fix, FixKind, Severity, SysctlChange, Text
from ..process_text import short_command, who


def at_least(value: float | None, threshold: float | None) -> bool:
    """A threshold is reached when the value is at least it; None is off.

    >>> at_least(10, 10), at_least(9, 10), at_least(5, None), at_least(None, 3)
    (True, False, False, False)
    """
    return threshold is not None and value is not None and value >= threshold


def level(value: float | None, warning: float | None, critical: float | None,
          default: Severity | None = Severity.INFO) -> Severity | None:
    """Severity of a value against a (warning, critical) pair.

    >>> level(999, 10, 1000).name, level(1000, 10, 1000).name, level(9, 10, 1000).name
    ('WARNING', 'CRITICAL', 'INFO')
    """
    if at_least(value, critical):
        return Severity.CRITICAL
    if at_least(value, warning):
        return Severity.WARNING
    return default


def young(ctx, rows, min_age) -> tuple[int, bool]:
    """How many of ``rows`` are known to be at least ``min_age`` old (a
    lower bound counts: the true age is larger), and whether none is:
    then the rule has no evidence that the condition lasts and accuses
    nobody (at most INFO).

    >>> import numpy as np
    >>> class C: age = np.array([0.0, 12.0, np.nan])
    >>> young(C, np.array([0, 1, 2]), 10), young(C, np.array([0, 2]), 10), young(C, np.array([0]), None)
    ((1, False), (0, True), (1, False))
    """
    if not min_age:
        return int(len(rows)), False
    ages = ctx.age[rows]
    old = int(np.count_nonzero(~np.isnan(ages) & (ages >= min_age)))
    return old, old == 0


def T(key: str, /, **fields) -> Text:  # noqa: N802 - reads like a message
    return Text(key, fields)


def sysctl_fix(text: Text, key: str, value, current, *, netns=None, requires=()) -> Fix:
    """A SYSCTL fix proposing ``value`` for ``key`` (now ``current``).

    Values come from diagnose.sysctl_proposals, so they keep the bounds
    ``tune`` keeps; the command and the sysctl.d line are rendered from them.

    >>> f = sysctl_fix(T("k"), "tcp_fin_timeout", 30, 60)
    >>> f.command, f.sysctl.per_netns
    ('sysctl -w net.ipv4.tcp_fin_timeout=30', True)
    """
    return Fix(FixKind.SYSCTL, text, sysctl=SysctlChange(key, value, current, netns,
                                                            tuple(requires)))


PEER_LOOKUPS = 20_000  # rows whose other end is looked for (cost bound)


def other_ends(ctx, world, rows) -> list[dict]:
    """The other ends of ``rows`` found in the namespaces looked at,
    grouped by (namespace, state, owner), most first (ties: in the order
    of their first row in ``rows``)."""
    from ...model.states import TcpState

    sel = rows[:PEER_LOOKUPS]
    ctx_idx, peer_rows = world.peers(ctx, sel)
    hit = np.flatnonzero(ctx_idx >= 0)
    if len(hit) == 0:
        return []
    # A code per other end of (namespace, state, orphan, holder), counted
    # in numpy; Python builds the key of one row of each code (a key tuple
    # per lookup, 20,000 of them, took 0.4 s of a report at 1M).
    ks, js = ctx_idx[hit], peer_rows[hit]
    code = np.empty(len(hit), np.int64)
    holders: dict[tuple, int] = {}  # (pid, comm, cmdline) -> number from 1
    for k in distinct(ks).tolist():
        at = np.flatnonzero(ks == k)
        other = world.contexts[k]
        j = js[at]
        inode = other.inode[j]
        holder = np.zeros(len(at), np.int64)
        owners = other.inp.owners
        if isinstance(owners, OwnerMap) and len(owners):
            # the first owner's process from the columns, no Owner a row
            start, count = owners.runs(inode)
            procs = owners.processes
            holder[:] = [holders.setdefault((procs[p].pid, procs[p].comm, procs[p].cmdline),
                                            len(holders) + 1) if c else 0
                         for p, c in zip(owners.proc[start].tolist(), count.tolist())]
        elif owners:
            holder[:] = [holders.setdefault((o[0].pid, o[0].comm, o[0].cmdline), len(holders) + 1)
                         if o else 0
                         for o in map(owners.get, inode.tolist(), repeat(()))]
        code[at] = (((k * 256 + other.state[j].astype(np.int64)) * 2 + (inode == 0)) << 32) \
            | holder
    _, first, counts = np.unique(code, return_index=True, return_counts=True)
    seen: dict[tuple, int] = {}
    for g in np.argsort(first, kind="stable").tolist():
        i = int(first[g])
        other, j = world.contexts[int(ks[i])], int(js[i])
        owners = other.owners_of_row(j)
        who = owners[0] if owners else None
        key = (other.netns.label(), TcpState(int(other.state[j])).name,
               who.pid if who else None, who.comm if who else None,
               int(other.inode[j]) == 0,
               short_command(who.cmdline, who.comm) if who else None)
        seen[key] = seen.get(key, 0) + int(counts[g])
    return [{"netns": k[0], "state": k[1], "pid": k[2], "comm": k[3], "orphan": k[4],
             "command": k[5], "count": n}
            for k, n in sorted(seen.items(), key=lambda kv: -kv[1])]


def peer_evidence(ctx, rows) -> dict:
    """Who a process's sockets talk to, by side (evidence.by_side): its
    listening ports and their peers' addresses (server side), the
    address:port it connected to (client side). Ephemeral local ports are
    left out: "Local ports: 33836 (1), 33838 (1)" told nothing."""
    from ..evidence import by_side, top_local_ports, top_remote
    server, client = by_side(ctx, rows)
    return {"peers": top_remote(ctx, server), "local_ports": top_local_ports(ctx, server),
            "destinations": top_remote(ctx, client, with_port=True)}


def peer_facts(found: dict) -> list:
    """The sentences of :func:`peer_evidence`."""
    from ..evidence import endpoint_text, port_text
    out = []
    if found["local_ports"]:
        out.append(T("rule.common.peers_server", ports=port_text(found["local_ports"]),
                     peers=endpoint_text(found["peers"])))
    if found["destinations"]:
        out.append(T("rule.common.peers_client", dests=endpoint_text(found["destinations"])))
    return out


def end_owner(h: dict) -> Text:
    """The process holding other ends (an :func:`other_ends` entry)."""
    if not h["pid"]:
        return Text("rule.common.who_unknown")
    return who(h["pid"], h["comm"], h.get("command") or h["comm"])


def other_end_facts(here: list[dict], limit: int = 3) -> list:
    out = []
    for h in here[:limit]:
        if h["pid"]:
            out.append(T("rule.common.other_end", n=h["count"], state=h["state"],
                         netns=h["netns"], who=end_owner(h)))
        else:
            out.append(T("rule.common.other_end_unowned", n=h["count"], state=h["state"],
                         netns=h["netns"]))
    return out


class HeldSocketEvidence:
    """The evidence of a rule about sockets a process holds (``ctx``,
    ``rows``, ``world``): their ages, their peers' side and the other ends
    found in other namespaces. Severity reads none of them: they are made
    when the evidence is, so a brief diagnosis (context.World.brief, the
    exporter's) does not make them."""

    @cached_property
    def stats(self) -> dict:
        return age_stats(self.ctx, self.rows)

    @cached_property
    def sides(self) -> dict:
        return peer_evidence(self.ctx, self.rows)

    @cached_property
    def here(self) -> list:
        return other_ends(self.ctx, self.world, self.rows)
