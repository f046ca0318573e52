#!/usr/bin/env python3
"""Benchmark populations: N TCP sockets of a chosen state mix in a private netns.

    python bench/popgen.py --sockets 1M \\
        --mix established=0.6,close-wait=0.2,fin-wait-2=0.1,time-wait=0.1 [--hold]

or, from Python::

    with Population(100_000, "established=0.6,close-wait=0.4") as pop:
        subprocess.run(["ip", "netns", "exec", pop.netns, "ss", "-tan"])

The namespace is named ``tl-bench-<pid>-<hex>``; it and the holder processes
(ended by PID) are removed on exit, Ctrl-C, SIGTERM and exceptions.  If the
parent is SIGKILLed the holders die with it (PR_SET_PDEATHSIG) and
``--cleanup`` removes the namespace it leaves in /run/netns.

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

import argparse
import ctypes
import errno
import gc
import math
import multiprocessing
import multiprocessing.connection
import os
import re
import resource
import secrets
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

try:
    from tcplinger.model.states import BY_STATE, TcpState, parse_state
except ImportError:  # run from a checkout without `pip install -e`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from tcplinger.model.states import BY_STATE, TcpState, parse_state

NETNS_PREFIX = "tl-bench-"
NETNS_DIR = Path("/run/netns")
DEFAULT_MIX = "established=0.6,close-wait=0.2,fin-wait-2=0.1,time-wait=0.1"
SUPPORTED = (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT, TcpState.FIN_WAIT2,
             TcpState.TIME_WAIT, TcpState.LISTEN)

# Constants Python 3.11's socket module lacks (include/uapi/linux/*.h).
TCP_REPAIR = 19  # linux/tcp.h
IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h
SO_COOKIE = 57  # asm-generic/socket.h
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR = 2
TIMEWAIT_LEN = 60.0  # TCP_TIMEWAIT_LEN, include/net/tcp.h
LINGER_RESET = struct.pack("ii", 1, 0)  # struct linger {l_onoff=1, l_linger=0}
PORT_FILL = 16000  # connections per (source, destination) pair: 1/4 of 64512 ports
LISTEN_PORTS = range(100, 1000)
PINNED_PORT_LOW = 1024


class PopulationError(RuntimeError):
    """The population could not be built (a holder failed or timed out)."""


# --------------------------------------------------------------------- plan

@dataclass(frozen=True)
class Mix:
    """Shares of sockets per TCP state, in the order given.

    >>> Mix.parse("established=0.5,close-wait=0.2,time-wait=0.1,fin-wait-2=0.1,listen=0.1")
    Mix(shares=((<TcpState.ESTABLISHED: 1>, 0.5), (<TcpState.CLOSE_WAIT: 8>, 0.2), \
(<TcpState.TIME_WAIT: 6>, 0.1), (<TcpState.FIN_WAIT2: 5>, 0.1), (<TcpState.LISTEN: 10>, 0.1)))
    >>> Mix.parse("syn-sent=1")
    Traceback (most recent call last):
    ...
    ValueError: state SYN_SENT: popgen makes only ESTABLISHED, CLOSE_WAIT, FIN_WAIT2, TIME_WAIT, LISTEN
    """

    shares: tuple[tuple[TcpState, float], ...]

    @classmethod
    def parse(cls, text: str) -> "Mix":
        shares: dict[TcpState, float] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"{part!r}: expected state=fraction")
            state = parse_state(name)
            if state not in SUPPORTED:
                allowed = ", ".join(s.name for s in SUPPORTED)
                raise ValueError(f"state {state.name}: popgen makes only {allowed}")
            share = float(value)
            if share < 0 or not math.isfinite(share):
                raise ValueError(f"{part!r}: fraction must be >= 0")
            shares[state] = shares.get(state, 0.0) + share
        if not shares or sum(shares.values()) <= 0:
            raise ValueError(f"{text!r}: empty mix")
        return cls(tuple(shares.items()))

    def counts(self, sockets: int) -> dict[TcpState, int]:
        """Socket counts summing to exactly ``sockets`` (largest remainder;
        shares are normalised, so they need not add up to 1).

        >>> Mix.parse("established=0.5,close-wait=0.25,time-wait=0.25").counts(10)
        {<TcpState.ESTABLISHED: 1>: 5, <TcpState.CLOSE_WAIT: 8>: 3, <TcpState.TIME_WAIT: 6>: 2}
        >>> sum(Mix.parse("established=1,listen=2").counts(1001).values())
        1001
        """
        total = sum(share for _, share in self.shares)
        exact = [(state, sockets * share / total) for state, share in self.shares]
        out = {state: int(value) for state, value in exact}
        short = sockets - sum(out.values())
        by_remainder = sorted(range(len(exact)), key=lambda i: -(exact[i][1] - int(exact[i][1])))
        for i in by_remainder[:short]:
            out[exact[i][0]] += 1
        return out

    def __str__(self) -> str:
        return ",".join(f"{BY_STATE[s].name.lower().replace('_', '-')}={v:g}" for s, v in self.shares)


@dataclass(frozen=True)
class Kinds:
    """How many connections of each kind (see the module docstring) to make.

    >>> k = Kinds.from_counts({TcpState.ESTABLISHED: 5, TcpState.CLOSE_WAIT: 3,
    ...                        TcpState.FIN_WAIT2: 1, TcpState.TIME_WAIT: 2, TcpState.LISTEN: 1})
    >>> k
    Kinds(established_pairs=2, established_solo=1, half_closed_pairs=1, close_wait_solo=2, \
fin_wait2_solo=0, time_wait=2, listeners=1)
    >>> k.sockets()[TcpState.CLOSE_WAIT], k.fds, k.connections
    (3, 10, 8)
    """

    established_pairs: int = 0
    established_solo: int = 0
    half_closed_pairs: int = 0
    close_wait_solo: int = 0
    fin_wait2_solo: int = 0
    time_wait: int = 0
    listeners: int = 0

    @classmethod
    def from_counts(cls, counts: Mapping[TcpState, int]) -> "Kinds":
        est = counts.get(TcpState.ESTABLISHED, 0)
        cw = counts.get(TcpState.CLOSE_WAIT, 0)
        fw2 = counts.get(TcpState.FIN_WAIT2, 0)
        half = min(cw, fw2)
        return cls(established_pairs=est // 2, established_solo=est % 2,
                   half_closed_pairs=half, close_wait_solo=cw - half, fin_wait2_solo=fw2 - half,
                   time_wait=counts.get(TcpState.TIME_WAIT, 0),
                   listeners=counts.get(TcpState.LISTEN, 0))

    def sockets(self) -> dict[TcpState, int]:
        return {
            TcpState.ESTABLISHED: 2 * self.established_pairs + self.established_solo,
            TcpState.CLOSE_WAIT: self.half_closed_pairs + self.close_wait_solo,
            TcpState.FIN_WAIT2: self.half_closed_pairs + self.fin_wait2_solo,
            TcpState.TIME_WAIT: self.time_wait,
            TcpState.LISTEN: self.listeners,
        }

    @property
    def fds(self) -> int:
        """Sockets that stay open in a holder (TIME-WAIT sockets hold none)."""
        s = self.sockets()
        return sum(s.values()) - s[TcpState.TIME_WAIT]

    @property
    def connections(self) -> int:
        return (self.established_pairs + self.established_solo + self.half_closed_pairs
                + self.close_wait_solo + self.fin_wait2_solo + self.time_wait)


_FD_KINDS = ("established_pairs", "established_solo", "half_closed_pairs",
             "close_wait_solo", "fin_wait2_solo")


def _spread(total: int, parts: int, start: int) -> list[int]:
    """``total`` split into ``parts`` near-equal shares; the remainder goes to
    the parts from ``start`` on (so that different kinds' remainders do not
    all land on holder 0).

    >>> _spread(10, 4, 3)
    [3, 2, 2, 3]
    """
    base, rest = divmod(total, parts)
    return [base + (1 if (i - start) % parts < rest else 0) for i in range(parts)]


@dataclass(frozen=True)
class HolderPlan:
    index: int
    kinds: Kinds  # kinds.listeners: listeners this holder keeps after the build
    listen_addrs: tuple[tuple[str, int], ...]  # >= 1; a temporary one if none is kept
    source_addrs: tuple[str, ...]
    batch: int
    refresh_time_wait: bool


@dataclass(frozen=True)
class Plan:
    sockets: int
    mix: Mix
    total: Kinds
    holders: tuple[HolderPlan, ...]
    notes: tuple[str, ...] = ()

    def expected(self) -> dict[str, int]:
        """Expected `ss -tan` state column counts (only non-zero ones)."""
        return {BY_STATE[s].ss_name: n for s, n in self.total.sockets().items() if n}


def _listen_addr(holder: int, j: int) -> tuple[str, int]:
    per_addr = len(LISTEN_PORTS)
    return (f"127.{1 + holder // 256}.{holder % 256}.{1 + j // per_addr}",
            LISTEN_PORTS[j % per_addr])


def _source_addr(holder: int, k: int) -> str:
    return f"127.{128 + holder // 256}.{holder % 256}.{1 + k}"


def _pinned_addr(holder: int, k: int) -> str:
    return f"127.{192 + holder // 256}.{holder % 256}.{1 + k}"


def default_fd_budget(batch: int) -> int:
    """Open files a holder may keep: the hard RLIMIT_NOFILE minus a batch in
    flight (client + server per connection) and some slack."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1] - 2 * batch - 100


def make_plan(sockets: int, mix: Mix | str, *, holders: int | None = None, batch: int = 256,
              cpus: int | None = None, fd_budget: int | None = None,
              refresh_time_wait: bool = True) -> Plan:
    """Split a population over holder processes.

    LISTEN is at least the number of holders that make TIME-WAIT sockets (they
    keep a listener to re-create them); the difference is taken from the
    largest other state so the total stays ``sockets``.

    >>> p = make_plan(2000, "established=0.5,close-wait=0.3,time-wait=0.2", cpus=2)
    >>> p.expected(), len(p.holders), p.notes
    ({'ESTAB': 998, 'CLOSE-WAIT': 600, 'TIME-WAIT': 400, 'LISTEN': 2}, 2, \
('LISTEN raised 0 -> 2 (one per TIME-WAIT holder), taken from ESTABLISHED',))
    >>> p = make_plan(1_000_000, DEFAULT_MIX, cpus=2, fd_budget=19400)
    >>> len(p.holders), max(h.kinds.fds for h in p.holders) <= 19400
    (47, True)
    """
    mix = Mix.parse(mix) if isinstance(mix, str) else mix
    if sockets < 1:
        raise ValueError("sockets must be >= 1")
    cpus = cpus or os.cpu_count() or 2
    budget = fd_budget or default_fd_budget(batch)
    counts = {s: 0 for s in SUPPORTED} | mix.counts(sockets)
    notes: list[str] = []

    preliminary = Kinds.from_counts(counts)
    n_holders = holders or max(cpus, math.ceil((preliminary.fds + cpus) / budget))
    tw_holders = min(n_holders, cpus) if counts[TcpState.TIME_WAIT] else 0
    wanted_listen = counts[TcpState.LISTEN]
    if wanted_listen < tw_holders:
        taken: list[str] = []
        for _ in range(tw_holders - wanted_listen):
            donor = max((s for s in SUPPORTED if s != TcpState.LISTEN), key=lambda s: counts[s])
            if counts[donor] == 0:
                break
            counts[donor] -= 1
            counts[TcpState.LISTEN] += 1
            taken.append(donor.name)
        notes.append(f"LISTEN raised {wanted_listen} -> {counts[TcpState.LISTEN]} "
                     f"(one per TIME-WAIT holder), taken from {'/'.join(dict.fromkeys(taken))}")
    total = Kinds.from_counts(counts)

    while True:
        shares = {name: _spread(getattr(total, name), n_holders, i * 7)
                  for i, name in enumerate(_FD_KINDS)}
        tw = _spread(total.time_wait, tw_holders, 0) if tw_holders else []
        kept = [1 if i < tw_holders else 0 for i in range(n_holders)]
        for j in range(total.listeners - sum(kept)):
            kept[(tw_holders + j) % n_holders] += 1
        parts = [Kinds(**{name: shares[name][i] for name in _FD_KINDS},
                       time_wait=tw[i] if i < tw_holders else 0, listeners=kept[i])
                 for i in range(n_holders)]
        if all(k.fds + (k.listeners == 0) <= budget for k in parts):
            break
        if holders:
            raise ValueError(f"{holders} holders cannot keep {total.fds} sockets open "
                             f"({budget} fds each at most)")
        n_holders += 1
    if n_holders > 64 * 256 or max(k.listeners for k in parts) > 254 * len(LISTEN_PORTS):
        raise ValueError(f"{n_holders} holders / {total.listeners} listeners: "
                         "too many for the address plan")

    plans = []
    for i, k in enumerate(parts):
        conns = k.connections + k.time_wait  # old and re-created TIME-WAIT overlap
        n_src = min(254, max(1, math.ceil(conns / PORT_FILL)))
        plans.append(HolderPlan(
            index=i, kinds=k,
            listen_addrs=tuple(_listen_addr(i, j) for j in range(max(1, k.listeners))),
            source_addrs=tuple(_source_addr(i, s) for s in range(n_src)),
            batch=batch, refresh_time_wait=refresh_time_wait))
    return Plan(sockets, mix, total, tuple(plans), tuple(notes))


# ------------------------------------------------------------------- holder

_libc = ctypes.CDLL(None, use_errno=True)


def _enter_netns(path: Path) -> None:
    """Move the calling (single-threaded) process into a network namespace.
    Python 3.11 has no os.setns; setns(2) switches only the calling thread."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


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
                s.bind((_pinned_addr(self.plan.index, k), PINNED_PORT_LOW + port))
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
        _enter_netns(netns_path)
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


# --------------------------------------------------------------- namespace

def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def namespace_sysctls(plan: Plan) -> dict[str, str]:
    """sysctls set inside the namespace (all per-netns on this kernel)."""
    return {
        "net.ipv4.ip_local_port_range": "1024 65535",
        "net.core.somaxconn": "65535",
        # also counts orphaned FIN-WAIT-2 minisockets and the overlap while refreshing
        "net.ipv4.tcp_max_tw_buckets": str(max(262144, 2 * plan.total.time_wait + 65536)),
        "net.ipv4.tcp_tw_reuse": "0",
    }


def netns_exec(netns: str, *argv: str) -> list[str]:
    """``ip netns exec NETNS argv...`` as an argv list."""
    return ["ip", "netns", "exec", netns, *argv]


def ss_counts(netns: str) -> Counter:
    """State column counts of ``ss -tan`` run inside ``netns``."""
    counts: Counter = Counter()
    with subprocess.Popen(netns_exec(netns, "ss", "-tanH"), stdout=subprocess.PIPE, text=True) as p:
        for line in p.stdout:
            counts[line.split(None, 1)[0]] += 1
    if p.returncode:
        raise subprocess.CalledProcessError(p.returncode, p.args)
    return counts


def host_ehash_entries() -> int:
    """Buckets of the TCP established hash this process's namespace uses
    (tcp_ehash_entries, Linux 6.1+; negative when the table is shared)."""
    return abs(int(Path("/proc/sys/net/ipv4/tcp_ehash_entries").read_text()))


def parse_ehash(text: str) -> int | None:
    """``--ehash`` value: ``shared`` -> None, ``host`` -> the host table's
    size, else a bucket count.

    >>> parse_ehash("shared"), parse_ehash("65536")
    (None, 65536)
    """
    if text == "shared":
        return None
    if text == "host":
        return host_ehash_entries()
    n = parse_count(text)
    if not 0 < n <= 2**24:  # proc_tcp_child_ehash_entries: at most 16M
        raise ValueError(f"ehash entries {n}: must be 1..{2**24}")
    return n


def create_netns(name: str, ehash_entries: int | None) -> None:
    """``ip netns add NAME``, optionally with a private TCP established hash.

    A namespace gets its own hash table only if, when it is created, its
    *creator's* namespace has net.ipv4.tcp_child_ehash_entries set (Linux 6.1,
    commit d1e5e6408b30 "tcp: Introduce optional per-netns ehash").  Setting
    that in the host namespace would change every namespace other users
    create meanwhile, so a forked child first enters a throwaway namespace,
    sets it there, creates ours from it, and ``ip netns attach`` pins ours
    by the child's PID; the throwaway namespace dies with the child.
    """
    if ehash_entries is None:
        _run(["ip", "netns", "add", name])
        return
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only syscalls, then _exit
        status = 1
        try:
            os.close(ready_r)
            os.close(done_w)
            for step in range(2):
                if _libc.unshare(CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
                if step == 0:
                    Path("/proc/sys/net/ipv4/tcp_child_ehash_entries").write_text(str(ehash_entries))
            os.write(ready_w, b"1")
            os.read(done_r, 1)
            status = 0
        finally:
            os._exit(status)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise PopulationError("could not create a namespace with a private ehash")
        _run(["ip", "netns", "attach", name, str(pid)])
    finally:
        os.close(ready_r)
        os.close(done_w)  # lets the child exit
        os.waitpid(pid, 0)


def cleanup_stale(log: Callable[[str], None] = print) -> list[str]:
    """Delete ``tl-bench-<pid>-*`` namespaces whose creating process is gone."""
    removed = []
    for path in sorted(NETNS_DIR.glob(NETNS_PREFIX + "*")) if NETNS_DIR.is_dir() else []:
        m = re.fullmatch(re.escape(NETNS_PREFIX) + r"(\d+)-[0-9a-f]+", path.name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            subprocess.run(["ip", "netns", "del", path.name], check=False)
            removed.append(path.name)
            log(f"removed stale namespace {path.name}")
    return removed


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Population:
    """A populated namespace; use as a context manager.

    ``sockets`` and ``mix`` go to :func:`make_plan`; ``netns`` must start with
    ``tl-bench-`` (default: ``tl-bench-<pid>-<hex>``).  After ``__enter__``:
    ``netns``, ``plan``, ``expected()``, ``build_seconds``, ``holder_pids``.

    ``ehash``: the namespace's TCP established hash table.  ``"host"``
    (default): a private table as large as the host's, so the population
    costs tools what it would on a host holding only these sockets, and
    other namespaces' sockets (other users of the machine) neither inflate
    nor disturb the measurement - and ours do not slow their `ss`.
    ``"shared"``/None: the host's table, like a container's.  An int: a
    private table of that many buckets.
    """

    def __init__(self, sockets: int, mix: Mix | str = DEFAULT_MIX, *, netns: str | None = None,
                 holders: int | None = None, batch: int = 256, refresh_time_wait: bool = True,
                 timeout: float = 900.0, ehash: int | str | None = "host",
                 log: Callable[[str], None] | None = None):
        self.plan = make_plan(sockets, mix, holders=holders, batch=batch,
                              refresh_time_wait=refresh_time_wait)
        self.ehash_entries = parse_ehash(ehash) if isinstance(ehash, str) else ehash
        self.netns = netns or f"{NETNS_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        if not self.netns.startswith(NETNS_PREFIX):
            raise ValueError(f"namespace name must start with {NETNS_PREFIX!r}")
        self.timeout = timeout
        self.log = log or (lambda msg: None)
        self.build_seconds: float | None = None
        self.teardown_seconds: float | None = None
        self.reports: list[dict] = []
        self._procs: list[multiprocessing.Process] = []
        self._conns: list[multiprocessing.connection.Connection] = []
        self._created = False
        self._sigterm_installed = False

    @property
    def build_cpu_seconds(self) -> float:
        """CPU time (user + system) the holders spent building."""
        return sum(r["cpu_seconds"] for r in self.reports)

    @property
    def holder_pids(self) -> tuple[int, ...]:
        return tuple(p.pid for p in self._procs if p.pid is not None)

    def expected(self) -> dict[str, int]:
        return self.plan.expected()

    def problems(self) -> list[str]:
        """Holders that failed since the build (e.g. re-creating TIME-WAIT
        sockets) or died: their sockets are gone, the population is short."""
        out = []
        for conn, proc in zip(self._conns, self._procs):
            try:
                while conn.poll():
                    kind, payload = conn.recv()
                    if kind == "error":
                        out.append(payload)
            except (EOFError, OSError):
                pass
            if not proc.is_alive():
                out.append(f"holder pid {proc.pid} exited with code {proc.exitcode}")
        return out

    def exec_argv(self, *argv: str) -> list[str]:
        return netns_exec(self.netns, *argv)

    def __enter__(self) -> "Population":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        t0 = time.monotonic()
        # A plain `kill` would end the process without unwinding: turn SIGTERM
        # into KeyboardInterrupt while we own a namespace, unless someone
        # else already handles it (only the main thread may set handlers).
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
            signal.signal(signal.SIGTERM, _interrupt)
            self._sigterm_installed = True
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        self.build_seconds = time.monotonic() - t0

    def _build(self) -> None:
        if (NETNS_DIR / self.netns).exists():
            raise PopulationError(f"namespace {self.netns} already exists")
        self._created = True  # from here on, close() deletes it (if it exists)
        create_netns(self.netns, self.ehash_entries)
        _run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        _run(netns_exec(self.netns, "sysctl", "-q", "-w",
                        *(f"{k}={v}" for k, v in namespace_sysctls(self.plan).items())))
        ctx = multiprocessing.get_context("fork")
        for hp in self.plan.holders:
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(target=_holder_main, name=f"popgen-holder-{hp.index}", daemon=True,
                               args=(child_end, NETNS_DIR / self.netns, hp, os.getpid(),
                                     list(self._conns) + [parent_end]))
            proc.start()
            child_end.close()
            self._procs.append(proc)
            self._conns.append(parent_end)
        waiting = {c: p for c, p in zip(self._conns, self._procs)}
        sentinels = {p.sentinel: c for c, p in waiting.items()}
        deadline = time.monotonic() + self.timeout
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PopulationError(f"{len(waiting)} holders not built after {self.timeout} s")
            ready = multiprocessing.connection.wait(list(waiting) + list(sentinels), timeout=left)
            for r in ready:
                conn = sentinels.get(r, r)
                if conn not in waiting:
                    continue
                try:
                    kind, payload = conn.recv()
                except EOFError:
                    raise PopulationError(f"holder pid {waiting[conn].pid} exited "
                                          f"(code {waiting[conn].exitcode}) before reporting") from None
                if kind == "error":
                    raise PopulationError(payload)
                self.reports.append(payload)
                del sentinels[waiting.pop(conn).sentinel]
                self.log(f"holder {payload['index']} (pid {payload['pid']}) built: {payload['fds']} fds, "
                         f"{payload['time_wait']} TIME-WAIT, {payload['build_seconds']:.1f} s "
                         f"({len(self.reports)}/{len(self._procs)})")

    def close(self) -> None:
        """End the holders (by PID) and delete the namespace; idempotent.

        SIGINT and SIGTERM are held back meanwhile (and delivered after):
        a second Ctrl-C, or timeout(1) signalling both its child and the
        child's process group, must not cut the cleanup short."""
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            self._close()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _close(self) -> None:
        t0 = time.monotonic()
        for conn in self._conns:
            try:
                conn.send("stop")
            except OSError:
                pass
        deadline = time.monotonic() + 30
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self._procs:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)
                proc.join(10)
        for conn in self._conns:
            conn.close()
        self._procs.clear()
        self._conns.clear()
        if self._created:
            if (NETNS_DIR / self.netns).exists():
                subprocess.run(["ip", "netns", "del", self.netns], check=False, stderr=subprocess.DEVNULL)
            self._created = False
        self.teardown_seconds = time.monotonic() - t0
        if self._sigterm_installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self._sigterm_installed = False


# ---------------------------------------------------------------------- CLI

def parse_count(text: str) -> int:
    """``1M``, ``100k``, ``2000`` -> int.

    >>> parse_count("1M"), parse_count("100k"), parse_count("2_000")
    (1000000, 100000, 2000)
    """
    text = text.strip().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def _format_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sockets", type=parse_count, help="number of sockets (1M, 100k, ...)")
    ap.add_argument("--mix", default=DEFAULT_MIX, help=f"state=share,... (default {DEFAULT_MIX})")
    ap.add_argument("--netns", help="namespace name (must start with tl-bench-)")
    ap.add_argument("--hold", action="store_true", help="keep the population until Ctrl-C / SIGTERM")
    ap.add_argument("--holders", type=int, help="holder processes (default: from the fd limit)")
    ap.add_argument("--batch", type=int, default=256, help="connections per batch (default 256)")
    ap.add_argument("--no-refresh", action="store_true", help="let TIME-WAIT sockets expire")
    ap.add_argument("--ehash", default="host",
                    help="TCP established hash: host (private, host-sized; default), shared, or N buckets")
    ap.add_argument("--check", action="store_true", help="compare `ss -tan` counts with the plan")
    ap.add_argument("--verbose", "-v", action="store_true", help="report each holder")
    ap.add_argument("--cleanup", action="store_true", help="remove stale tl-bench- namespaces and exit")
    args = ap.parse_args(argv)
    if args.cleanup:
        cleanup_stale()
        return 0
    if not args.sockets:
        ap.error("--sockets is required")
    if os.geteuid() != 0:
        ap.error("needs root (network namespaces, TCP_REPAIR)")

    # SIGTERM unwinds like Ctrl-C, so the `with` below always cleans up.
    signal.signal(signal.SIGTERM, _interrupt)
    pop = Population(args.sockets, args.mix, netns=args.netns, holders=args.holders,
                     batch=args.batch, refresh_time_wait=not args.no_refresh, ehash=args.ehash,
                     log=print if args.verbose else None)
    for note in pop.plan.notes:
        print(f"note: {note}")
    print(f"{pop.netns}: {args.sockets} sockets ({_format_counts(pop.expected())}) "
          f"in {len(pop.plan.holders)} holders")
    status = 0
    try:
        with pop:
            print(f"built in {pop.build_seconds:.1f} s ({pop.build_cpu_seconds:.1f} CPU-s in holders)",
                  flush=True)
            if args.check:
                t = time.monotonic()
                seen = ss_counts(pop.netns)
                print(f"ss -tan ({time.monotonic() - t:.1f} s): {_format_counts(seen)}")
                if {k: seen.get(k, 0) for k in pop.expected()} != pop.expected() \
                        or set(seen) - set(pop.expected()):
                    print("MISMATCH with the plan")
                    status = 1
            if args.hold:
                print(f"holding; run e.g.  ip netns exec {pop.netns} ss -tan   (Ctrl-C to remove)",
                      flush=True)
                while True:
                    signal.pause()
    except KeyboardInterrupt:
        print("interrupted")
    print(f"removed in {pop.teardown_seconds or 0:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
