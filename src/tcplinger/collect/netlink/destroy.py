"""SOCK_DESTROY: end one socket by 4-tuple and cookie; probe what this
kernel can end (the one probe ``kill`` and ``doctor`` ask).

The kernel aborts the socket as if it had received a RST
(tcp_abort(), net/ipv4/tcp.c): the owner's next call fails with
ECONNABORTED, and a peer in a synchronised state is sent a RST. It needs
CAP_NET_ADMIN in the socket's namespace (sock_diag_destroy(),
net/core/sock_diag.c: EPERM otherwise) and a kernel built with
CONFIG_INET_DIAG_DESTROY (EOPNOTSUPP otherwise). What each kind of socket
does depends on the kernel version (model/sock_destroy.py): ask
:func:`probe`, never a version string.

:func:`probe` builds one loopback connection per socket kind
(:class:`~tcplinger.model.sock_destroy.Kind`) and destroys its own end:

* full: an accepted socket left in CLOSE_WAIT (the client closed);
* timewait: an orphaned FIN_WAIT2 minisocket (client closed, server did
  not) and a TIME_WAIT (client closed first, then the server);
* orphan: a FIN_WAIT1 orphan whose FIN is stuck behind a zero window (the
  server filled the client's receive buffer, then closed).

It checks the answer *and* that sock_diag no longer lists the socket:
kernels before bac76cf89816 answered 0 for orphans and left them.

The probes run in a private network namespace (collect/setns.py
run_in_new_netns), which disappears with its sockets: nothing of the
caller's namespace is touched, and a dry run stays a dry run. The kernel
code (and its config) is the same in every namespace; only permission is
per namespace (CAP_NET_ADMIN over its user namespace, checked per socket
at execution). Without CAP_SYS_ADMIN for unshare, the probes run in the
caller's namespace.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from typing import Iterable

from ...model.sock_destroy import Kind, Probe, Status, Support
from ...model.states import TcpState
from ..setns import NewNetnsUnavailable, run_in_new_netns
from . import codec, wire
from .dump import DiagSocket, DiagUnavailable, lookup

SETTLE_S = 2.0  # longest wait for a loopback state change


def destroy(sock: DiagSocket, family: int, src: str, sport: int, dst: str, dport: int,
            cookie: int) -> int:
    """Ask the kernel to destroy one socket; 0 or a positive errno.

    ENOENT: no such 4-tuple, or (6.18) the 4-tuple belongs to another
    socket now; ESTALE: the same on kernels that pass the cookie check's
    error through; EPERM: no CAP_NET_ADMIN; EOPNOTSUPP: kernel without
    CONFIG_INET_DIAG_DESTROY, or a socket kind it cannot destroy.

    The cookie is mandatory: the kernel finds the socket with inet_lookup(),
    which falls back to the *listener* on ``src:sport`` when the connection
    is gone, so a request without a cookie could destroy the listener.
    """
    if cookie == wire.NO_COOKIE or not 0 <= cookie < wire.NO_COOKIE:
        raise ValueError("SOCK_DESTROY needs the socket's cookie (without one the kernel"
                         " may pick the listener on the same local port)")
    req = codec.encode_exact_request(family, src=src, sport=sport, dst=dst, dport=dport,
                                     cookie=cookie, msg_type=wire.SOCK_DESTROY,
                                     seq=sock.next_seq())
    sock.send(req)
    return codec.decode_ack(sock.recv_one())


def probe(kinds: Iterable[Kind] = tuple(Kind)) -> Support:
    """Probe ``kinds``: in a private namespace when one can be made, else
    in the caller's."""
    kinds = tuple(Kind(k) for k in kinds)
    if not kinds:
        return Support()
    try:
        return Support(run_in_new_netns(_probe_here, kinds), "private")
    except NewNetnsUnavailable:
        return Support(_probe_here(kinds), "current")
    except OSError as exc:  # the new namespace's lo could not be brought up
        return Support({k: Probe(Status.UNKNOWN, f"cannot bring up loopback in a private"
                                                 f" namespace: {exc}") for k in kinds}, "private")


def _probe_here(kinds) -> dict:
    """Probe results by kind, in the calling thread's namespace; never raises."""
    try:
        return _probe_kinds(kinds)
    except Exception as exc:  # noqa: BLE001 - reported, never raised
        return {k: Probe(Status.UNKNOWN, f"probe failed: {exc}") for k in kinds}


def _probe_kinds(kinds) -> dict:
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
