"""The watch loop finds the namespaces in scope (a scan of every process's
/proc/PID/ns/net) at full dumps only, and reads the same ones in between
while their paths still open them: a name given to another namespace
between two full dumps is found again at the next sample."""

from __future__ import annotations

import subprocess
import sys

import pytest

import harness  # noqa: E402  (tests/privileged/conftest.py puts it on sys.path)

from tcplinger.app.watcher import Watcher, WatchOptions  # noqa: E402
from tcplinger.collect import snapshot  # noqa: E402
from tcplinger.collect.snapshot import Scope  # noqa: E402
from tcplinger.track.store import Store  # noqa: E402

pytestmark = pytest.mark.privileged(needs=("tracefs",))

HOLD = r'''
import socket, sys
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(16)
c = socket.create_connection(lst.getsockname()); s = lst.accept()[0]; s.close()  # a CLOSE_WAIT
print("ready", flush=True)
sys.stdin.read()
'''


def test_scope_found_at_full_dumps_and_when_its_path_changes(tmp_path, monkeypatch):
    calls = []
    resolve = snapshot.resolve

    def counting(scope, roots):
        calls.append(scope)
        return resolve(scope, roots)
    monkeypatch.setattr(snapshot, "resolve", counting)
    with harness.netns() as ns:
        holder = ns.spawn([sys.executable, "-c", HOLD], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "ready"
        w = Watcher(WatchOptions(Scope(netns=ns.name), 1.0, tmp_path / "w.db", owners=False,
                                 full_every=3600.0))
        w.start_trace()
        assert w.session is not None, w.trace_error
        store = Store(tmp_path / "w.db")
        try:
            for _ in range(3):
                w.sample(store, 0.0)
            assert w.full_dumps == 1 and len(calls) == 1
            # between full dumps the CLOSE_WAIT socket is still read
            assert 8 in w.tracker.live(ns.inode).cols["state"].tolist()
            # the name now opens another namespace: found again, read at once
            holder.stdin.close()
            ns.end_processes()
            harness._run(["ip", "netns", "del", ns.name])
            harness._run(["ip", "netns", "add", ns.name])
            w.sample(store, 0.0)
            assert len(calls) == 2 and w.full_dumps == 1
            assert list(w.tracker.namespaces) != [ns.inode] and len(w.tracker.namespaces) == 1
            w.sample(store, 0.0)
            assert len(calls) == 2
        finally:
            w.close()
            store.close()
