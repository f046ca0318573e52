"""The namespace toolkit: run a function inside another network namespace,
or inside a new private one, on a thread of its own; or a function over
many namespaces on a few threads (:func:`map_in_netns`).

setns(2) with CLONE_NEWNET moves only the calling thread (a thread's
namespaces live in its own ``task->nsproxy``; kernel/nsproxy.c).  So
:func:`run_in_netns` starts a dedicated worker thread, enters the namespace
there, runs ``fn`` and hands back its result or exception.  The worker then
exits, taking its namespace reference with it: there is nothing to switch
back, and the caller's thread never moves.

Checked on Linux 6.18 (tests/privileged/test_netns_enter.py), inside ``fn``:

- a socket created there lives in the target namespace (SIOCGSKNS on it
  gives the target's inode) and stays there after ``fn`` returns: it can be
  handed back and used from any thread.  This is how a sock_diag netlink
  socket for another namespace is made.
- ``/proc/thread-self/net/tcp`` shows the target's sockets, but
  ``/proc/self/net/tcp`` and ``/proc/net/tcp`` (a link to self/net) show the
  namespace of the thread-group *leader*, i.e. the caller's: procfs readers
  run under this must read thread-self (``/proc/thread-self`` exists since
  Linux 3.17).
- ``/proc/sys/net/...`` opened there shows the target's per-namespace sysctl
  values (the sysctl table is chosen from ``current->nsproxy->net_ns`` at
  open time, net/sysctl_net.c); a file opened before keeps its namespace.
- child processes started there (subprocess) and threads started there are
  in the target namespace: fork/clone copy the calling thread's nsproxy.
- afterwards the caller's ``/proc/thread-self/ns/net`` is unchanged.

Entering needs CAP_SYS_ADMIN over the namespace's user namespace (EPERM
otherwise); a path that is not a network namespace gives EINVAL.

:func:`run_in_new_netns` does the same in a namespace made for the call:
``unshare(CLONE_NEWNET)`` on the worker thread (it too moves only that
thread, kernel/nsproxy.c), loopback brought up. The namespace lives as long
as something holds it: the thread, its sockets, a bind mount. Nothing else
in tcplinger calls setns(2) or unshare(2).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar

from .netns import own_ns_path
from .roots import PROC

CLONE_NEWNET = 0x40000000  # include/uapi/linux/sched.h
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1  # linux/sockios.h, linux/if.h
_IFREQ = struct.Struct("16sH14x")  # struct ifreq: name, ifr_flags, padding to 32 bytes

T = TypeVar("T")

_LIBC: ctypes.CDLL | None = None


class NewNetnsUnavailable(OSError):
    """unshare(CLONE_NEWNET) failed (EPERM without CAP_SYS_ADMIN): no
    private namespace could be made; ``fn`` did not run."""


def _libc() -> ctypes.CDLL:
    # os.setns/os.unshare arrived in Python 3.12; this package supports 3.10+.
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def enter(path: str | os.PathLike, inode: int | None = None) -> None:
    """Move the calling thread into the network namespace at ``path``;
    with ``inode``, only if that is still the namespace there (else
    FileNotFoundError, as for a path gone).

    Only for a thread of its own that then ends (:func:`run_on_thread`), or
    a forked child's only thread: the thread does not come back.

    Why ``inode``: a path names a namespace only while it lasts. Between
    listing namespaces and entering one, ``ip netns del NAME; ip netns add
    NAME`` puts another namespace under the name, and a /proc/PID/ns/net
    whose process exited can belong to a new process of the same pid in
    any namespace (the host's); its sockets would be reported as the
    listed namespace's. The check is on the fd that setns(2) then uses.
    """
    path = os.fspath(path)
    # Opened here, not in the caller: an interrupted join() in the caller
    # can then never close an fd this thread still uses.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if inode is not None and os.fstat(fd).st_ino != inode:
            raise FileNotFoundError(errno.ENOENT, f"network namespace {path} is no longer "
                                    f"net:[{inode}] (deleted, its name or pid reused)", path)
        if _libc().setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            reason = {1: "permission denied (needs CAP_SYS_ADMIN, i.e. root)",
                      22: "not a network namespace"}.get(err, os.strerror(err))
            raise OSError(err, f"cannot enter network namespace {path}: {reason}")
    finally:
        os.close(fd)


def run_on_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on a new thread; its result, or its exception
    raised in the caller. Whatever namespace the thread enters ends with it."""
    outcome: dict[str, Any] = {}

    def worker() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            outcome["error"] = e

    thread = threading.Thread(target=worker, name=f"tcplinger {getattr(fn, '__name__', fn)}",
                              daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def is_current(path: str | os.PathLike, proc_root: Path = PROC) -> bool:
    """True when ``path`` is the calling thread's own network namespace
    (the namespace file netns.own_ns_path names: discovery's ``current``
    comes from the same link)."""
    target = os.stat(path)
    own = os.stat(own_ns_path(proc_root))
    return (target.st_dev, target.st_ino) == (own.st_dev, own.st_ino)


def run_in_netns(path: str | os.PathLike, fn: Callable[..., T], /,
                 *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` run inside the network namespace at ``path``.

    ``path`` is anything setns accepts: /run/netns/NAME, /proc/PID/ns/net.
    Returns fn's result or raises its exception (with its traceback) in the
    caller; errors entering raise OSError/PermissionError.  When ``path`` is
    the caller's own namespace, fn runs directly on the caller's thread.
    """
    path = os.fspath(path)
    if is_current(path):  # also raises FileNotFoundError early
        return fn(*args, **kwargs)

    def inside() -> T:
        enter(path)
        return fn(*args, **kwargs)

    return run_on_thread(inside)


def map_in_netns(fn: Callable[[Any], T], items, path_of: Callable[[Any], str | None], *,
                 workers: int, on_error: Callable[[Any, BaseException], T] | None = None,
                 on_result: Callable[[Any, T], None] | None = None,
                 inode_of: Callable[[Any], int | None] | None = None) -> list[T]:
    """``[fn(item) for item in items]``, each call inside the network
    namespace at ``path_of(item)``, up to ``workers`` at once; with
    ``inode_of``, only while that namespace is still ``inode_of(item)``
    (:func:`enter`; else FileNotFoundError, to ``on_error``).

    Each worker thread enters namespace after namespace (setns(2) moves a
    thread that has already moved, given CAP_SYS_ADMIN; /proc/thread-self
    and /proc/sys then show the namespace entered last: checked by
    tests/privileged/test_netns_map.py) and ends with the call, so no
    thread comes back into use. Items whose ``path_of`` is None run on the
    calling thread, in its own namespace, while the workers run the rest.
    What the calls do in the kernel (dumps in recvmsg) releases the GIL, so
    the workers overlap there. An exception entering or from ``fn`` goes to
    ``on_error(item, exc)`` (on that worker thread: its namespace is then
    the target's or the one before; it must read nothing that depends on
    it), whose result stands for the item's; without ``on_error``, or when
    it raises, the first such exception in item order is raised here once
    every call is done (a KeyboardInterrupt on the calling thread at once).
    Results come in the order of ``items``.

    ``on_result(item, result)`` is called on the calling thread for each
    item whose call (or ``on_error``) gave a result, in the order of
    ``items``, as soon as that item and those before it are done, while
    the workers read the next ones: the caller's work on a namespace
    overlaps the kernel's walks of the namespaces after it. An exception
    from it is raised once every call is done.
    """
    items = list(items)
    paths = [path_of(item) for item in items]
    inodes = [None if inode_of is None else inode_of(item) for item in items]
    results: list[Any] = [None] * len(items)
    errors: dict[int, BaseException] = {}

    def call(i: int) -> None:
        try:
            if paths[i] is not None:
                enter(paths[i], inodes[i])
            results[i] = fn(items[i])
        except Exception as exc:  # noqa: BLE001 - handed to on_error or the caller
            if on_error is None:
                raise
            results[i] = on_error(items[i], exc)

    foreign = iter([i for i, p in enumerate(paths) if p is not None])
    lock = threading.Lock()
    # done[i] is set once item i has a result or an error (the calling
    # thread's own items: before it hands any result on)
    done = [threading.Event() if p is not None else None for p in paths]

    def worker() -> None:
        while True:
            with lock:
                i = next(foreign, None)
            if i is None:
                return
            try:
                call(i)
            except BaseException as exc:  # noqa: BLE001 - raised in the caller
                errors[i] = exc
            finally:
                done[i].set()

    n = min(workers, sum(p is not None for p in paths))
    threads = [threading.Thread(target=worker, name="tcplinger netns", daemon=True)
               for _ in range(n)]
    for thread in threads:
        thread.start()
    for i, path in enumerate(paths):
        if path is None:
            try:
                call(i)
            except Exception as exc:  # noqa: BLE001 - in item order, below
                errors[i] = exc
    handed: BaseException | None = None
    if on_result is not None:
        for i, event in enumerate(done):
            if event is not None:
                event.wait()
            if i in errors:
                continue
            try:
                on_result(items[i], results[i])
            except Exception as exc:  # noqa: BLE001 - raised once the workers are done
                handed = exc
                break
    for thread in threads:
        thread.join()
    if errors:
        raise errors[min(errors)]
    if handed is not None:
        raise handed
    return results


def run_in_new_netns(fn: Callable[..., T], /, *args: Any, loopback: bool = True,
                     **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` inside a new network namespace of its own.

    The namespace is made on the worker thread (``unshare(CLONE_NEWNET)``),
    so it starts from the caller's thread's namespace (its
    ``tcp_child_ehash_entries`` applies, net/ipv4/tcp_ipv4.c) and
    disappears with the thread and fn's sockets unless fn pins it (a bind
    mount). ``loopback`` brings ``lo`` up first (a new namespace's is down).
    Raises :class:`NewNetnsUnavailable` when the namespace cannot be made.
    """
    def inside() -> T:
        unshare()
        if loopback:
            loopback_up()
        return fn(*args, **kwargs)

    return run_on_thread(inside)


def unshare() -> None:
    """Move the calling thread into a new network namespace (unshare(2)):
    a thread of its own (:func:`run_in_new_netns`), or a forked child's
    only thread. Raises :class:`NewNetnsUnavailable`."""
    if _libc().unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NewNetnsUnavailable(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")


def loopback_up() -> None:
    """``ip link set lo up`` in the calling thread's namespace (SIOCSIFFLAGS)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        got = fcntl.ioctl(s, SIOCGIFFLAGS, _IFREQ.pack(b"lo", 0))
        flags = _IFREQ.unpack(got)[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | IFF_UP))
    finally:
        s.close()
