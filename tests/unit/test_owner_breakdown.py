"""export/prometheus.owner_breakdown from the owner columns (issue 16: a
150-pod scrape) gives what its former formula gave: a map of each
socket's first Owner, then export.stats.owner_counts of it; on random
tables and owners (dicts and OwnerMaps, sockets shared by processes, a
pid seen under two comms, processes without a comm, top-K cut-offs)."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import numpy as np
import pytest

from tcplinger.diagnose.builder import SocketBuilder, namespace
from tcplinger.export import prometheus, stats
from tcplinger.model.owner_map import OwnerMap
from tcplinger.model.socket import Owner
from tcplinger.model.states import name as state_name
from tcplinger.model.table import member

STATES = ("ESTABLISHED", "LISTEN", "CLOSE_WAIT", "FIN_WAIT2", "FIN_WAIT1", "TIME_WAIT",
          "LAST_ACK", "CLOSING", "SYN_RECV")


class _Part:
    def __init__(self, table, owners):
        self.table, self.owners = table, owners


def _before(inp, limits):
    """The former body: owned[state][comm] then the labels."""
    table = inp.table
    totals = stats.namespace_counts(table)["states"]
    rows = table.rows
    none = Counter()
    for s, n in enumerate(np.bincount(rows["state"][rows["inode"] == 0], minlength=16)):
        if n:
            none[state_name(s)] += int(n)
    owned = defaultdict(Counter)
    if inp.owners is not None and limits.owner_states:
        mask = member(rows["state"], [int(s) for s in limits.owner_states]) & (rows["inode"] != 0)
        sub = table.select(mask)
        inodes = set(sub.rows["inode"].tolist())
        first = {i: held[:1] for i in inodes if (held := inp.owners.get(i))}
        for entry in stats.owner_counts(_Part(sub, first)):
            if not entry["comm"]:
                continue
            for st, n in entry["states"].items():
                owned[st][entry["comm"]] += n
    out = {}
    for st, total in totals.items():
        labels = {}
        ranked = sorted(owned.get(st, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        for comm, n in ranked[:limits.top_owners]:
            labels[comm] = labels.get(comm, 0) + n
        rest = sum(n for _, n in ranked[limits.top_owners:])
        if rest:
            labels["other"] = labels.get("other", 0) + rest
        if none[st]:
            labels["none"] = labels.get("none", 0) + none[st]
        unknown = total - sum(n for _, n in ranked) - none[st]
        if unknown:
            labels["unknown"] = labels.get("unknown", 0) + unknown
        out[st] = labels
    return out


def _input(rnd: random.Random):
    b = SocketBuilder()
    for _ in range(rnd.randrange(1, 15)):
        state = rnd.choice(STATES)
        b.add(state, f"10.0.0.1:{rnd.choice((80, 443, 8080))}",
              "0.0.0.0:0" if state == "LISTEN" else f"10.0.0.{rnd.randrange(2, 5)}:40000",
              count=rnd.randrange(1, 6), inode=rnd.choice((None, None, 0)),
              vary=rnd.choice(("sport", "dport")))
    table = b.table()
    comms = ["api", "worker", "", "nginx", "db"]
    owners = {}
    for inode in set(table.rows["inode"].tolist()) - {0}:
        if rnd.random() < 0.75:
            held = []
            for pid in sorted(rnd.sample(range(1, 7), rnd.choice((1, 1, 1, 2, 3)))):
                # pid 6 shows under two comms (exec between reads)
                comm = rnd.choice(("a", "b")) if pid == 6 else comms[pid % len(comms)]
                held.append(Owner(pid=pid, comm=comm, fd=rnd.randrange(3, 90),
                                  cmdline=f"/bin/{comm}"))
            if rnd.random() < 0.3:
                rnd.shuffle(held)  # a mapping need not list the lowest pid first
            owners[inode] = tuple(held)
    kind = rnd.choice(("dict", "map", "none"))
    owners = {"dict": owners, "map": OwnerMap.of(owners), "none": None}[kind]
    return namespace(table, owners=owners)


@pytest.mark.parametrize("seed", range(300))
def test_owner_breakdown_as_before(seed):
    rnd = random.Random(seed)
    inp = _input(rnd)
    limits = prometheus.Limits(top_owners=rnd.choice((0, 1, 2, 10)))
    assert prometheus.owner_breakdown(inp, limits) == _before(inp, limits)


def test_not_vacuous():
    kinds = Counter()
    for seed in range(300):
        rnd = random.Random(seed)
        inp = _input(rnd)
        limits = prometheus.Limits(top_owners=rnd.choice((0, 1, 2, 10)))
        for labels in prometheus.owner_breakdown(inp, limits).values():
            kinds.update(k if k in ("other", "none", "unknown") else "comm" for k in labels)
    assert min(kinds[k] for k in ("other", "none", "unknown", "comm")) > 20, kinds
