"""NsContext.by_owner from the owner columns against the loop it replaced
(one map lookup, i.e. one tuple of Owners made, per row: ~0.05 s of a
10k-socket report, issue 16), on random rows and owner maps, given as a
dict and as an OwnerMap: the same groups, members, Owners and ownerless
rows."""

import random
from types import SimpleNamespace

import numpy as np
import pytest

from tcplinger.diagnose.context import NsContext
from tcplinger.model.owner_map import OwnerMap
from tcplinger.model.socket import Owner


def reference(inode: np.ndarray, owners, idx):
    """by_owner as it was: every row's Owners asked of the map."""
    idx = np.asarray(idx, dtype=np.int64)
    owners = owners or {}
    if not owners or len(idx) == 0:
        return {}, idx
    found = [owners.get(i) for i in inode[idx].tolist()]
    first_pid = np.fromiter((f[0].pid if f else -1 for f in found), dtype=np.int64,
                            count=len(found))
    extra_rows, who = {}, {}
    for k, f in enumerate(found):
        if f and len(f) > 1:
            for o in f[1:]:
                if o.pid != f[0].pid and int(idx[k]) not in extra_rows.get(o.pid, ()):
                    extra_rows.setdefault(o.pid, []).append(int(idx[k]))
                    who.setdefault(o.pid, o)
    if not extra_rows and first_pid[0] >= 0 and (first_pid == first_pid[0]).all():
        return {int(first_pid[0]): (found[0][0], idx.copy())}, idx[:0].copy()
    groups = {}
    owned = first_pid >= 0
    if owned.any():
        pids, first, inverse = np.unique(first_pid[owned], return_index=True, return_inverse=True)
        owned_idx, owned_pos = idx[owned], np.flatnonzero(owned)
        order = np.argsort(inverse.reshape(-1), kind="stable")
        bounds = np.searchsorted(inverse.reshape(-1)[order], np.arange(len(pids) + 1))
        for g, pid in enumerate(pids.tolist()):
            groups[pid] = (found[owned_pos[first[g]]][0], owned_idx[order[bounds[g]:bounds[g + 1]]])
    for pid, extra in extra_rows.items():
        if pid in groups:
            o, members = groups[pid]
            groups[pid] = (o, np.union1d(members, np.array(extra, dtype=np.int64)))
        else:
            groups[pid] = (who[pid], np.array(sorted(extra), dtype=np.int64))
    return groups, idx[~owned]


def random_case(rng: random.Random):
    n = rng.randrange(1, 300)
    inode = np.array([0 if rng.random() < 0.2 else rng.randrange(1, 200) for _ in range(n)],
                     np.uint64)
    pids = [rng.randrange(1, 30) for _ in range(rng.choice([1, 1, 3, 8]))]
    details = {p: (f"c{p}", f"cmd {p}") for p in pids}
    owners = {}
    for ino in set(inode.tolist()) - {0}:
        if rng.random() < 0.15:
            continue
        held = []
        for _ in range(rng.choice([1, 1, 1, 1, 2, 3])):
            p = rng.choice(pids)
            held.append(Owner(pid=p, fd=rng.randrange(3, 500), comm=details[p][0],
                              cmdline=details[p][1], uid=0, user="root", container=None))
        owners[ino] = tuple(sorted(held, key=lambda o: (o.pid, o.fd)))
    idx = np.array(sorted(rng.sample(range(n), rng.randrange(0, n + 1))), np.int64)
    return inode, owners, idx


def as_comparable(result):
    groups, ownerless = result
    return ({pid: (o, members.tolist()) for pid, (o, members) in groups.items()},
            ownerless.tolist())


@pytest.mark.parametrize("seed", range(60))
@pytest.mark.parametrize("columns", [False, True])
def test_by_owner_equals_the_reference(seed, columns):
    inode, owners, idx = random_case(random.Random(seed))
    given = OwnerMap.of(owners) if columns else owners
    ctx = SimpleNamespace(inode=inode, inp=SimpleNamespace(owners=given))
    got = NsContext.by_owner(ctx, idx)
    want = reference(inode, owners, idx)
    assert as_comparable(got) == as_comparable(want)
    assert list(got[0]) == list(want[0])  # the groups' order too
