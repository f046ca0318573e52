"""export.stats.owner_counts (from the owner columns) against the
straightforward loop it replaced (issue 16: 12.7 ms of a 10k-socket
``stats --owners``), on random tables and owner maps: the same processes,
counts and order, states in the same (first seen) order and each process's
details from its last row, so ``stats --json`` stays byte for byte the
same."""

import json
import random
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest

from tcplinger.export.stats import owner_counts
from tcplinger.model.owner_map import OwnerMap
from tcplinger.model.socket import Owner
from tcplinger.model.states import name as state_name
from tcplinger.model.table import SocketTable, empty


def reference(part):
    """The loop of before (a defaultdict per process and a set per row)."""
    per = defaultdict(lambda: defaultdict(int))
    info = {}
    st = part.table.rows["state"].tolist()
    ino = part.table.rows["inode"].tolist()
    for s, i in zip(st, ino):
        if not i:
            continue
        seen = set()
        for o in part.owners.get(i, ()):
            if o.pid not in seen:
                seen.add(o.pid)
                per[o.pid][state_name(s)] += 1
                info[o.pid] = o
    out = []
    for pid, states in per.items():
        o = info[pid]
        out.append({"pid": pid, "comm": o.comm, "user": o.user, "container": o.container,
                    "total": sum(states.values()), "states": dict(states)})
    out.sort(key=lambda d: (-d["total"], d["pid"]))
    return out


def random_part(rng: random.Random) -> SimpleNamespace:
    n = rng.randrange(0, 400)
    rows = empty(n)
    rows["state"] = [rng.choice([1, 1, 1, 2, 4, 5, 6, 7, 8, 9, 10, 12, 13]) for _ in range(n)]
    rows["inode"] = [0 if rng.random() < 0.2 else rng.randrange(1, 300) for _ in range(n)]
    pids = [rng.randrange(1, 40) for _ in range(rng.randrange(1, 8))]
    owners = {}
    for inode in set(rows["inode"].tolist()) - {0}:
        if rng.random() < 0.1:
            continue  # no owner found (closed meanwhile, another namespace's)
        held = [Owner(pid=rng.choice(pids), fd=rng.randrange(3, 100), comm=f"c{rng.random():.3f}",
                      cmdline="x", uid=0, user="root", container=None)
                for _ in range(rng.choice([1, 1, 1, 2, 3]))]
        owners[inode] = tuple(sorted(held, key=lambda o: (o.pid, o.fd)))
    return SimpleNamespace(table=SocketTable(rows), owners=owners)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("columns", [False, True])
def test_owner_counts_equal_the_reference(seed, columns):
    part = random_part(random.Random(seed))
    if columns:  # what a walk gives (collect/owners.py), rather than a dict
        part.owners = OwnerMap.of(part.owners)
    got, want = owner_counts(part), reference(part)
    assert json.dumps(got) == json.dumps(want)  # key order too: the JSON is the same


@pytest.mark.parametrize("n", [0, 5])
def test_no_owner_found(n):
    part = SimpleNamespace(table=SocketTable(empty(n)), owners={})
    assert owner_counts(part) == [] == reference(part)


def test_unresolved_owners_stay_none():
    assert owner_counts(SimpleNamespace(table=SocketTable(empty(3)), owners=None)) is None


def test_a_socket_held_by_two_fds_of_one_process_counts_once():
    rows = empty(2)
    rows["state"], rows["inode"] = [8, 1], [7, 9]
    mk = lambda pid, fd: Owner(pid=pid, fd=fd, comm="srv", cmdline="srv", uid=0, user="root",
                               container=None)
    part = SimpleNamespace(table=SocketTable(rows), owners={7: (mk(5, 3), mk(5, 4), mk(6, 3)),
                                                            9: (mk(5, 8),)})
    assert [(d["pid"], d["total"], d["states"]) for d in owner_counts(part)] == \
        [(5, 2, {"CLOSE_WAIT": 1, "ESTABLISHED": 1}), (6, 1, {"CLOSE_WAIT": 1})]
    assert np.array_equal(part.table.rows["inode"], [7, 9])
