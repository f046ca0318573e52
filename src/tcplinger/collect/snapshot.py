"""Take a snapshot: the sockets and kernel context of the namespaces in scope.

Each namespace is read from inside it (a worker thread that setns()'d, see
collect/setns.py) through sock_diag, falling back to /proc/net/tcp when
sock_diag is unavailable, and to /proc/PID/net of a process in it when the
namespace cannot be entered (not root).
"""

from __future__ import annotations

import errno
import os
import socket
import time
from dataclasses import dataclass

from ..model.kernel import KernelContext
from ..model.notice import Notice
from ..model.snapshot import NetnsSnapshot, Snapshot
from ..model.states import REPORTED, state_mask
from ..model.table import SocketTable, member
from . import kernel as kernel_reader
from . import netns as netns_mod
from . import procfs
from .roots import Roots
from .setns import map_in_netns

#: What a snapshot holds unless asked for less: what ``ss -ta`` shows.
#: Not the TCP_BOUND_INACTIVE bit (bound, never listened or connected; the
#: kernel reports those as CLOSE, and ss leaves them out): it makes
#: inet_diag_dump_icsk() walk every socket of the bind hash (bhash2) too,
#: net/ipv4/inet_diag.c since Linux 6.8 ("tcp: Dump bound-only sockets in
#: inet_diag."), which cost 0.2-0.35 s of system time per dump at 1M
#: sockets here.
ALL_STATES = frozenset(REPORTED)

#: A namespace holding at most this many TCP sockets (sockstat: TCP and
#: TCP6 ``inuse`` plus ``tw``, read inside it just before) is dumped once
#: per family with tcp_info for every state, instead of twice (the plain
#: states, then those with tcp_info). Each dump walks the whole established
#: hash, which a namespace shares with the host unless it has its own
#: (tcp_child_ehash_entries): 150 pods of 46 sockets on a host of ~2,000
#: sockets took 27 ms of CPU per pod for four dumps; the tcp_info of 50k
#: sockets costs the kernel ~40 ms and the decoder ~15 ms (280 bytes each,
#: 14 MB). Rows outside the asked states get their tcp_info cleared, and
#: come in the order the two dumps give, so callers see the same table.
ONE_DUMP_MAX = 50_000
#: Namespaces read at once under --all-netns: each worker thread enters
#: one namespace after another (setns() moves one thread,
#: collect/setns.py), the caller's own is read on the calling thread
#: meanwhile; the dumps are kernel time in recvmsg(), which releases the GIL.
WORKERS = 4


#: English texts of the notices (the catalogs' ``notice.<key>`` keep their
#: placeholders: tests/unit/test_i18n_cli.py checks)
NOTICES = {
    "uninspected_processes": "{n} {n:process|processes} could not be inspected: namespaces"
                             " only they are in may be missing",
    "uninspected_processes_user": "{n} {n:process|processes} could not be inspected (not"
                                  " root): namespaces only they are in may be missing",
    "vanished": "vanished while being read",
    "enter_failed": "{error}",
    "sock_diag_unavailable": "sock_diag unavailable ({error}); read /proc/net/tcp instead:"
                             " no cookies, no tcp_info, no shutdown state",
    "read_via_pid": "read through /proc/{pid}/net: cannot enter the namespace, so no"
                    " cookies or tcp_info",
}


def notice(key: str, **fields) -> Notice:
    return Notice(key, NOTICES[key], **fields)


@dataclass(frozen=True)
class Scope:
    """Which namespaces to look at: the caller's by default."""

    netns: str | None = None
    netns_pid: int | None = None
    all_netns: bool = False
    container: str | None = None  # the namespaces of containers so named (or id prefix)
    pod: str | None = None  # ... of the Kubernetes pod NAMESPACE/NAME


def resolve(scope: Scope, roots: Roots = Roots()) -> tuple[list, int]:
    """Namespaces in scope as NetnsInfo, and how many pids were unreadable."""
    if scope.netns is not None:
        return [netns_mod.by_name(scope.netns, run_netns=roots.run_netns,
                                  proc_root=roots.proc, runtime_root=roots.runtime)], 0
    if scope.netns_pid is not None:
        return [netns_mod.by_pid(scope.netns_pid, roots.proc, run_netns=roots.run_netns,
                                 runtime_root=roots.runtime)], 0
    if scope.container is not None or scope.pod is not None:
        return netns_mod.by_workload(scope.container, scope.pod, roots.proc, roots.run_netns,
                                     roots.runtime), 0
    if scope.all_netns:
        found = netns_mod.discover(roots.proc, roots.run_netns, roots.runtime)
        return list(found), found.denied
    return [netns_mod.current(roots.proc, run_netns=roots.run_netns,
                              runtime_root=roots.runtime)], 0


def take(scope: Scope = Scope(), *, states=None, info_states=frozenset(),
         cheap_info_states=frozenset(), roots: Roots = Roots(),
         diag_sockets: dict | None = None, on_namespace=None) -> Snapshot:
    """Read every namespace in ``scope``.

    ``states`` limits the dump in the kernel (None: all). ``info_states``
    are the states for which tcp_info is fetched as well (its 280 bytes a
    socket are too dear to ask for every socket of a large host).
    ``cheap_info_states`` get tcp_info too in namespaces small enough for
    one dump per family (:data:`ONE_DUMP_MAX`), where it costs nothing more.

    ``diag_sockets``: open sock_diag sockets by namespace inode, used and
    filled in here, kept open for the next call (a loop that dumps every
    second: a new socket's 4 MiB receive buffer faults in every page again,
    ~5 ms of system time a dump at 30k rows). The caller closes them, and
    must close those of namespaces gone: a socket holds its namespace.

    ``on_namespace(ns)`` is called on the calling thread with each
    namespace's NetnsSnapshot, in the snapshot's order, as soon as it is
    read (:func:`read_namespaces`), while the others are still being read.
    """
    targets, unreadable = resolve(scope, roots)
    return read_namespaces(targets, all_netns=scope.all_netns, unreadable=unreadable,
                           states=states, info_states=info_states,
                           cheap_info_states=cheap_info_states, roots=roots,
                           diag_sockets=diag_sockets, on_namespace=on_namespace)


def read_namespaces(targets, *, all_netns: bool, unreadable: int = 0, states=None,
                    info_states=frozenset(), cheap_info_states=frozenset(),
                    roots: Roots = Roots(), workers: int | None = None,
                    diag_sockets: dict | None = None, on_namespace=None) -> Snapshot:
    """:func:`take` of resolved ``targets`` (NetnsInfo), ``workers`` (default
    :data:`WORKERS`) of them at once; ``all_netns``: a namespace that
    vanishes or cannot be entered is skipped with a notice, not an error;
    ``diag_sockets``, ``on_namespace``: see :func:`take`."""
    wanted = ALL_STATES if states is None else frozenset(states)
    snap = Snapshot()
    if unreadable:
        snap.skipped.append((None, notice(
            "uninspected_processes_user" if os.geteuid() != 0 else "uninspected_processes",
            n=unreadable)))
    # tcp_max_orphans and tcp_mem exist in the init namespace only: read
    # them here, in the caller's thread, for the namespaces entered below.
    host = kernel_reader.read_global_sysctls(roots.proc)
    asked = (wanted, frozenset(info_states), frozenset(cheap_info_states), roots, host,
             diag_sockets)

    def one(info):
        # on a worker thread of map_in_netns that entered info's namespace
        # (the caller's own: on the calling thread)
        return _collect(info, *asked)

    def failed(info, exc):
        if isinstance(exc, FileNotFoundError):
            # The namespace went away between discovery and entering it
            # (its last process exited, `ip netns del`), or its path now
            # names another namespace (setns.enter).
            if not all_netns:
                raise netns_mod.NetnsNotFound(
                    f"network namespace {info.label()} vanished while being read") from exc
            return (info.ref, notice("vanished"))
        if isinstance(exc, PermissionError):
            # /proc/PID/net is the process's namespace whatever the
            # thread's, so this reads the same on any thread
            ns = _collect_from_pid(info, wanted, roots, exc)
            if ns is None:
                if not all_netns:  # the one namespace asked for: an error
                    raise exc
                return (info.ref, notice("enter_failed", error=exc.strerror or exc))
            return ns
        if isinstance(exc, OSError) and exc.errno == errno.EINVAL:
            # `ip netns del` unmounts /run/netns/NAME before it unlinks it:
            # in between, setns() on the left-over file gives EINVAL (seen
            # while other tests deleted their namespaces during a scan of
            # all of them). The namespace vanished, as above.
            if not all_netns:
                raise netns_mod.NetnsNotFound(
                    f"network namespace {info.label()} vanished while being read") from exc
            return (info.ref, notice("vanished"))
        raise exc

    # Namespaces in discovery order, up to WORKERS read at once, each
    # worker entering namespace after namespace (collect/setns.py).
    def arrived(info, ns):
        if not isinstance(ns, tuple):  # a tuple: skipped with a notice
            on_namespace(ns)

    outcomes = map_in_netns(one, targets, lambda info: None if info.current else info.path,
                            workers=WORKERS if workers is None else workers, on_error=failed,
                            on_result=arrived if on_namespace is not None else None,
                            inode_of=lambda info: info.inode)
    for ns in outcomes:
        if isinstance(ns, tuple):
            snap.skipped.append(ns)
        else:
            snap.namespaces.append(ns)
    return snap


def _collect(info, wanted, info_states, cheap_info_states, roots: Roots,
             host: dict, diag_sockets: dict | None = None) -> NetnsSnapshot:
    """Runs inside the namespace (the calling thread is in it)."""
    warnings: list[str] = []
    proc_net = roots.proc / "thread-self" / "net"
    # The kernel context first: its sockstat tells how large the namespace is.
    kctx = kernel_reader.read_kernel_context(roots.proc, proc_net=proc_net,
                                             global_sysctls=host)
    try:
        info_states = info_states & wanted
        size = kctx.sockstat.inuse + kctx.sockstat.tw if kctx.sockstat else None
        sock = _reused(diag_sockets, info.inode)
        if info_states and size is not None and size <= ONE_DUMP_MAX:
            table = _dump_once(wanted, info_states, (info_states | cheap_info_states) & wanted,
                               sock)
        else:
            table = _dump(wanted, info_states, sock)
        source = "netlink"
    except BaseException as exc:
        # a dump cut short may leave datagrams queued: never reuse that socket
        _discard(diag_sockets, info.inode)
        if not isinstance(exc, _diag_unavailable()):
            raise
        warnings.append(notice("sock_diag_unavailable", error=exc))
        table = _filter_states(procfs.read_sockets(proc_net), wanted)
        source = "procfs"
    return NetnsSnapshot(netns=info.ref, table=table, kernel=kctx, source=source,
                         taken_at=time.time(), monotonic=time.monotonic(),
                         pids=tuple(info.pids), warnings=tuple(warnings), current=info.current)


def _collect_from_pid(info, wanted, roots: Roots, exc) -> NetnsSnapshot | None:
    """Not allowed to enter: /proc/PID/net of a process in it still reads."""
    for pid in info.pids:
        proc_net = roots.proc / str(pid) / "net"
        try:
            table = _filter_states(procfs.read_sockets(proc_net), wanted)
        except OSError:
            continue
        kctx = KernelContext(missing=(kernel_reader.not_read(
            "sysctls_not_entered", why=exc.strerror or exc),))
        return NetnsSnapshot(netns=info.ref, table=table, kernel=kctx, source="procfs",
                             taken_at=time.time(), monotonic=time.monotonic(),
                             pids=tuple(info.pids), current=info.current,
                             warnings=(notice("read_via_pid", pid=pid),))
    return None


def _reused(sockets: dict | None, inode: int):
    """The open sock_diag socket of this namespace in ``sockets``, opened
    now (in the namespace: the calling thread is in it) if there is none;
    None without ``sockets``."""
    if sockets is None:
        return None
    sock = sockets.get(inode)
    if sock is None:
        from .netlink import dump as nl

        sock = sockets[inode] = nl.DiagSocket()
    return sock


def _discard(sockets: dict | None, inode: int) -> None:
    sock = None if sockets is None else sockets.pop(inode, None)
    if sock is not None:
        sock.close()


def _dump(wanted, info_states, sock=None) -> SocketTable:
    """The states in ``wanted``, with tcp_info for those in ``info_states``.

    Two dumps (each of both families, dump_both_into) when some states
    want tcp_info: asking it for
    every socket costs more than walking the hash table twice (1M sockets,
    30% in INFO states, Linux 6.18: 1.82 s against 1.73 s, both families,
    and tcp_info of 1M rows to decode and hold).  All four dumps go into
    one sink, so the table is built in place rather than concatenated.
    """
    from .netlink import codec

    plain = wanted - info_states
    with _opened(sock) as sock:
        sink = codec.RowSink(sock.capacity_hint, tcp_info=bool(info_states))
        for states, info in ((plain, False), (info_states, True)):
            if states:
                sock.dump_both_into(sink, state_mask(states), tcp_info=info)
        return sink.finish()


def _dump_once(wanted, info_states, keep_info_states, sock=None) -> SocketTable:
    """:func:`_dump`'s table from one dump per family with tcp_info for all.

    tcp_info is kept for ``keep_info_states`` only (the rest is zeroed as a
    dump without it leaves it), and rows are put in :func:`_dump`'s order,
    the plain states' dumps first: one walk of the hash lists sockets in the
    same order whatever the state mask (inet_diag_dump_icsk(): the
    listeners, then each bucket's chain), so a stable sort on (asked with
    tcp_info, family) gives the same rows in the same order.
    """
    import numpy as np

    from .netlink import codec

    with _opened(sock) as sock:
        sink = codec.RowSink(sock.capacity_hint, tcp_info=True)
        sock.dump_both_into(sink, state_mask(wanted), tcp_info=True)
        table = sink.finish()
    state = table.rows["state"]
    drop = ~member(state, [int(s) for s in keep_info_states])
    if drop.any():
        table.info.view(np.uint8).reshape(len(table), -1)[drop] = 0
    key = member(state, [int(s) for s in info_states]).astype(np.uint8) * 2
    key += table.rows["family"] == socket.AF_INET6
    if (key[1:] < key[:-1]).any():
        table = table.select(np.argsort(key, kind="stable"))
    return table


def _opened(sock):
    """``sock`` as a context that leaves it open, or a new socket closed
    after use."""
    from contextlib import nullcontext

    from .netlink import dump as nl

    return nl.DiagSocket() if sock is None else nullcontext(sock)


def _diag_unavailable():
    from .netlink.dump import DiagUnavailable
    return DiagUnavailable


def _filter_states(table: SocketTable, wanted) -> SocketTable:
    if wanted >= ALL_STATES:
        return table
    keep = member(table.rows["state"], [int(s) for s in wanted])
    return table.select(keep)
