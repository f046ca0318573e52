"""Run a function inside another network namespace, on a thread of its own.

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
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar

from .netns import own_ns_path
from .roots import PROC

CLONE_NEWNET = 0x40000000  # include/uapi/linux/sched.h

T = TypeVar("T")

_libc: ctypes.CDLL | None = None


def _setns(fd: int, path: str) -> None:
    # os.setns arrived in Python 3.12; this package supports 3.10+.
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        reason = {1: "permission denied (needs CAP_SYS_ADMIN, i.e. root)",
                  22: "not a network namespace"}.get(err, os.strerror(err))
        raise OSError(err, f"cannot enter network namespace {path}: {reason}")


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

    outcome: dict[str, Any] = {}

    def worker() -> None:
        try:
            # Opened here, not in the caller: an interrupted join() in the
            # caller can then never close an fd this thread still uses.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd, path)
            finally:
                os.close(fd)
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            outcome["error"] = e

    thread = threading.Thread(target=worker, name=f"netns {path}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
