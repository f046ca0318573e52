"""``ls --json --owners`` reads the owner map's columns (export/owner_json.py):
the same bytes as the per-inode lookups it replaces, and no index of the
inodes, no Owner per row."""

import io
import json
import tracemalloc

import numpy as np
import pytest

from tcplinger.export import owner_json, socket_array
from tcplinger.model.owner_map import OwnerMap
from tcplinger.model.socket import NetnsRef, Owner
from tcplinger.model.table import TCP_INFO_DTYPE, SocketTable, empty


class _PerInode:
    """The writer's owners before owner_json.py: each block's inodes looked
    up in the map one by one (its dict index), an Owner per fd, one
    ``json.dumps`` per distinct inode of a block."""

    def __init__(self, owners):
        self.owners = owners

    def texts(self, inode):
        holders = self.owners
        if not any(i in holders for i in np.unique(inode).tolist() if i):
            return (), False
        cache, out = {}, []
        for ino in inode.tolist():
            s = cache.get(ino)
            if s is None:
                o = holders.get(ino) if ino else None
                s = cache[ino] = json.dumps([x.to_json() for x in o]) if o else "[]"
            out.append(s)
        return out, True

    def of(self, inodes):
        return {i: self.owners[i] for i in inodes.tolist() if i in self.owners}


_COMMS = ["srv", 'q"uote', "d\u00e9mon", "back\\slash", "tab\there", "\u4e2d\u6587", "a/b"]


def _random_case(seed: int):
    """A table of n rows over a few hundred inodes (0 and unowned ones
    among them) and a map of 1-3 fds an owned inode, of a few processes."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    inodes = rng.choice(np.arange(1, 2**40, 2**31 - 1, dtype=np.uint64)[:300], 60, replace=False)
    rows = empty(n)
    rows["family"] = rng.choice([2, 10], n)
    rows["state"] = rng.choice([1, 6, 8, 10], n)
    rows["inode"] = np.where(rng.random(n) < 0.2, 0, rng.choice(inodes, n))
    rows["expires_ms"] = np.where(rng.random(n) < 0.05, -3, rng.integers(0, 60000, n))
    rows["sport"] = rng.integers(0, 65536, n)
    info = np.zeros(n, TCP_INFO_DTYPE)
    info["present"] = rng.random(n) < 0.3
    table = SocketTable(rows, info)
    procs = [Owner(int(rng.integers(1, 2**22)), _COMMS[int(rng.integers(len(_COMMS)))], -1,
                   rng.choice(["", "x --y=\u00e9", 'sh -c "z"']), rng.choice(["", "root", "w"]))
             for _ in range(int(rng.integers(1, 6)))]
    owners = {}
    for ino in rng.choice(inodes, 40, replace=False).tolist():
        held = []
        for _ in range(int(rng.choice([1, 1, 1, 2, 3]))):
            p = procs[int(rng.integers(len(procs)))]
            held.append(Owner(p.pid, p.comm, int(rng.integers(0, 2**20)), p.cmdline, p.user))
        owners[ino] = tuple(held)
    exact = np.where(rng.random(n) < 0.5, rng.random(n) * 100, np.nan)
    exact[rng.random(n) < 0.03] = 1e13  # an age the matrix cannot express: per-row writer
    return table, OwnerMap.of(owners), (exact, np.full(n, np.nan)), int(rng.integers(1, 50))


def _write(table, owners, ages, block, netns=None) -> bytes:
    out = io.BytesIO()
    socket_array.SocketArray(out.write, block=block).add(table, netns=netns, owners=owners,
                                                         ages=ages)
    return out.getvalue()


@pytest.mark.parametrize("seed", range(40))
def test_same_bytes_as_per_inode_lookups(seed, monkeypatch):
    table, owners, ages, block = _random_case(seed)
    netns = NetnsRef(4026531840, "blue") if seed % 2 else None
    new = _write(table, owners, ages, block, netns)
    monkeypatch.setattr(socket_array, "OwnerJson", _PerInode)
    old = _write(table, OwnerMap.of(owners), ages, block, netns)
    assert new == old
    assert b'"owners": [{' in new or seed % 7 == 0  # the owners are in the text
    doc = json.loads(b"[" + new + b"]")
    assert [len(d["owners"]) for d in doc] == [
        len(owners.get(i, ())) if i else 0 for i in table.rows["inode"].tolist()]


def test_a_dict_of_owners_too():
    table, owners, ages, block = _random_case(3)
    as_dict = {i: owners[i] for i in owners}
    assert _write(table, as_dict, ages, block) == _write(table, owners, ages, block)


def test_no_index_and_no_owner_per_row():
    """200k owned rows of 47 processes (the 1M population's CLOSE_WAIT part):
    the writer allocates its blocks, not the map's dict index (~112 bytes
    an inode) and an Owner per row.  Measured (tracemalloc, Python 3.11):
    15.1 MB at the peak (9.6 MB of it the same rows without owners),
    against 36.5 MB with the per-inode lookups."""
    n, procs = 200_000, 47
    rows = empty(n)
    rows["family"] = 2
    rows["state"] = 8
    rows["inode"] = np.arange(1_000_000, 1_000_000 + n, dtype=np.uint64)
    rows["sport"] = np.arange(n) % 60000
    pid = np.arange(n) % procs
    owners = OwnerMap([Owner(1000 + p, f"holder{p}", -1, f"python3 holder.py {p}", "root")
                       for p in range(procs)], pid, 3 + np.arange(n) // procs, rows["inode"])
    table = SocketTable(rows)
    ages = (np.full(n, np.nan), np.full(n, np.nan))
    tracemalloc.start()
    try:
        socket_array.SocketArray(lambda b: None, block=16384).add(table, owners=owners, ages=ages)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"{peak / 2**20:.1f} MB"
    assert owners._index is None  # no per-inode lookup was made


def test_inode_zero_is_nobodys():
    m = OwnerMap.of({0: (Owner(1, "x", 3),), 9: (Owner(1, "x", 4),)})
    texts, any_owned = owner_json.OwnerJson(m).texts(np.array([0, 9, 0], np.uint64))
    assert any_owned and texts[0] == texts[2] == "[]" and '"fd": 4' in texts[1]
    assert owner_json.OwnerJson(m).texts(np.array([0], np.uint64)) == (["[]"], False)
