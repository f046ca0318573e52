"""A finding's few rows take short paths that must answer as the general
ones: the most frequent peers counted in a dict (diagnose/evidence._top,
up to TOP_IN_PYTHON_MAX rows) as numpy's hashing and sorting counts them,
and rows all held by one process grouped (NsContext.by_owner) as the
general grouping groups them."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tcplinger.diagnose import evidence
from tcplinger.diagnose.builder import SocketBuilder, namespace
from tcplinger.diagnose.context import World
from tcplinger.model.owner_map import OwnerMap
from tcplinger.model.socket import Owner

ADDRS = ("10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::1", "fd00::2", "::ffff:10.0.0.1")


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _ctx(rnd: random.Random, owners_kind: str, columns: bool = False):
    b, owners = SocketBuilder(), {}
    procs = [Owner(pid=100, comm="a", fd=3), Owner(pid=200, comm="b", fd=4),
             Owner(pid=300, comm="c", fd=5)]
    for k in range(rnd.randrange(1, 60)):
        local = _endpoint(rnd.choice(ADDRS), rnd.choice((80, 8080, 40000 + k)))
        remote = _endpoint(rnd.choice(ADDRS), rnd.choice((80, 443, 50000)))
        ino = 1000 + k
        b.add(rnd.choice(("CLOSE_WAIT", "FIN_WAIT2", "ESTABLISHED")), local, remote, inode=ino)
        if owners_kind == "one":
            owners[ino] = (procs[0],)
        elif owners_kind == "one-fds":  # one process, an fd a socket
            owners[ino] = (Owner(pid=100, comm="a", fd=10 + k),)
        elif owners_kind == "same-pid":  # a pid seen under two names (exec)
            owners[ino] = (Owner(pid=100, comm=rnd.choice("ab"), fd=10 + k),)
        elif rnd.random() < 0.8:
            owners[ino] = tuple(rnd.sample(procs, rnd.choice((1, 1, 1, 2))))
    if columns:  # as the fd walk gives them (model/owner_map.py)
        owners = OwnerMap.of(owners)
    world = World([namespace(b.table(), owners=owners)])
    return world.contexts[0]


@pytest.mark.parametrize("seed", range(40))
def test_top_in_a_dict_as_by_hash(seed, monkeypatch):
    rnd = random.Random(seed)
    ctx = _ctx(rnd, "mixed")
    asked = [np.array(rnd.sample(range(len(ctx.rows)), rnd.randrange(1, len(ctx.rows) + 1)),
                      dtype=np.int64) for _ in range(5)]
    few = [(evidence.top_remote(ctx, a, 3), evidence.top_remote(ctx, a, 5, with_port=True))
           for a in asked]
    monkeypatch.setattr(evidence, "TOP_IN_PYTHON_MAX", 0)
    hashed = [(evidence.top_remote(ctx, a, 3), evidence.top_remote(ctx, a, 5, with_port=True))
              for a in asked]
    assert few == hashed
    # not vacuous: more rows than addresses make a group of two at least
    assert any(e["count"] > 1 for f, _ in few for e in f) or max(map(len, asked)) <= len(ADDRS)


def _by_owner_reference(ctx, idx):
    """Rows per pid holding them (each pid once per row), the unheld rows."""
    groups, unowned = {}, []
    for i in idx.tolist():
        held = ctx.inp.owners.get(int(ctx.inode[i]), ())
        if not held:
            unowned.append(i)
        for o in held:
            g = groups.setdefault(o.pid, (o, []))
            if i not in g[1]:
                g[1].append(i)
    return ({pid: (o, sorted(rows)) for pid, (o, rows) in groups.items()}, unowned)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("kind", ["one", "one-fds", "same-pid", "mixed"])
@pytest.mark.parametrize("columns", [False, True])
def test_by_owner_as_the_reference(seed, kind, columns):
    """Also with owners as columns, where rows held by one fd each of one
    process are grouped from the columns (NsContext.by_owner)."""
    rnd = random.Random(seed)
    ctx = _ctx(rnd, kind, columns)
    assert isinstance(ctx.inp.owners, OwnerMap) == columns
    for _ in range(5):
        idx = np.array(sorted(rnd.sample(range(len(ctx.rows)), rnd.randrange(0, len(ctx.rows) + 1))),
                       dtype=np.int64)
        groups, unowned = ctx.by_owner(idx)
        want_groups, want_unowned = _by_owner_reference(ctx, idx)
        assert {pid: (o, sorted(rows.tolist())) for pid, (o, rows) in groups.items()} == \
            want_groups
        assert unowned.tolist() == want_unowned and unowned.dtype == np.int64
        for _, rows in groups.values():
            assert rows.dtype == np.int64 and rows is not idx
