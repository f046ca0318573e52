"""Namespace discovery and entry on the real kernel: namespaces `tl-ns-<pid>-…`
made here with `ip netns add`, processes started here, both always removed."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
import socket
import subprocess
import sys
import threading

import pytest

pytestmark = pytest.mark.privileged

from tcplinger.collect import netns, setns  # noqa: E402

SIOCGSKNS = 0x894C  # include/uapi/linux/sockios.h: a socket's netns as an fd
FIN_TIMEOUT = "/proc/sys/net/ipv4/tcp_fin_timeout"

# Listens on 127.0.0.1:PORT, says so, then waits to be killed.
LISTENER = """
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
print("ready", flush=True); time.sleep(600)
"""


class Spaces:
    """Namespaces and processes this test made; :meth:`close` removes all."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def add(self, suffix: str, fin_timeout: int | None = None) -> str:
        name = f"tl-ns-{os.getpid()}-{suffix}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.names.append(name)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        if fin_timeout is not None:
            # /proc/sys/net is per namespace of the opener: write from inside
            subprocess.run(["ip", "netns", "exec", name, "sh", "-c",
                            f"echo {fin_timeout} > {FIN_TIMEOUT}"], check=True)
        return name

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        # `ip netns exec` execs the command itself: the Popen pid is its pid
        proc = subprocess.Popen(["ip", "netns", "exec", name, *argv],
                                stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def listener(self, name: str, port: int) -> subprocess.Popen:
        proc = self.spawn(name, [sys.executable, "-c", LISTENER, str(port)])
        assert proc.stdout.readline().strip() == "ready"
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for name in self.names:
            subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def spaces():
    s = Spaces()
    try:
        yield s
    finally:
        s.close()


def own_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def tcp_ports(path: str) -> set[int]:
    """Local ports of the rows of a /proc/net/tcp-format file."""
    with open(path) as f:
        rows = f.read().splitlines()[1:]
    return {int(row.split()[1].split(":")[1], 16) for row in rows}


def test_discover_names_pids_and_lookups(spaces):
    a = spaces.add("a")
    b = spaces.add("b")
    holder = spaces.listener(a, 8081)
    sleeper = spaces.spawn(b, ["sleep", "600"])
    ino_a, ino_b = os.stat(f"/run/netns/{a}").st_ino, os.stat(f"/run/netns/{b}").st_ino
    assert os.readlink(f"/proc/{holder.pid}/ns/net") == f"net:[{ino_a}]"
    # `ip netns exec` setns()es only after it starts: wait until it has.
    deadline = time.monotonic() + 5
    while os.readlink(f"/proc/{sleeper.pid}/ns/net") != f"net:[{ino_b}]":
        assert time.monotonic() < deadline, "sleeper never entered its namespace"
        time.sleep(0.01)

    found = netns.discover()
    assert found[0].current and found[0].inode == own_inode()
    assert os.getpid() in found[0].pids
    assert sum(n.current for n in found) == 1
    by_inode = {n.inode: n for n in found}
    assert len(by_inode) == len(found)  # merged: each namespace once
    assert (by_inode[ino_a].name, by_inode[ino_a].path) == (a, f"/run/netns/{a}")
    assert by_inode[ino_a].pids == (holder.pid,)
    assert by_inode[ino_b].pids == (sleeper.pid,)
    assert by_inode[ino_a].ref.label() == a

    assert netns.by_name(a).inode == ino_a
    info = netns.by_pid(holder.pid)
    assert (info.inode, info.name, info.path) == (ino_a, a, f"/run/netns/{a}")
    assert netns.by_pid(os.getpid()).current
    assert netns.current().inode == own_inode()
    with pytest.raises(netns.NetnsNotFound, match=f"no network namespace named '{a}x'"):
        netns.by_name(a + "x")


def test_unnamed_namespace_found_through_its_process(spaces, tmp_path):
    """A namespace whose name is gone (only a process holds it) is still found,
    with a /proc/PID/ns/net path that can be entered."""
    a = spaces.add("gone", fin_timeout=41)
    holder = spaces.listener(a, 8082)
    ino = os.stat(f"/run/netns/{a}").st_ino
    found = {n.inode: n for n in netns.discover(run_netns=tmp_path)}  # as if unnamed
    assert found[ino].name is None
    assert found[ino].path == f"/proc/{holder.pid}/ns/net"
    assert setns.run_in_netns(found[ino].path, lambda: open(FIN_TIMEOUT).read().strip()) == "41"


def test_run_in_netns_sees_the_target(spaces):
    a = spaces.add("enter", fin_timeout=37)
    spaces.listener(a, 8083)
    ino_a = os.stat(f"/run/netns/{a}").st_ino
    caller_ino, caller_thread = own_inode(), threading.get_ident()
    with open(FIN_TIMEOUT) as f:
        host_fin = f.read().strip()
    assert host_fin != "37"

    def inside():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        nsfd = fcntl.ioctl(sock.fileno(), SIOCGSKNS)
        try:
            sock_ns = os.fstat(nsfd).st_ino
        finally:
            os.close(nsfd)
        with open(FIN_TIMEOUT) as f:
            fin = f.read().strip()
        child = subprocess.run(["readlink", "/proc/self/ns/net"], capture_output=True,
                               text=True, check=True).stdout.strip()
        return {
            "thread": threading.get_ident(),
            "thread_ns": own_inode(),
            "sock_ns": sock_ns,
            "sock": sock,
            "thread_self_tcp": tcp_ports("/proc/thread-self/net/tcp"),
            "self_tcp": tcp_ports("/proc/self/net/tcp"),
            "fin": fin,
            "child": child,
        }

    got = setns.run_in_netns(f"/run/netns/{a}", inside)
    assert got["thread"] != caller_thread
    assert got["thread_ns"] == ino_a == got["sock_ns"]
    port = got["sock"].getsockname()[1]
    assert got["thread_self_tcp"] == {8083, port}  # the target's sockets only
    # /proc/self/net follows the thread-group leader: still the caller's namespace
    assert got["self_tcp"] == tcp_ports(f"/proc/{os.getpid()}/task/{os.getpid()}/net/tcp")
    assert 8083 not in got["self_tcp"]
    assert got["fin"] == "37"
    assert got["child"] == f"net:[{ino_a}]"
    # the caller never moved; the socket stays in the target namespace
    assert own_inode() == caller_ino
    with open(FIN_TIMEOUT) as f:
        assert f.read().strip() == host_fin
    assert port not in tcp_ports("/proc/thread-self/net/tcp")
    nsfd = fcntl.ioctl(got["sock"].fileno(), SIOCGSKNS)
    try:
        assert os.fstat(nsfd).st_ino == ino_a
    finally:
        os.close(nsfd)
        got["sock"].close()


def test_run_in_netns_exceptions_and_current(spaces):
    a = spaces.add("exc")

    def boom(x, *, y):
        raise KeyError((x, y, own_inode()))

    with pytest.raises(KeyError) as err:
        setns.run_in_netns(f"/run/netns/{a}", boom, 1, y=2)
    assert err.value.args[0] == (1, 2, os.stat(f"/run/netns/{a}").st_ino)
    assert "boom" in str(err.traceback[-1].name)  # the worker's frame is kept
    # the caller's own namespace: no thread at all
    me = threading.get_ident()
    assert setns.run_in_netns("/proc/thread-self/ns/net", threading.get_ident) == me
    assert setns.run_in_netns(netns.current().path, threading.get_ident) == me
    assert setns.is_current(f"/proc/{os.getpid()}/ns/net")
    assert not setns.is_current(f"/run/netns/{a}")


def test_run_in_netns_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        setns.run_in_netns(str(tmp_path / "nope"), lambda: None)
    plain = tmp_path / "plain"
    plain.touch()
    with pytest.raises(OSError) as err:
        setns.run_in_netns(str(plain), lambda: None)
    assert err.value.errno == errno.EINVAL and "not a network namespace" in str(err.value)
    # a namespace file of another type is not a network namespace either
    with pytest.raises(OSError) as err:
        setns.run_in_netns("/proc/self/ns/uts", lambda: None)
    assert err.value.errno == errno.EINVAL


def test_bind_mounted_name_and_stale_leftover(spaces, tmp_path):
    """A private run_netns dir: one real bind mount of a namespace, one plain
    file like an interrupted `ip netns add` leaves."""
    a = spaces.add("bind")
    (tmp_path / "real").touch()
    (tmp_path / "leftover").touch()
    subprocess.run(["mount", "--bind", f"/run/netns/{a}", str(tmp_path / "real")], check=True)
    try:
        found = netns.discover(run_netns=tmp_path)
        named = {n.name: n for n in found if n.name}
        assert named["real"].inode == os.stat(f"/run/netns/{a}").st_ino
        assert "leftover" not in named
        assert found.stale == (str(tmp_path / "leftover"),)
        with pytest.raises(netns.NetnsNotFound, match="not a network namespace"):
            netns.by_name("leftover", run_netns=tmp_path)
    finally:
        subprocess.run(["umount", str(tmp_path / "real")], check=False)


def as_nobody(fn) -> dict:
    """fn() run in a forked child that dropped to uid/gid 65534 (the python
    binary may sit where nobody cannot exec it, so no new interpreter)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            data = json.dumps(fn()).encode()
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            data, code = json.dumps({"error": repr(e)}).encode(), 1
        with os.fdopen(w, "wb") as f:
            f.write(data)
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    out = json.loads(data)
    assert os.waitstatus_to_exitcode(status) == 0, out
    return out


def test_not_root_skips_and_counts(spaces):
    """As an unprivileged user, other users' ns links give EACCES: counted,
    not fatal; explicit lookups and entering say PermissionError."""
    a = spaces.add("nobody")
    holder = spaces.listener(a, 8084)

    def probe():
        out = {}
        found = netns.discover()
        out["denied"], out["current"] = found.denied, found[0].inode
        out["named"] = sorted(n.name for n in found if n.name)
        for what, call in (("by_pid", lambda: netns.by_pid(holder.pid)),
                           ("enter", lambda: setns.run_in_netns(f"/run/netns/{a}", int))):
            try:
                call()
                out[what] = "ok"
            except PermissionError as e:
                out[what] = "PermissionError: " + str(e)
        return out

    out = as_nobody(probe)
    assert out["denied"] > 0
    assert out["current"] == own_inode()
    assert a in out["named"]  # /run/netns is world-readable
    assert out["by_pid"].startswith("PermissionError: ")
    assert f"pid {holder.pid}" in out["by_pid"]
    assert out["enter"].startswith("PermissionError: ") and "needs CAP_SYS_ADMIN" in out["enter"]
