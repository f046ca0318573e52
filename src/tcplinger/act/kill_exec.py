"""End a plan's targets with SOCK_DESTROY, each in its own namespace, and
check afterwards what really ended.

A sock_diag socket answers for the namespace it was created in
(collect/netlink/dump.py), so each namespace's targets are destroyed from a
worker thread that entered it (collect/setns.run_in_netns). Every request
carries the socket's cookie: a 4-tuple reused by a new connection since
the plan was made answers ENOENT and the new connection is not touched.

After each destroy the same 4-tuple and cookie are looked up again: a
socket the kernel answered 0 for but still lists is reported as
``still_present`` (kernels before bac76cf89816 did that to orphans).
"""

from __future__ import annotations

import enum
import errno as errno_mod
import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..collect.owners import fd_usage
from ..collect.setns import run_in_netns
from .kill_plan import KillPlan, Target


class Outcome(str, enum.Enum):
    ENDED = "ended"
    ALREADY_GONE = "already_gone"  # ENOENT: closed or replaced since the plan
    NOT_PERMITTED = "not_permitted"  # EPERM/EACCES (CAP_NET_ADMIN), or cannot enter
    UNSUPPORTED = "unsupported"  # EOPNOTSUPP: this kernel cannot end this kind
    STILL_PRESENT = "still_present"  # answered 0, still listed
    FAILED = "failed"  # anything else


@dataclass(frozen=True)
class Result:
    target: Target
    outcome: Outcome
    errno: int | None = None

    def to_json(self) -> dict:
        s = self.target.socket
        return {"cookie": s.cookie, "state": s.state_name,
                "local": s.local.to_json(), "remote": s.remote.to_json(),
                "netns": s.netns.to_json() if s.netns else None,
                "result": self.outcome.value, "errno": self.errno,
                "error": errno_mod.errorcode.get(self.errno) if self.errno else None}


def outcome_of(err: int, still_listed: bool) -> Outcome:
    """Map a destroy answer and the lookup after it to an outcome.

    >>> outcome_of(0, False).value, outcome_of(0, True).value, outcome_of(2, False).value
    ('ended', 'still_present', 'already_gone')
    >>> outcome_of(1, True).value, outcome_of(95, True).value, outcome_of(22, True).value
    ('not_permitted', 'unsupported', 'failed')
    """
    if err == 0:
        return Outcome.STILL_PRESENT if still_listed else Outcome.ENDED
    if err in (errno_mod.ENOENT, errno_mod.ESTALE):
        return Outcome.ALREADY_GONE
    if err in (errno_mod.EPERM, errno_mod.EACCES):
        return Outcome.NOT_PERMITTED
    if err == errno_mod.EOPNOTSUPP:
        return Outcome.UNSUPPORTED
    return Outcome.FAILED


@dataclass(frozen=True)
class NetnsPath:
    """Where to enter a namespace: ``path`` for setns, ``current`` when it
    is the caller's own."""

    path: str
    current: bool


def execute(plan: KillPlan, paths: Mapping[int, NetnsPath], *,
            on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Destroy every target of ``plan``; one :class:`Result` per target, in order.

    ``paths`` maps a namespace inode to how to enter it. ``on_result`` is
    called as each result is known (progress, audit).
    """
    groups: dict[int, list[Target]] = {}
    for t in plan.targets:
        groups.setdefault(t.socket.netns.inode if t.socket.netns else 0, []).append(t)
    results: list[Result] = []
    for inode, targets in groups.items():
        where = paths.get(inode)
        if where is None:  # the namespace went away since the plan: so did its sockets
            got = [Result(t, Outcome.ALREADY_GONE, errno_mod.ENOENT) for t in targets]
        else:
            try:
                if where.current:
                    got = _destroy_all(targets)
                else:
                    got = run_in_netns(where.path, _destroy_all, targets)
            except PermissionError as exc:
                got = [Result(t, Outcome.NOT_PERMITTED, exc.errno or errno_mod.EPERM)
                       for t in targets]
            except FileNotFoundError as exc:  # the namespace is gone
                got = [Result(t, Outcome.ALREADY_GONE, exc.errno) for t in targets]
        for r in got:
            results.append(r)
            if on_result is not None:
                on_result(r)
    return results


def _destroy_all(targets: Sequence[Target]) -> list[Result]:
    """Runs inside the targets' namespace."""
    from ..collect.netlink.destroy import destroy
    from ..collect.netlink.dump import DiagSocket, DiagUnavailable, lookup

    try:
        diag = DiagSocket(bufsize=64 << 10, rcvbuf=1 << 20)
    except DiagUnavailable as exc:
        # No sock_diag here (no module, or not permitted): nothing was tried.
        err = exc.errno or errno_mod.EOPNOTSUPP
        kind = Outcome.NOT_PERMITTED if err in (errno_mod.EPERM, errno_mod.EACCES) \
            else Outcome.UNSUPPORTED
        return [Result(t, kind, err) for t in targets]
    out = []
    try:
        for t in targets:
            s = t.socket
            fam = socket.AF_INET6 if s.family == socket.AF_INET6 else socket.AF_INET
            ends = (fam, s.local.address, s.local.port, s.remote.address, s.remote.port)
            err = destroy(diag, *ends, s.cookie)
            still = False
            if err == 0:
                still = len(lookup(*ends, s.cookie, sock=diag)) > 0
            out.append(Result(t, outcome_of(err, still), err))
    finally:
        diag.close()
    return out


def summary(results: Sequence[Result]) -> dict[str, int]:
    """Counts per outcome (every outcome present, zeros included)."""
    out = {o.value: 0 for o in Outcome}
    for r in results:
        out[r.outcome.value] += 1
    return out


def describe_errno(err: int | None) -> str:
    """``ECONNABORTED (Software caused connection abort)`` style text.

    >>> describe_errno(1)
    'EPERM (Operation not permitted)'
    """
    if not err:
        return ""
    return f"{errno_mod.errorcode.get(err, err)} ({os.strerror(err)})"


# ---- what ending a socket does not free: the owner's file descriptor -------------

@dataclass(frozen=True)
class OwnerFds:
    """Open files of a process owning targets, measured before and after.

    SOCK_DESTROY ends the connection (tcp_abort() in net/ipv4/tcp.c: the
    socket goes to CLOSE, its ports and buffers are freed, the peer gets a
    RST) but not the ``struct file`` the process holds: the fd stays in its
    table until it calls close() or exits (close(2)), so the open-file
    count, and the pressure on RLIMIT_NOFILE, do not move.
    """

    pid: int
    comm: str
    sockets: int  # targets this process holds
    before: int | None  # open fds; None when unreadable
    after: int | None = None
    limit: int | None = None  # RLIMIT_NOFILE soft limit

    def to_json(self) -> dict:
        return {"pid": self.pid, "comm": self.comm, "sockets": self.sockets,
                "fds_before": self.before, "fds_after": self.after, "nofile_limit": self.limit}


def _fds(pid: int, proc_root: Path) -> tuple[int | None, int | None]:
    try:
        usage = fd_usage(pid, proc_root)
    except OSError:  # gone, or not ours to read
        return None, None
    return usage.open_fds, usage.soft_limit


def owner_fds(plan: KillPlan, proc_root: Path = Path("/proc")) -> list[OwnerFds]:
    """The open-file count of every process holding a target, now."""
    held: dict[int, list] = {}
    for t in plan.targets:
        for o in t.socket.owners:
            held.setdefault(o.pid, []).append(o)
    out = []
    for pid in sorted(held):
        before, limit = _fds(pid, proc_root)
        out.append(OwnerFds(pid, held[pid][0].comm, len(held[pid]), before, None, limit))
    return out


def remeasure(counts: Sequence[OwnerFds], proc_root: Path = Path("/proc")) -> list[OwnerFds]:
    """The same processes' counts again (after the destroy)."""
    return [replace(c, after=_fds(c.pid, proc_root)[0]) for c in counts]
