"""A holder process of a benchmark population (bench/popgen.py): it enters
the namespace, builds its share of the plan (bench/popgen_plan.py) as real
loopback connections, keeps them (TIME-WAIT re-created as it expires) and
hands its counts to the parent.

How each state in the mix is made
---------------------------------
Every socket lives in the namespace, so a connection is two sockets there
and the mix counts *sockets*, not connections:

=================  ============================================  ===========
kind               how                                           sockets
=================  ============================================  ===========
established pair   connect + accept                              2 ESTAB
half-closed pair   client ``shutdown(SHUT_WR)``, keeps its fd    1 FIN-WAIT-2
                                                                 + 1 CLOSE-WAIT
close-wait solo    half-closed pair, then the client vanishes    1 CLOSE-WAIT
fin-wait-2 solo    half-closed pair, then the server vanishes    1 FIN-WAIT-2
established solo   established pair, one side vanishes           1 ESTAB
time-wait          client close(), then server close()           1 TIME-WAIT
listen             bind + listen                                 1 LISTEN
=================  ============================================  ===========

``min(close-wait, fin-wait-2)`` sockets are made as half-closed pairs; only
the surplus of one of them becomes solos.  FIN-WAIT-2 sockets keep their fd,
so they are *not* orphans and never time out (the fin timeout only applies
to orphans: ``tcp_rcv_state_process()`` arms it only when ``SOCK_DEAD``,
net/ipv4/tcp_input.c).  Orphaned FIN-WAIT-2 minisockets are not generated:
they die after tcp_fin_timeout and count against the host-wide
tcp_max_orphans that other users of the machine share.

"Vanishes" means ``setsockopt(TCP_REPAIR, 1)`` then ``close()``: in repair
mode ``__tcp_close()`` calls ``tcp_disconnect()``, which sends neither FIN nor
RST (net/ipv4/tcp.c; the CRIU use case), so the peer keeps its state forever.
Before a client vanishes we wait until it is in FIN-WAIT-2, i.e. the server's
ACK of our FIN has arrived, so no later segment from the server can hit the
vanished 4-tuple and draw a RST.

TIME-WAIT sockets hold no fd and expire after TCP_TIMEWAIT_LEN (60 s, plus
the timer wheel's rounding, up to about 4 s more).  Holders that own
TIME-WAIT batches re-create each batch once its last socket is gone, found by
an exact sock_diag lookup of that socket's 4-tuple and cookie (the cookie,
because a re-created connection may get the same 4-tuple), so the population
keeps its TIME-WAIT sockets for as long as it lives
(``refresh_time_wait=False`` turns this off).  Batches expire together (same
timer-wheel slot), so each minute the count dips for the seconds the
re-creation takes, and in-flight connections briefly show in other states.

Every socket that is kept has ``SO_LINGER {1, 0}``: when a holder exits, the
kernel resets its connections instead of leaving hundreds of thousands of
orphans (which would count against the host-wide tcp_max_orphans) and
TIME-WAIT sockets behind.

Limits this works around
------------------------
* RLIMIT_NOFILE is 20000 and cannot be raised, so sockets are spread over
  holder processes of at most ``fd_budget`` fds each (48 holders at 1M).
* 4-tuples: holder *i* listens on its own 127.{1+i//256}.{i%256}.x
  addresses (ports 100-999, outside the ephemeral range) and binds its
  clients to its own source addresses 127.{128+i//256}.{i%256}.x with
  IP_BIND_ADDRESS_NO_PORT, so connect() picks ports per 4-tuple; enough
  source addresses are used that no (source, destination) pair fills more
  than a quarter of the port range (port search stays O(1)).
* CLOSE-WAIT solos: the vanished client's 4-tuple is free again for
  connect() while the server still uses it; those clients bind explicitly to
  (address, port) pairs from 127.{192+i//256}.{i%256}.x that are never used
  twice (see ``_Holder._close_wait_solo``).
* sysctls in the namespace: ip_local_port_range 1024-65535, somaxconn,
  tcp_max_tw_buckets above the TIME-WAIT count (it also counts orphaned
  FIN-WAIT-2 minisockets), tcp_tw_reuse=0 (the default 2 lets loopback
  connects reuse a TIME-WAIT 4-tuple after 1 s, which would eat TIME-WAIT
  sockets of the population: ``tcp_twsk_unique()``, net/ipv4/tcp_ipv4.c).
"""

from __future__ import annotations

import ctypes
import errno
import gc
import multiprocessing.connection
import os
import resource
import select
import signal
import socket
import struct
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

# popgen_plan makes tcplinger importable from a checkout (src/) as well
from popgen_plan import HolderPlan, PopulationError, pinned_addr

from tcplinger.collect.setns import enter
from tcplinger.model.states import TcpState

# Constants Python 3.11's socket module lacks (include/uapi/linux/*.h).
TCP_REPAIR = 19  # linux/tcp.h
IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h
SO_COOKIE = 57  # asm-generic/socket.h
PR_SET_PDEATHSIG = 1
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR = 2
TIMEWAIT_LEN = 60.0  # TCP_TIMEWAIT_LEN, include/net/tcp.h
LINGER_RESET = struct.pack("ii", 1, 0)  # struct linger {l_onoff=1, l_linger=0}
PINNED_PORT_LOW = 1024

_libc = ctypes.CDLL(None, use_errno=True)


def _tcp_state(sock: socket.socket) -> int:
    # tcpi_state is the first byte of struct tcp_info (linux/tcp.h).
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


def _wait_state(socks: list[socket.socket], state: TcpState, timeout: float = 20.0) -> None:
    pending = socks
    deadline = time.monotonic() + timeout
    while True:
        pending = [s for s in pending if _tcp_state(s) != state]
        if not pending:
            return
        if time.monotonic() > deadline:
            seen = Counter(TcpState(_tcp_state(s)).name for s in pending)
            raise PopulationError(f"{len(pending)} sockets not in {state.name} after "
                                  f"{timeout} s: {dict(seen)}")
        time.sleep(0.001)


def _vanish(sock: socket.socket) -> None:
    """Close without sending FIN or RST (TCP_REPAIR: see module docstring)."""
    sock.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    sock.close()


def socket_cookie(sock: socket.socket) -> int:
    """The socket's sock_diag cookie (SO_COOKIE); a timewait socket made from
    it keeps it (``inet_twsk_alloc()``, net/ipv4/inet_timewait_sock.c)."""
    return struct.unpack("=Q", sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0]


def diag_lookup(nl: socket.socket, src: tuple[str, int], dst: tuple[str, int],
                cookie: int | None = None) -> int | None:
    """State of the IPv4 TCP socket with local ``src`` and remote ``dst`` (and
    ``cookie``, when given) by an exact sock_diag request (struct
    inet_diag_req_v2, linux/inet_diag.h), or None when there is none.  Finds
    timewait-type sockets too.  Without the cookie a newer socket that reuses
    the 4-tuple would be taken for the old one."""
    if cookie is None:
        cookie_words = (0xFFFFFFFF, 0xFFFFFFFF)  # INET_DIAG_NOCOOKIE
    else:
        cookie_words = (cookie & 0xFFFFFFFF, cookie >> 32)
    req = (struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF)
           + struct.pack("!HH", src[1], dst[1])
           + socket.inet_aton(src[0]) + bytes(12) + socket.inet_aton(dst[0]) + bytes(12)
           + struct.pack("=III", 0, *cookie_words))
    nl.send(struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, 1, 1, 0) + req)
    reply = nl.recv(65536)
    _length, kind = struct.unpack_from("=IH", reply)
    if kind == NLMSG_ERROR:
        (err,) = struct.unpack_from("=i", reply, 16)
        # ESTALE: the 4-tuple is taken by a socket with another cookie
        # (sock_diag_check_cookie(), net/core/sock_diag.c).
        if err in (0, -errno.ENOENT, -errno.ESTALE):
            return None
        raise OSError(-err, f"sock_diag lookup: {os.strerror(-err)}")
    return reply[16 + 1]  # inet_diag_msg.idiag_state


@dataclass
class _TimeWaitBatch:
    size: int
    created: float  # time.monotonic()
    sentinel: tuple[tuple[str, int], tuple[str, int], int]  # last client: local, remote, cookie
    next_probe: float = 0.0


@dataclass
class _Holder:
    plan: HolderPlan
    listeners: list[socket.socket] = field(default_factory=list)
    held: list[socket.socket] = field(default_factory=list)
    time_wait: deque = field(default_factory=deque)
    batches: int = 0
    pinned: int = 0
    refreshed: int = 0
    build_seconds: float = 0.0
    nl: socket.socket | None = None

    def build(self) -> None:
        t0 = time.monotonic()
        for addr in self.plan.listen_addrs:
            ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            ls.bind(addr)
            ls.listen(4 * self.plan.batch)
            self.listeners.append(ls)
        k = self.plan.kinds
        for count, step in ((k.established_pairs, self._established_pairs),
                            (k.established_solo, self._established_solo),
                            (k.half_closed_pairs, self._half_closed_pairs),
                            (k.close_wait_solo, self._close_wait_solo),
                            (k.fin_wait2_solo, self._fin_wait2_solo),
                            (k.time_wait, self._time_wait)):
            while count > 0:
                b = min(self.plan.batch, count)
                step(b)
                count -= b
        if k.listeners == 0:  # the listener was only scaffolding
            for ls in self.listeners:
                ls.close()
            self.listeners.clear()
        self.build_seconds = time.monotonic() - t0

    def _connect(self, n: int, pinned: bool = False) -> tuple[list[socket.socket], list[socket.socket]]:
        """``n`` connections to one of our listeners: (clients, servers).

        ``pinned``: bind each client to a (source, port) never used before or
        after, for connections whose client will vanish while the server keeps
        the 4-tuple (see _close_wait_solo)."""
        listener = self.listeners[self.batches % len(self.listeners)]
        dst = self.plan.listen_addrs[self.batches % len(self.listeners)]
        src = (self.plan.source_addrs[self.batches % len(self.plan.source_addrs)], 0)
        self.batches += 1
        clients = []
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            clients.append(s)
            if pinned:
                k, port = divmod(self.pinned, 65536 - PINNED_PORT_LOW)
                s.bind((pinned_addr(self.plan.index, k), PINNED_PORT_LOW + port))
                self.pinned += 1
            else:
                # Port chosen at connect() time, unique per 4-tuple (not per address).
                s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind(src)
            rc = s.connect_ex(dst)
            if rc not in (0, errno.EINPROGRESS):
                raise OSError(rc, f"connect {src[0]} -> {dst}: {os.strerror(rc)}")
        servers = []
        deadline = time.monotonic() + 30
        while len(servers) < n:
            try:
                servers.append(listener.accept()[0])
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PopulationError(f"accepted {len(servers)} of {n} on {dst} in 30 s")
                select.select([listener], [], [], 0.2)
        return clients, servers

    def _established_pairs(self, n: int) -> None:
        clients, servers = self._connect(n)
        for s in clients + servers:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        self.held += clients + servers

    def _established_solo(self, n: int) -> None:
        clients, servers = self._connect(n)
        for s in clients:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        for s in servers:
            _vanish(s)
        self.held += clients

    def _half_closed_pairs(self, n: int) -> None:
        clients, servers = self._connect(n)
        for s in clients + servers:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        for s in clients:
            s.shutdown(socket.SHUT_WR)
        self.held += clients + servers

    def _close_wait_solo(self, n: int) -> None:
        # The vanished client frees its 4-tuple in the kernel's tables while the
        # server keeps it. A later connect() that picked the same source port
        # would send a SYN into the CLOSE-WAIT socket, get a challenge ACK
        # (RFC 5961, tcp_validate_incoming()) and answer it with a RST that
        # kills the CLOSE-WAIT socket: seen as TcpEstabResets = SynRetrans.
        # Pinned (source, port) pairs are never handed out again.
        clients, servers = self._connect(n, pinned=True)
        for s in clients:
            s.shutdown(socket.SHUT_WR)
        _wait_state(clients, TcpState.FIN_WAIT2)  # server has ACKed our FIN: it will stay quiet
        for s in servers:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        for s in clients:
            _vanish(s)
        self.held += servers

    def _fin_wait2_solo(self, n: int) -> None:
        clients, servers = self._connect(n)
        for s in clients:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            s.shutdown(socket.SHUT_WR)
        _wait_state(clients, TcpState.FIN_WAIT2)
        for s in servers:
            _vanish(s)
        self.held += clients

    def _time_wait(self, n: int) -> None:
        clients, servers = self._connect(n)
        last = clients[-1]
        sentinel = (last.getsockname(), last.getpeername(), socket_cookie(last))
        for s in clients:
            s.close()  # FIN first: the client side ends in TIME-WAIT
        # Close the server only once our FIN has arrived; closing earlier would
        # be a simultaneous close and leave TIME-WAIT on both sides.
        _wait_state(servers, TcpState.CLOSE_WAIT)
        for s in servers:
            s.close()
        self.time_wait.append(_TimeWaitBatch(n, time.monotonic(), sentinel))

    def serve(self, conn: multiprocessing.connection.Connection) -> None:
        """Hold the sockets until the parent says stop (or goes away), re-creating
        TIME-WAIT batches as they expire."""
        if self.time_wait and self.plan.refresh_time_wait:
            self.nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        while True:
            timeout = None
            if self.nl is not None and self.time_wait:
                head = self.time_wait[0]
                due = max(head.created + TIMEWAIT_LEN, head.next_probe)
                timeout = max(0.0, due - time.monotonic())
            try:
                if conn.poll(timeout):
                    if conn.recv() == "stop":
                        return
                    continue
            except (EOFError, OSError):
                return
            head = self.time_wait[0]
            if diag_lookup(self.nl, *head.sentinel) is not None:
                head.next_probe = time.monotonic() + 0.05
                continue
            self.time_wait.popleft()
            self._time_wait(head.size)
            self.refreshed += head.size

    def release(self) -> None:
        """Close everything without a packet: half the kernel work of RSTs and
        none of the orphans or TIME-WAIT sockets a plain close() would leave.
        (If the holder is SIGKILLed instead, SO_LINGER {1,0} makes them RSTs.)"""
        for s in self.held:
            _vanish(s)
        self.held.clear()
        for ls in self.listeners:
            ls.close()
        self.listeners.clear()

    def report(self) -> dict:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return {"pid": os.getpid(), "index": self.plan.index, "fds": len(self.held) + len(self.listeners),
                "time_wait": sum(b.size for b in self.time_wait), "build_seconds": self.build_seconds,
                "cpu_seconds": ru.ru_utime + ru.ru_stime}


def _holder_main(conn, netns_path: Path, plan: HolderPlan, parent_pid: int, inherited: list) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's unwinding handler
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # parent died before prctl
        os._exit(1)
    for c in inherited:  # other holders' pipe ends, copied by fork()
        c.close()
    gc.disable()  # ~40k socket objects and no cycles: collections only cost time
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        enter(netns_path)  # the forked holder has one thread
        holder = _Holder(plan)
        holder.build()
        conn.send(("built", holder.report()))
    except BaseException:
        conn.send(("error", f"holder {plan.index} (pid {os.getpid()}):\n{traceback.format_exc()}"))
        os._exit(1)
    try:
        holder.serve(conn)
        holder.release()
    except BaseException:
        try:  # the parent reads it in Population.problems()
            conn.send(("error", f"holder {plan.index} (pid {os.getpid()}):\n{traceback.format_exc()}"))
        finally:
            os._exit(1)
    os._exit(0)
