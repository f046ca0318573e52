"""Watcher._owners, the watch loop's owner cache by inode: a sample whose
owned inodes are those of the last one returns the cache as it is (no sets
of inodes built); random sequences of samples give the same cache and the
same walks as with that shortcut turned off."""

import random
from types import SimpleNamespace

import numpy as np
import pytest

from tcplinger.app.watcher import Watcher, WatchOptions
from tcplinger.collect.snapshot import Scope
from tcplinger.model.socket import Owner
from tcplinger.model.table import SocketTable, empty


def snapshot(rnd, n_ns):
    parts = []
    for _ in range(n_ns):
        n = rnd.randrange(0, 40)
        rows = empty(n)
        rows["state"] = [rnd.choice((1, 5, 6, 8, 10)) for _ in range(n)]
        rows["inode"] = [rnd.choice((0, rnd.randrange(1, 80))) for _ in range(n)]
        parts.append(SimpleNamespace(table=SocketTable(rows)))
    return SimpleNamespace(namespaces=parts)


def watcher(tmp_path, walks):
    w = Watcher(WatchOptions(Scope(netns="x"), 1.0, tmp_path / "w.db", trace=False))

    def walk(inodes, holders):  # what a walk of /proc would find: every third has none
        walks.append(sorted(inodes))
        found = {i: (Owner(pid=i % 5 + 1, comm="p", fd=i),) for i in inodes if i % 3}
        w._walk_result = (found, {}, set(inodes))
    w._walk = walk
    return w


@pytest.mark.parametrize("seed", range(10))
def test_owner_cache_equals_the_full_pass(tmp_path, seed):
    rnd = random.Random(seed)
    walks_fast, walks_full = [], []
    fast, full = watcher(tmp_path, walks_fast), watcher(tmp_path, walks_full)
    snap = snapshot(rnd, 2)
    shortcuts = 0
    for step in range(40):
        r = rnd.random()
        if r < 0.3:
            snap = snapshot(rnd, rnd.choice((1, 2)))
        elif r < 0.4:  # the same sockets, dumped again (new arrays)
            snap = SimpleNamespace(namespaces=[SimpleNamespace(table=SocketTable(p.table.rows.copy()))
                                               for p in snap.namespaces])
        full._owners_seen = None  # the shortcut off
        seen = fast._owners_seen
        got = dict(fast._owners(snap))
        shortcuts += seen is not None and fast._owners_seen is seen
        want = dict(full._owners(snap))
        for w in (fast, full):
            if w._walker is not None:
                w._walker.join()
        assert got == want, step
        assert walks_fast == walks_full, step
    assert shortcuts > 5  # the shortcut was taken
