"""The watch loop keeps one sock_diag socket per namespace from one sample
to the next (a new one faults in its 4 MiB receive buffer again every
second), reads the same rows through it as a fresh socket does, and
closes it once its namespace is gone (a socket holds its namespace)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.privileged

import harness  # noqa: E402  (tests/privileged/conftest.py puts it on sys.path)

from tcplinger.app.watcher import Watcher, WatchOptions  # noqa: E402
from tcplinger.collect import snapshot  # noqa: E402
from tcplinger.collect.snapshot import Scope  # noqa: E402
from tcplinger.track.store import Store  # noqa: E402

HOLD = r'''
import socket, sys
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(16)
pairs = [(socket.create_connection(lst.getsockname()), lst.accept()[0]) for _ in range(3)]
pairs[0][1].close()  # one CLOSE_WAIT, one FIN_WAIT2
print("ready", flush=True)
sys.stdin.read()
'''


def cookies(table) -> list:
    return sorted(zip(table.rows["cookie"].tolist(), table.rows["state"].tolist()))


def test_one_socket_per_namespace_reused_then_closed(tmp_path):
    with harness.netns() as ns:
        holder = ns.spawn([sys.executable, "-c", HOLD], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "ready"
        w = Watcher(WatchOptions(Scope(netns=ns.name), 1.0, tmp_path / "w.db", trace=False,
                                 owners=False))
        store = Store(tmp_path / "w.db")
        try:
            w.sample(store, 0.0)
            assert list(w.diag_sockets) == [ns.inode]
            sock = w.diag_sockets[ns.inode]
            w.sample(store, 0.0)
            assert w.diag_sockets == {ns.inode: sock}
            # what the kept socket read is what a new one reads
            fresh = snapshot.take(Scope(netns=ns.name)).namespaces[0].table
            live = w.tracker.live(ns.inode).cols
            assert sorted(zip(live["cookie"].tolist(), live["state"].tolist())) == cookies(fresh)
            assert len(fresh) == 7 and np.count_nonzero(fresh.rows["state"] == 8) == 1
            # the name now names another namespace: the old one's socket goes
            holder.stdin.close()
            ns.end_processes()
            harness._run(["ip", "netns", "del", ns.name])
            harness._run(["ip", "netns", "add", ns.name])
            w.sample(store, 0.0)
            assert ns.inode not in w.diag_sockets and len(w.diag_sockets) == 1
            assert sock._sock.fileno() == -1  # closed
            new = next(iter(w.diag_sockets.values()))
        finally:
            w.close()
            store.close()
        assert w.diag_sockets == {} and new._sock.fileno() == -1
