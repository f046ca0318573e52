"""model/owner_map.OwnerMap: the owners of sockets as columns behave as the
dict of tuples of Owners they replace, and the walk that makes them holds
no Python object per socket found (docs/performance.md, "1M memory")."""

import gc
import os
import pickle
import tracemalloc

import numpy as np
from hypothesis import given, settings, strategies as hs

from tcplinger.collect import fdwalk, owners
from tcplinger.model.owner_map import OwnerMap
from tcplinger.model.socket import Owner

processes = hs.lists(hs.tuples(hs.integers(1, 4 * 10**6), hs.sampled_from(["srv", "状态", ""]),
                               hs.sampled_from(["", "srv -x"]), hs.sampled_from([None, "docker:1"])),
                     min_size=1, max_size=5)


@settings(max_examples=150, deadline=None)
@given(processes, hs.lists(hs.tuples(hs.integers(1, 2**40), hs.integers(0, 4),
                                     hs.integers(-1, 10**6)), max_size=40),
       hs.lists(hs.integers(0, 2**40), max_size=10))
def test_same_as_the_dict_it_replaces(procs, entries, others):
    """Any inode -> owners dict (owners in any order, shared pids, several
    fds of one process) reads the same through its OwnerMap, one inode at
    a time and a column at a time."""
    reference: dict[int, tuple[Owner, ...]] = {}
    for ino, p, fd in entries:
        pid, comm, cmdline, container = procs[p % len(procs)]
        o = Owner(pid, comm, fd, cmdline, "root", 0, container)
        reference[ino] = reference.get(ino, ()) + (o,)
    m = OwnerMap.of(reference)
    assert m == reference and dict(m) == reference and len(m) == len(reference)
    for ino in list(reference) + others + [0]:
        assert m.get(ino, ()) == reference.get(ino, ())
        assert (ino in m) == (ino in reference)
    asked = np.array(list(reference) + others + [0], np.uint64)
    start, count = m.runs(asked)
    for ino, s, c in zip(asked.tolist(), start.tolist(), count.tolist()):
        assert m.owners_at(s, s + c) == reference.get(ino, ())
    assert hash(m.get(entries[0][0])) == hash(reference[entries[0][0]]) if entries else True
    for comm in ("srv", "状态"):
        assert m.inodes_held_by(lambda p: p.comm == comm).tolist() == sorted(
            ino for ino, held in reference.items() if any(o.comm == comm for o in held))
    again = pickle.loads(pickle.dumps(m))
    assert again == reference and again.get(0) is None


def test_counters_and_empty():
    m = OwnerMap()
    assert m == {} and not m and m.get(5) is None and m.pids_of([5]) == set()
    assert m.inodes_held_by(lambda p: True).tolist() == []
    assert m.runs(np.array([0, 5], np.uint64))[1].tolist() == [0, 0]
    assert (m.unreadable, m.vanished, m.pids_walked, m.fds_walked) == (0, 0, 0, 0)


def _fd_tree(root, pids: int, fds: int):
    """``pids`` processes with ``fds`` socket fds each, inodes 10^6 + i."""
    proc = root / "proc"
    for p in range(pids):
        d = proc / str(1000 + p) / "fd"
        d.mkdir(parents=True)
        (d.parent / "comm").write_text(f"holder{p}\n")
        for fd in range(fds):
            os.symlink(f"socket:[{10**6 + p * fds + fd}]", d / str(fd))
    return proc


def _walk_memory(proc, n: int) -> tuple[int, int]:
    """(kept, peak) bytes of Python allocations (tracemalloc) of a walk
    for the n sockets of _fd_tree(proc, 3, n // 3), its answer checked."""
    wanted = np.arange(10**6, 10**6 + n, dtype=np.uint64)
    owners.find_owners(wanted[:10], proc)  # imports and caches (fd names) made once
    gc.collect()
    tracemalloc.start()
    try:
        found = owners.find_owners(wanted, proc)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(found) == n and found[10**6 + n - 1][0].fd == n // 3 - 1
    return kept, peak


def test_walk_holds_no_object_per_socket(tmp_path, monkeypatch):
    """12,000 owned sockets of 3 processes: what the walk's result keeps
    and its peak, in Python allocations (tracemalloc).  As a dict of tuples
    of Owners (before) they were 4.29 MB kept and 9.09 MB at the peak (an
    Owner ~350 bytes with its __dict__, its tuple, a dict entry); as columns
    0.44 MB (16 bytes a socket) and 2.24 MB, the peak being the wanted links
    (bytes -> inode)."""
    n = 12_000
    # listed: st_size of a directory on disk counts bytes, not fds (fdwalk)
    monkeypatch.setattr(fdwalk, "PROBE_MIN_FDS", 10**9)
    proc = _fd_tree(tmp_path, 3, n // 3)
    kept, peak = _walk_memory(proc, n)
    assert kept < 1_500_000, kept
    assert peak < 5_000_000, peak


def _mixed_tree(root, seed: int):
    """Processes holding sockets (some shared between them), pipes, files
    and anonymous inodes; the wanted inodes are some of the sockets and
    some no one holds."""
    rng = np.random.default_rng(seed)
    proc = root / "proc"
    sockets = (10**6 + rng.choice(10**5, 300, replace=False)).tolist()
    for p in range(int(rng.integers(1, 6))):
        d = proc / str(100 + 7 * p) / "fd"
        d.mkdir(parents=True)
        (d.parent / "comm").write_text(f"p{p}\n")
        for fd in range(int(rng.integers(0, 120))):
            kind = rng.random()
            link = (f"socket:[{sockets[int(rng.integers(len(sockets)))]}]" if kind < 0.7
                    else f"pipe:[{fd}]" if kind < 0.8 else "anon_inode:[eventpoll]"
                    if kind < 0.9 else "/dev/null")
            os.symlink(link, d / str(fd))
    wanted = rng.choice(sockets, 150, replace=False).tolist() + [5, 0]
    return proc, wanted


def test_parsed_links_same_as_the_dict(tmp_path, monkeypatch):
    """Above WANTED_LINKS_MAX the walk parses every socket link and keeps
    the wanted ones by a sorted array: the same owners, in the same order,
    and the same counters as matching against a dict of the wanted links."""
    for seed in range(12):
        proc, wanted = _mixed_tree(tmp_path / str(seed), seed)
        got = {}
        for mode, limit in (("dict", 10**9), ("parsed", 0)):
            monkeypatch.setattr(owners, "WANTED_LINKS_MAX", limit)
            m = owners.find_owners(np.array(wanted, np.uint64) if seed % 2 else set(wanted), proc,
                                   first=[107] if seed % 3 == 0 else None)
            got[mode] = (dict(m), m.inode.tolist(), m.proc.tolist(), m.fd.tolist(),
                         m.processes, m.pids_walked, m.fds_walked)
        assert got["parsed"] == got["dict"] and got["dict"][0], seed


def test_many_wanted_hold_no_object_per_inode(tmp_path, monkeypatch):
    """12,000 wanted inodes above WANTED_LINKS_MAX: the walk's peak of
    Python allocations is the hits and columns, not a dict of 12,000 links
    and their ints (tracemalloc: 2.31 MB with the dict, 1.62 MB parsed)."""
    n = 12_000
    monkeypatch.setattr(fdwalk, "PROBE_MIN_FDS", 10**9)
    monkeypatch.setattr(owners, "WANTED_LINKS_MAX", 1000)
    proc = _fd_tree(tmp_path, 3, n // 3)
    _, peak = _walk_memory(proc, n)
    assert peak < 1_900_000, peak
