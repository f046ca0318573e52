"""Many namespaces read by a few threads that each enter one after another
(collect/setns.map_in_netns, collect/snapshot.read_namespaces), on the real
kernel.

Five namespaces ``tl-map-<pid>-<i>`` made here, each with its own
population (i+1 listeners, i established pairs, one half-closed pair from
the second on) and its own tcp_fin_timeout, so a thread that read a
namespace it had left (a cached /proc/thread-self/net or /proc/sys
dentry), or a result filed under the wrong namespace, disagrees with the
reference: each namespace read on a fresh thread of its own
(setns.run_in_netns). Everything made here is removed, also on failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading

import numpy as np
import pytest

pytestmark = pytest.mark.privileged

from tcplinger.collect import kernel, netns, setns, snapshot  # noqa: E402
from tcplinger.collect.roots import Roots  # noqa: E402
from tcplinger.model.states import TcpState  # noqa: E402

N = 5
FIN_TIMEOUTS = [31 + i for i in range(N)]
#: columns that do not move while the sockets sit idle (tcp_info's timers do)
STABLE = ("family", "state", "timewait", "shutdown", "saddr", "daddr", "sport", "dport",
          "inode", "cookie", "recv_q", "send_q", "uid")


def _populate(i: int) -> list[socket.socket]:
    """In namespace i (the calling thread entered it): i+1 listeners, i
    established pairs, and from i=1 on a half-closed pair."""
    keep = []
    for k in range(i + 1):
        s = socket.socket()
        s.bind(("127.0.0.1", 7000 + k))
        s.listen(16)
        keep.append(s)
    for _ in range(i):
        c = socket.create_connection(("127.0.0.1", 7000))
        a, _ = keep[0].accept()
        keep += [c, a]
    if i:
        c = socket.create_connection(("127.0.0.1", 7000 + i))
        a, _ = keep[i].accept()
        c.shutdown(socket.SHUT_WR)  # c FIN_WAIT2, a CLOSE_WAIT
        keep += [c, a]
    return keep


@pytest.fixture(scope="module")
def spaces():
    names, held = [], []
    try:
        for i in range(N):
            name = f"tl-map-{os.getpid()}-{i}"
            subprocess.run(["ip", "netns", "add", name], check=True)
            names.append(name)
            subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
            subprocess.run(["ip", "netns", "exec", name, "sh", "-c",
                            f"echo {FIN_TIMEOUTS[i]} > /proc/sys/net/ipv4/tcp_fin_timeout"],
                           check=True)
            held += setns.run_in_netns(f"/run/netns/{name}", _populate, i)
        yield names
    finally:
        for s in held:
            s.close()
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)


def _view(path_or_none) -> tuple:
    """What the calling thread's namespace shows: its inode, tcp_fin_timeout
    and sockstat through /proc/thread-self, and its TCP ports by sock_diag."""
    ctx = kernel.read_kernel_context(proc_net=Roots().proc / "thread-self" / "net")
    table = snapshot._dump(snapshot.ALL_STATES, frozenset())
    ports = sorted(zip(table.rows["state"].tolist(), table.rows["sport"].tolist(),
                       table.rows["dport"].tolist()))
    inode = netns.ns_inode(netns.own_ns_path())
    return inode, ctx.sysctls["tcp_fin_timeout"], ctx.sockstat.inuse, ports


def test_one_thread_entering_each_in_turn_sees_each(spaces):
    paths = [f"/run/netns/{name}" for name in spaces]
    reference = [setns.run_in_netns(p, _view, p) for p in paths]
    # the reference itself tells the namespaces apart
    assert [r[1] for r in reference] == FIN_TIMEOUTS
    assert [r[0] for r in reference] == [os.stat(p).st_ino for p in paths]
    assert len({r[3].__repr__() for r in reference}) == N
    own = _view(None)
    for workers in (1, 2, N):
        got = setns.map_in_netns(_view, paths + [None] + paths[::-1], lambda p: p,
                                 workers=workers)
        assert got == reference + [own] + reference[::-1], workers
    # the caller's thread never moved
    assert _view(None)[0] == own[0]


def test_errors_go_to_on_error_in_item_order(spaces):
    paths = [f"/run/netns/{spaces[0]}", "/nonexistent/tl-map", f"/run/netns/{spaces[1]}",
             "/proc/self/status"]  # not a namespace: EINVAL

    def fn(path):
        return netns.ns_inode(netns.own_ns_path())

    got = setns.map_in_netns(fn, paths, lambda p: p, workers=1,
                             on_error=lambda p, exc: type(exc).__name__)
    assert got == [os.stat(paths[0]).st_ino, "FileNotFoundError",
                   os.stat(paths[2]).st_ino, "OSError"]
    with pytest.raises(FileNotFoundError):
        setns.map_in_netns(fn, paths, lambda p: p, workers=2)


def _stable(snap) -> list:
    out = []
    for ns in snap.namespaces:
        rows = ns.table.rows
        k = ns.kernel
        out.append((ns.netns.inode, ns.netns.name,
                    {c: rows[c].tolist() for c in STABLE},
                    None if ns.table.info is None else ns.table.info["present"].tolist(),
                    k.sysctls, k.sockstat.inuse, k.sockstat.tw, k.missing))
    return out


def test_snapshot_same_with_one_and_many_workers(spaces):
    """read_namespaces over the five and the caller's own namespace: the same
    namespaces, rows and kernel context with 1, 2 and 4 workers, and each
    namespace's as it reads alone."""
    targets = [netns.current()] + [netns.by_name(n) for n in spaces]
    info = frozenset({TcpState.CLOSE_WAIT, TcpState.FIN_WAIT2})
    kw = dict(all_netns=True, info_states=info, cheap_info_states={TcpState.ESTABLISHED})
    alone = [_stable(snapshot.read_namespaces([t], workers=1, **kw))[0] for t in targets[1:]]
    for workers in (1, 2, 4, 1):
        got = _stable(snapshot.read_namespaces(targets, workers=workers, **kw))
        assert [g[0] for g in got] == [t.inode for t in targets]
        assert got[1:] == alone, workers
        for g, i in zip(got[1:], range(N)):
            assert g[4]["tcp_fin_timeout"] == FIN_TIMEOUTS[i]
            states = g[2]["state"]
            assert states.count(int(TcpState.LISTEN)) == i + 1
            assert states.count(int(TcpState.CLOSE_WAIT)) == (1 if i else 0)


def test_vanished_namespace_is_skipped_not_fatal(spaces):
    """A namespace deleted between discovery and reading: skipped with the
    "vanished" notice under all_netns, the others read."""
    name = f"tl-map-{os.getpid()}-gone"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        gone = netns.by_name(name)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)
    targets = [netns.by_name(spaces[0]), gone, netns.by_name(spaces[1])]
    for workers in (1, 3):
        snap = snapshot.read_namespaces(targets, all_netns=True, workers=workers)
        assert [ns.netns.name for ns in snap.namespaces] == [spaces[0], spaces[1]]
        assert [(ref.name, n.key) for ref, n in snap.skipped] == [(name, "vanished")]
    with pytest.raises(netns.NetnsNotFound):
        snapshot.read_namespaces([gone], all_netns=False)


def test_namespace_replaced_under_its_name_is_not_read_as_it(spaces):
    """``ip netns del NAME; ip netns add NAME`` between discovery and
    reading: the new namespace (its own listener) is not reported under
    the listed one's inode; the listed one is skipped as vanished. Before,
    the new namespace's sockets and sysctls were filed as the old one's."""
    name = f"tl-map-{os.getpid()}-again"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        listed = netns.by_name(name)
        subprocess.run(["ip", "netns", "del", name], check=True)
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        held = setns.run_in_netns(f"/run/netns/{name}", _populate, 0)  # one listener
        try:
            assert netns.by_name(name).inode != listed.inode
            targets = [netns.by_name(spaces[0]), listed]
            for workers in (1, 2):
                snap = snapshot.read_namespaces(targets, all_netns=True, workers=workers)
                assert [ns.netns.name for ns in snap.namespaces] == [spaces[0]]
                assert [(ref.inode, n.key) for ref, n in snap.skipped] == \
                    [(listed.inode, "vanished")]
            with pytest.raises(netns.NetnsNotFound):
                snapshot.read_namespaces([listed], all_netns=False)
            # the toolkit itself: the path still enters where no inode is asked
            got = setns.map_in_netns(lambda p: netns.ns_inode(netns.own_ns_path()),
                                     [listed.path], lambda p: p, workers=1,
                                     inode_of=lambda p: listed.inode,
                                     on_error=lambda p, exc: type(exc).__name__)
            assert got == ["FileNotFoundError"]
        finally:
            for sock in held:
                sock.close()
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_threads_end(spaces):
    before = threading.active_count()
    snapshot.read_namespaces([netns.by_name(n) for n in spaces], all_netns=True, workers=3)
    assert threading.active_count() == before


def test_results_handed_on_while_the_others_are_read(spaces):
    """on_result gets each item's result on the calling thread, in item
    order, before the items after it are done: the third call waits for
    the first item's on_result (one worker: it reads them in turn), so it
    would wait out its guard if on_result came only after every call.
    The guard is no timing: nothing here waits for it but a broken
    pipeline."""
    paths = [f"/run/netns/{name}" for name in spaces[:3]]
    first_handed = threading.Event()
    handed = []

    def fn(path):
        if path == paths[2] and not first_handed.wait(60):
            return "not handed on"
        return netns.ns_inode(netns.own_ns_path())

    def on_result(path, inode):
        handed.append((path, inode, threading.current_thread() is threading.main_thread()))
        first_handed.set()

    got = setns.map_in_netns(fn, paths, lambda p: p, workers=1, on_result=on_result)
    inodes = [os.stat(p).st_ino for p in paths]
    assert got == inodes
    assert handed == [(p, i, True) for p, i in zip(paths, inodes)]


def test_on_result_skips_errors_and_its_own_error_comes_after_the_calls(spaces):
    paths = [f"/run/netns/{spaces[0]}", "/nonexistent/tl-map", f"/run/netns/{spaces[1]}"]
    handed = []

    def fn(path):
        return netns.ns_inode(netns.own_ns_path())

    setns.map_in_netns(fn, paths, lambda p: p, workers=2,
                       on_error=lambda p, exc: None if p.startswith("/nonexistent") else 1 / 0,
                       on_result=lambda p, r: handed.append((p, r)))
    assert handed == [(paths[0], os.stat(paths[0]).st_ino), (paths[1], None),
                      (paths[2], os.stat(paths[2]).st_ino)]
    with pytest.raises(FileNotFoundError):  # no on_error: the call's error, not on_result's
        setns.map_in_netns(fn, paths, lambda p: p, workers=2, on_result=lambda p, r: 1 / 0)
    before = threading.active_count()
    with pytest.raises(ZeroDivisionError):
        setns.map_in_netns(fn, paths[::2], lambda p: p, workers=2,
                           on_result=lambda p, r: 1 / 0)
    assert threading.active_count() == before  # the workers were joined first
