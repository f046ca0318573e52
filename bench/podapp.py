#!/usr/bin/env python3
"""A pod's application: what bench/podfarm.py runs in every pod namespace.

    ip netns exec NS python3 podapp.py [--port 8080] [--established 20] [--close-wait 5]
                                       [--comm NAME]

It listens on 127.0.0.1:PORT and keeps, until stdin reaches EOF (or its
parent dies: PR_SET_PDEATHSIG):

* ``--established`` loopback connections, both ends held: 2 x N ESTABLISHED;
* ``--close-wait`` connections whose client half-closes and then vanishes,
  so the server side stays in CLOSE_WAIT with no peer socket left in the
  namespace (the peer that went away without a word, as a client pod that
  was deleted).

"Vanishes" is ``setsockopt(TCP_REPAIR, 1)`` then ``close()``: in repair
mode ``__tcp_close()`` calls ``tcp_disconnect()``, which sends neither FIN
nor RST (net/ipv4/tcp.c; bench/popgen.py does the same).  The client waits
until it is in FIN_WAIT2 (the server has ACKed its FIN) before it vanishes,
so nothing the server sends later can hit the vanished 4-tuple.

``--comm`` renames the process (PR_SET_NAME: what /proc/PID/comm and ``ss -p``
show), as a different program would be named.

So a pod holds 1 LISTEN + 2 x ESTABLISHED + CLOSE_WAIT sockets, all owned by
this process, whose command line is ``python3 .../podapp.py ...``.  It prints
one JSON line, ``{"pid": PID, "states": {"LISTEN": 1, ...}}``, when they are
made.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import socket
import struct
import sys
import time

PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h
PR_SET_NAME = 15
TCP_REPAIR = 19  # include/uapi/linux/tcp.h
TCP_INFO_STATE_FIN_WAIT2 = 5  # tcp_info.tcpi_state, TCP_FIN_WAIT2 in include/net/tcp_states.h


def _state(sock: socket.socket) -> int:
    return struct.unpack("B", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1))[0]


def _vanish_after_fin(cli: socket.socket, timeout: float = 5.0) -> None:
    cli.shutdown(socket.SHUT_WR)
    end = time.monotonic() + timeout
    while _state(cli) != TCP_INFO_STATE_FIN_WAIT2:
        if time.monotonic() > end:
            raise RuntimeError("the FIN was not ACKed")
        time.sleep(0.001)
    cli.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    cli.close()


def build(port: int, established: int, close_wait: int) -> list[socket.socket]:
    lst = socket.create_server(("127.0.0.1", port), backlog=max(16, established + close_wait))
    keep = [lst]
    for _ in range(established):
        cli = socket.create_connection(("127.0.0.1", port))
        srv, _ = lst.accept()
        keep += [cli, srv]
    for _ in range(close_wait):
        cli = socket.create_connection(("127.0.0.1", port))
        srv, _ = lst.accept()
        _vanish_after_fin(cli)
        keep.append(srv)
    return keep


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--established", type=int, default=20, metavar="PAIRS")
    ap.add_argument("--close-wait", type=int, default=5, metavar="N")
    ap.add_argument("--comm", help="the process's name (at most 15 bytes)")
    args = ap.parse_args(argv)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if args.comm:
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(args.comm.encode()[:15]), 0, 0, 0)
    keep = build(args.port, args.established, args.close_wait)
    states = {"LISTEN": 1, "ESTAB": 2 * args.established, "CLOSE-WAIT": args.close_wait}
    print(json.dumps({"pid": os.getpid(), "states": states}), flush=True)
    sys.stdin.read()  # until the farm closes our stdin
    del keep
    return 0


if __name__ == "__main__":
    sys.exit(main())
