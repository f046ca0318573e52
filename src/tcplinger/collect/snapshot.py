"""Take a snapshot: the sockets and kernel context of the namespaces in scope.

Each namespace is read from inside it (a worker thread that setns()'d, see
collect/setns.py) through sock_diag, falling back to /proc/net/tcp when
sock_diag is unavailable, and to /proc/PID/net of a process in it when the
namespace cannot be entered (not root).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ..model.kernel import KernelContext
from ..model.snapshot import NetnsSnapshot, Snapshot
from ..model.states import REPORTED, state_mask
from ..model.table import SocketTable
from . import kernel as kernel_reader
from . import netns as netns_mod
from . import procfs
from .setns import run_in_netns

#: What a snapshot holds unless asked for less: what ``ss -ta`` shows.
#: Not the TCP_BOUND_INACTIVE bit (bound, never listened or connected; the
#: kernel reports those as CLOSE, and ss leaves them out): it makes
#: inet_diag_dump_icsk() walk every socket of the bind hash (bhash2) too,
#: net/ipv4/inet_diag.c since Linux 6.8 ("tcp: Dump bound-only sockets in
#: inet_diag."), which cost 0.2-0.35 s of system time per dump at 1M
#: sockets here.
ALL_STATES = frozenset(REPORTED)


@dataclass(frozen=True)
class Scope:
    """Which namespaces to look at: the caller's by default."""

    netns: str | None = None
    netns_pid: int | None = None
    all_netns: bool = False


@dataclass(frozen=True)
class Roots:
    """Where the kernel is: real paths by default, recorded trees in tests."""

    proc: Path = Path("/proc")
    run_netns: Path = Path("/run/netns")


def resolve(scope: Scope, roots: Roots = Roots()) -> tuple[list, int]:
    """Namespaces in scope as NetnsInfo, and how many pids were unreadable."""
    if scope.netns is not None:
        return [netns_mod.by_name(scope.netns, run_netns=roots.run_netns,
                                  proc_root=roots.proc)], 0
    if scope.netns_pid is not None:
        return [netns_mod.by_pid(scope.netns_pid, roots.proc,
                                 run_netns=roots.run_netns)], 0
    if scope.all_netns:
        found = netns_mod.discover(roots.proc, roots.run_netns)
        return list(found), found.denied
    return [netns_mod.current(roots.proc, run_netns=roots.run_netns)], 0


def take(scope: Scope = Scope(), *, states=None, info_states=frozenset(),
         roots: Roots = Roots()) -> Snapshot:
    """Read every namespace in ``scope``.

    ``states`` limits the dump in the kernel (None: all). ``info_states``
    are the states for which tcp_info is fetched as well (its 280 bytes a
    socket are too dear to ask for every socket of a large host).
    """
    targets, unreadable = resolve(scope, roots)
    wanted = ALL_STATES if states is None else frozenset(states)
    snap = Snapshot()
    if unreadable:
        why = " (not root)" if os.geteuid() != 0 else ""
        snap.skipped.append((None, f"{unreadable} processes could not be inspected{why}:"
                                   " namespaces only they are in may be missing"))
    # tcp_max_orphans and tcp_mem exist in the init namespace only: read
    # them here, in the caller's thread, for the namespaces entered below.
    host = kernel_reader.read_global_sysctls(roots.proc)
    for info in targets:
        try:
            if info.current:
                ns = _collect(info, wanted, frozenset(info_states), roots, host)
            else:
                ns = run_in_netns(info.path, _collect, info, wanted,
                                  frozenset(info_states), roots, host)
        except FileNotFoundError as exc:
            # The namespace went away between discovery and entering it
            # (its last process exited, `ip netns del`).
            if not scope.all_netns:
                raise netns_mod.NetnsNotFound(
                    f"network namespace {info.label()} vanished while being read") from exc
            snap.skipped.append((info.ref, "vanished while being read"))
            continue
        except PermissionError as exc:
            ns = _collect_from_pid(info, wanted, roots, exc)
            if ns is None:
                if not scope.all_netns:  # the one namespace asked for: an error
                    raise
                snap.skipped.append((info.ref, str(exc.strerror or exc)))
                continue
        snap.namespaces.append(ns)
    return snap


def _collect(info, wanted, info_states, roots: Roots, host: dict) -> NetnsSnapshot:
    """Runs inside the namespace (the calling thread is in it)."""
    warnings: list[str] = []
    proc_net = roots.proc / "thread-self" / "net"
    try:
        table = _dump(wanted, info_states & wanted)
        source = "netlink"
    except _diag_unavailable() as exc:
        warnings.append(f"sock_diag unavailable ({exc}); read /proc/net/tcp instead:"
                        " no cookies, no tcp_info, no shutdown state")
        table = _filter_states(procfs.read_sockets(proc_net), wanted)
        source = "procfs"
    kctx = kernel_reader.read_kernel_context(roots.proc, proc_net=proc_net,
                                             global_sysctls=host)
    return NetnsSnapshot(netns=info.ref, table=table, kernel=kctx, source=source,
                         taken_at=time.time(), monotonic=time.monotonic(),
                         pids=tuple(info.pids), warnings=tuple(warnings))


def _collect_from_pid(info, wanted, roots: Roots, exc) -> NetnsSnapshot | None:
    """Not allowed to enter: /proc/PID/net of a process in it still reads."""
    for pid in info.pids:
        proc_net = roots.proc / str(pid) / "net"
        try:
            table = _filter_states(procfs.read_sockets(proc_net), wanted)
        except OSError:
            continue
        kctx = KernelContext(missing=("sysctls: cannot enter the namespace"
                                      f" ({exc.strerror or exc})",))
        return NetnsSnapshot(netns=info.ref, table=table, kernel=kctx, source="procfs",
                             taken_at=time.time(), monotonic=time.monotonic(),
                             pids=tuple(info.pids),
                             warnings=(f"read through /proc/{pid}/net: cannot enter"
                                       " the namespace, so no cookies or tcp_info",))
    return None


def _dump(wanted, info_states) -> SocketTable:
    """The states in ``wanted``, with tcp_info for those in ``info_states``.

    Two dumps per family when some states want tcp_info: asking it for
    every socket costs more than walking the hash table twice (1M sockets,
    30% in INFO states, Linux 6.18: 1.82 s against 1.73 s, both families,
    and tcp_info of 1M rows to decode and hold).  All four dumps go into
    one sink, so the table is built in place rather than concatenated.
    """
    from .netlink import codec
    from .netlink import dump as nl

    plain = wanted - info_states
    with nl.DiagSocket() as sock:
        sink = codec.RowSink(sock.capacity_hint, tcp_info=bool(info_states))
        for states, info in ((plain, False), (info_states, True)):
            if states:
                for family in (socket.AF_INET, socket.AF_INET6):
                    sock.dump_into(sink, family, state_mask(states), tcp_info=info)
        return sink.finish()


def _diag_unavailable():
    from .netlink.dump import DiagUnavailable
    return DiagUnavailable


def _filter_states(table: SocketTable, wanted) -> SocketTable:
    if wanted >= ALL_STATES:
        return table
    import numpy as np
    keep = np.isin(table.rows["state"], [int(s) for s in wanted])
    return table.select(keep)
