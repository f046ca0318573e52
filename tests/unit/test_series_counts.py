"""track/series.counts: sockets per (state, owner) with the owner map as
columns (OwnerKeys), against a plain per-row count written here."""

import random
from collections import Counter

import numpy as np
import pytest

from tcplinger.model.owner_map import OwnerMap
from tcplinger.model.socket import Owner
from tcplinger.model.table import SocketTable, empty
from tcplinger.track import series


def _expected(table, owners):
    c = Counter()
    for st, ino in zip(table.rows["state"].tolist(), table.rows["inode"].tolist()):
        if st not in series.OWNED_STATES:
            c[(st, "")] += 1
        elif ino == 0:
            c[(st, series.NO_PROCESS)] += 1
        else:
            found = owners.get(ino)
            c[(st, f"{found[0].pid}/{found[0].comm}" if found else "")] += 1
    return sorted(c.items())


@pytest.mark.parametrize("seed", range(30))
def test_counts_equal_a_per_row_count(seed):
    rnd = random.Random(seed)
    n = rnd.randrange(0, 300)
    rows = empty(n)
    rows["state"] = [rnd.choice((1, 4, 5, 6, 8, 9, 10, 11)) for _ in range(n)]
    rows["inode"] = [rnd.choice((0, rnd.randrange(1, 60))) for _ in range(n)]
    table = SocketTable(rows)
    # processes sharing pids with another comm (a re-exec), inodes with no owner
    procs = [(rnd.randrange(1, 6), rnd.choice(("java", "nginx", "sh"))) for _ in range(8)]
    owners = {}
    for ino in range(1, 60):
        r = rnd.random()
        if r < 0.6:
            pid, comm = rnd.choice(procs)
            owners[ino] = (Owner(pid=pid, comm=comm, fd=ino),)
        elif r < 0.7:
            owners[ino] = ()
    got = sorted(((c.state, c.owner), c.n) for c in series.counts(3, table, owners))
    assert got == _expected(table, owners)
    keyed = series.counts(3, table, series.OwnerKeys(owners))
    assert sorted(((c.state, c.owner), c.n) for c in keyed) == got
    # the watch loop's cache: each inode's first owner's key, from the
    # walk's columns (OwnerMap, several owners an inode) or a plain map
    for j in range(1, 60, 7):  # some inodes held by two processes too
        if owners.get(j):
            pid, comm = rnd.choice(procs)
            owners[j] = owners[j] + (Owner(pid=pid, comm=comm, fd=100 + j),)
    asked = list(range(0, 70))
    keys = series.first_keys(OwnerMap.of(owners), asked)
    assert keys == series.first_keys(owners, asked)
    assert keys == {i: f"{owners[i][0].pid}/{owners[i][0].comm}" if owners.get(i) else ""
                    for i in asked}
    cached = series.counts(3, table, series.OwnerKeys.of_keys(keys))
    assert sorted(((c.state, c.owner), c.n) for c in cached) == _expected(table, owners)


@pytest.mark.parametrize("seed", range(6))
def test_counts_with_many_owners_and_a_reused_key_index(seed):
    """Many owner keys (np.unique rather than a bincount of few bins) and
    one OwnerKeys asked again for the same, then other, inodes (its last
    answer is kept) count as the per-row count does."""
    rnd = random.Random(seed)
    n = rnd.randrange(1, 200)
    owners = {ino: (Owner(pid=ino, comm="p", fd=3),) for ino in range(1, 2000) if ino % 7}
    keys = series.OwnerKeys(owners)
    assert len(keys.keys) * 16 > 4 * n + 4096
    for _ in range(3):
        rows = empty(n)
        rows["state"] = [rnd.choice((1, 5, 6, 8, 9)) for _ in range(n)]
        rows["inode"] = [rnd.choice((0, rnd.randrange(1, 2000))) for _ in range(n)]
        table = SocketTable(rows)
        for _ in range(2):  # the same inodes twice, then others
            got = series.counts(3, table, keys)
            assert sorted(((c.state, c.owner), c.n) for c in got) == _expected(table, owners)
        ids = keys.ids_of(rows["inode"])
        ids[:] = 99  # the caller's copy: the kept answer is not changed
        assert keys.ids_of(rows["inode"]).tolist() == series.OwnerKeys(owners).ids_of(
            rows["inode"]).tolist()
