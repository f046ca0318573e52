"""SOCK_DESTROY: end one socket by 4-tuple and cookie.

The kernel aborts the socket as if it had received a RST
(tcp_abort(), net/ipv4/tcp.c): the owner's next call fails with
ECONNABORTED, and a peer in a synchronised state is sent a RST. It needs
CAP_NET_ADMIN in the socket's namespace (sock_diag_destroy(),
net/core/sock_diag.c: EPERM otherwise) and a kernel built with
CONFIG_INET_DIAG_DESTROY (EOPNOTSUPP otherwise). Whether timewait-type
sockets can be destroyed depends on the kernel version: ask
:func:`probe_destroy` and the privileged tests, not a version string.
"""

from __future__ import annotations

import errno
import os
import socket

from . import codec, wire
from .dump import DiagSocket, DiagUnavailable, lookup


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


_EXPLAIN = {
    errno.EOPNOTSUPP: "kernel built without CONFIG_INET_DIAG_DESTROY (EOPNOTSUPP)",
    errno.EPERM: "needs CAP_NET_ADMIN in this network namespace (EPERM)",
    errno.EACCES: "not permitted (EACCES)",
}


def probe_destroy() -> tuple[bool, str]:
    """Whether SOCK_DESTROY works in the current namespace, and why not.

    Builds its own loopback connection, destroys its own accepted socket,
    checks that the owner sees ECONNABORTED, and closes everything.
    """
    opened: list[socket.socket] = []
    try:
        try:
            lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            opened.append(lst)
            lst.bind(("127.0.0.1", 0))
            lst.listen(1)
            cli = socket.create_connection(lst.getsockname(), timeout=5)
            opened.append(cli)
            srv, _ = lst.accept()
            opened.append(srv)
        except OSError as exc:
            return False, f"cannot build a loopback connection to test on: {exc.strerror or exc}"
        src, sport = srv.getsockname()
        dst, dport = srv.getpeername()
        try:
            with DiagSocket(bufsize=64 << 10) as diag:
                found = lookup(socket.AF_INET, src, sport, dst, dport, sock=diag)
                if not len(found):
                    return False, "sock_diag does not find a socket this process owns"
                err = destroy(diag, socket.AF_INET, src, sport, dst, dport,
                              int(found.rows["cookie"][0]))
        except DiagUnavailable as exc:
            return False, f"sock_diag unavailable: {exc.strerror or exc}"
        if err:
            return False, _EXPLAIN.get(err, f"SOCK_DESTROY failed: {os.strerror(err)} "
                                            f"({errno.errorcode.get(err, err)})")
        srv.settimeout(5)
        try:
            srv.recv(1)
        except ConnectionAbortedError:
            return True, "SOCK_DESTROY works (CONFIG_INET_DIAG_DESTROY)"
        except OSError as exc:
            return True, f"SOCK_DESTROY works; the owner saw {exc.strerror or exc}"
        return True, "SOCK_DESTROY works; the owner saw end of file"
    finally:
        for s in opened:
            s.close()
