"""Probe what SOCK_DESTROY can end, on sockets of the probe's own.

Before ending anyone's sockets, :func:`probe` builds one loopback
connection per socket kind (:class:`~tcplinger.act.kernel_support.Kind`)
and destroys its own end:

* full: an accepted socket left in CLOSE_WAIT (the client closed);
* timewait: an orphaned FIN_WAIT2 minisocket (client closed, server did
  not) and a TIME_WAIT (client closed first, then the server);
* orphan: a FIN_WAIT1 orphan whose FIN is stuck behind a zero window (the
  server filled the client's receive buffer, then closed).

It checks the answer *and* that sock_diag no longer lists the socket:
kernels before bac76cf89816 answered 0 for orphans and left them.

The probes run in a private network namespace (``unshare(CLONE_NEWNET)``
on a thread of their own, loopback brought up with SIOCSIFFLAGS), which
disappears with its sockets: nothing of the caller's namespace is touched,
and a dry run stays a dry run. The kernel code (and its config) is the
same in every namespace; only permission is per namespace (CAP_NET_ADMIN
over its user namespace, checked per socket at execution). Without
CAP_SYS_ADMIN for unshare, the probes run in the caller's namespace.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import threading
import time
from typing import Iterable

from ..collect.netlink.destroy import destroy
from ..collect.netlink.dump import DiagSocket, DiagUnavailable, lookup
from ..model.states import TcpState
from .kernel_support import Kind, Probe, Status, Support

CLONE_NEWNET = 0x40000000  # include/uapi/linux/sched.h
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1  # linux/sockios.h, linux/if.h
_IFREQ = struct.Struct("16sH14x")  # struct ifreq: name, ifr_flags, padding to 32 bytes
SETTLE_S = 2.0  # longest wait for a loopback state change


def probe(kinds: Iterable[Kind] = tuple(Kind)) -> Support:
    """Probe ``kinds``; a private namespace when possible."""
    kinds = tuple(Kind(k) for k in kinds)
    if not kinds:
        return Support()
    outcome: dict = {}

    def worker() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            outcome["where"] = "current"
        else:
            outcome["where"] = "private"
            try:
                _loopback_up()
            except OSError as exc:
                outcome["results"] = {k: Probe(Status.UNKNOWN, f"cannot bring up loopback in"
                                                             f" a private namespace: {exc}")
                                      for k in kinds}
                return
        try:
            outcome["results"] = _probe_here(kinds)
        except BaseException as exc:  # noqa: BLE001 - reported, never raised
            outcome["results"] = {k: Probe(Status.UNKNOWN, f"probe failed: {exc}") for k in kinds}

    # A thread of its own: unshare() moves only this thread (task->nsproxy
    # is per task); the namespace goes away when the thread and its sockets do.
    thread = threading.Thread(target=worker, name="tcplinger destroy probe", daemon=True)
    thread.start()
    thread.join()
    return Support(outcome.get("results", {}), outcome.get("where", "none"))


def _loopback_up() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        got = fcntl.ioctl(s, SIOCGIFFLAGS, _IFREQ.pack(b"lo", 0))
        flags = _IFREQ.unpack(got)[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | IFF_UP))
    finally:
        s.close()


def _probe_here(kinds) -> dict:
    try:
        diag = DiagSocket(bufsize=64 << 10, rcvbuf=1 << 20)
    except DiagUnavailable as exc:
        return {k: Probe(Status.UNKNOWN, f"sock_diag unavailable: {exc.strerror or exc}",
                         exc.errno) for k in kinds}
    opened: list[socket.socket] = []
    try:
        lst = _listener(opened)
        out = {}
        for kind in kinds:
            fn = {Kind.FULL: _full, Kind.TIMEWAIT: _timewait, Kind.ORPHAN: _orphan}[kind]
            try:
                out[kind] = fn(diag, lst, opened)
            except OSError as exc:
                out[kind] = Probe(Status.UNKNOWN, f"cannot build a loopback connection to test"
                                                  f" on: {exc.strerror or exc}", exc.errno)
        return out
    finally:
        for s in reversed(opened):
            _close(s)
        diag.close()


def _close(s: socket.socket) -> None:
    try:
        s.close()
    except OSError:
        pass


def _listener(opened) -> socket.socket:
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    opened.append(lst)
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    return lst


def _pair(lst, opened) -> tuple[socket.socket, socket.socket]:
    cli = socket.create_connection(lst.getsockname(), timeout=5)
    opened.append(cli)
    srv, _ = lst.accept()
    opened.append(srv)
    return cli, srv


def _ends(s: socket.socket) -> tuple:
    src, sport = s.getsockname()[:2]
    dst, dport = s.getpeername()[:2]
    return (socket.AF_INET, src, sport, dst, dport)


def _wait_state(diag, ends, state: TcpState, *, timewait: bool | None = None):
    """The socket's row once it is in ``state`` (None after SETTLE_S)."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        table = lookup(*ends, sock=diag)
        if len(table) and int(table.rows["state"][0]) == state and (
                timewait is None or bool(table.rows["timewait"][0]) == timewait):
            return table.rows[0]
        if time.monotonic() > deadline:
            return None
        time.sleep(0.005)


def _destroy_and_check(diag, ends, row) -> Probe:
    cookie = int(row["cookie"])
    err = destroy(diag, *ends, cookie)
    if err in (errno.EPERM, errno.EACCES):
        return Probe(Status.DENIED, f"not permitted ({errno.errorcode[err]}): needs"
                                    " CAP_NET_ADMIN", err)
    if err == errno.EOPNOTSUPP:
        return Probe(Status.UNSUPPORTED, "EOPNOTSUPP", err)
    if err:
        return Probe(Status.UNKNOWN, f"{errno.errorcode.get(err, err)}: {os.strerror(err)}", err)
    if len(lookup(*ends, cookie, sock=diag)):
        return Probe(Status.STUCK, "answered 0, but the socket is still listed", 0)
    return Probe(Status.WORKS, "destroyed and gone", 0)


def _full(diag, lst, opened) -> Probe:
    cli, srv = _pair(lst, opened)
    ends = _ends(srv)
    cli.close()
    row = _wait_state(diag, ends, TcpState.CLOSE_WAIT)
    if row is None:
        return Probe(Status.UNKNOWN, "the test socket did not reach CLOSE_WAIT")
    result = _destroy_and_check(diag, ends, row)
    if result.status is Status.WORKS:
        try:
            srv.send(b"x")
            seen = "send() succeeded"
        except OSError as exc:
            seen = f"send() failed with {errno.errorcode.get(exc.errno, exc.errno)}"
        result = Probe(Status.WORKS, f"destroyed and gone; the owner's {seen}", 0)
    return result


def _timewait(diag, lst, opened) -> Probe:
    # Orphaned FIN_WAIT2 minisocket: the client closes, the server keeps its end.
    cli, srv = _pair(lst, opened)
    ends = _ends(cli)
    cli.close()
    row = _wait_state(diag, ends, TcpState.FIN_WAIT2, timewait=True)
    if row is None:
        return Probe(Status.UNKNOWN, "the test socket did not become an orphaned FIN_WAIT2"
                                     " minisocket (tcp_fin_timeout above 60 s?)")
    fw2 = _destroy_and_check(diag, ends, row)
    if fw2.status is not Status.WORKS:
        return Probe(fw2.status, f"orphaned FIN_WAIT2: {fw2.detail}", fw2.errno)
    # TIME_WAIT: the client closed first, then the server.
    cli, srv = _pair(lst, opened)
    ends = _ends(cli)
    cli.close()
    if _wait_state(diag, _ends(srv), TcpState.CLOSE_WAIT) is None:
        return Probe(Status.UNKNOWN, "the test socket did not reach CLOSE_WAIT")
    srv.close()
    row = _wait_state(diag, ends, TcpState.TIME_WAIT)
    if row is None:
        return Probe(Status.UNKNOWN, "the test socket did not reach TIME_WAIT")
    tw = _destroy_and_check(diag, ends, row)
    if tw.status is not Status.WORKS:
        return Probe(tw.status, f"TIME_WAIT: {tw.detail}", tw.errno)
    return Probe(Status.WORKS, "TIME_WAIT and orphaned FIN_WAIT2 minisockets destroyed and gone",
                 0)


def _orphan(diag, lst, opened) -> Probe:
    cli, srv = _pair(lst, opened)
    cli.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    srv.setblocking(False)
    try:
        while True:
            srv.send(b"\0" * 65536)  # until the client's window is zero and our buffer full
    except BlockingIOError:
        pass
    ends = _ends(srv)
    srv.close()  # the FIN queues behind the data: an orphan in FIN_WAIT1
    row = _wait_state(diag, ends, TcpState.FIN_WAIT1)
    if row is None or int(row["inode"]) != 0:
        return Probe(Status.UNKNOWN, "the test socket did not become a FIN_WAIT1 orphan")
    # Whatever happens, closing the client with unread data (in _probe_here's
    # finally) sends a RST that ends an orphan a pre-bac76cf89816 kernel left
    # behind; a private namespace goes away with it anyway.
    return _destroy_and_check(diag, ends, row)
