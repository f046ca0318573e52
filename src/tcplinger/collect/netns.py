"""Find every network namespace on the host, name it, and say how to enter it.

Two places show namespaces (namespaces(7), ip-netns(8)):

- ``/proc/PID/ns/net`` of every process, a magic link whose text is
  ``net:[INODE]``; the inode number identifies the namespace.
- ``/run/netns/NAME``, files on which ``ip netns add`` bind-mounts a
  namespace so it lives without processes; ``stat().st_ino`` of such a file
  is the namespace inode, the same number the links show.

:func:`discover` merges both by inode, names each namespace from
``/run/netns`` and from the container its processes run in, and puts the
caller's own namespace first.  The link text parses without I/O:

>>> parse_ns_link("net:[4026531840]")
4026531840
>>> parse_ns_link("mnt:[4026531841]") is None
True

Non-root callers cannot read other users' ns links (EACCES: reading them is
a ptrace-read check, proc_ns_get_link() in fs/proc/namespaces.c); those
processes are skipped and counted, and :class:`NetnsList` carries the counts
so the CLI can say "could not see N processes' namespaces: not root".
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path

from ..model.socket import NetnsRef
from ..model.workload import Workload
from .container import ref_from_cgroup
from .roots import PROC, RUN_NETNS, RUNTIME_ROOT
from .runtimes import Resolver



class NetnsNotFound(LookupError):
    """No such named namespace or process; the message is one line for the user."""


@dataclass(frozen=True)
class NetnsInfo:
    inode: int
    name: str | None  # from /run/netns (the first name, sorted, if several)
    path: str  # opening it gives a namespace fd for setns()
    pids: tuple[int, ...]  # processes seen in it, ascending
    container: str | None  # Workload.label() of the container its processes run in
    current: bool  # the calling thread's own namespace
    workload: Workload | None = None  # that container or pod, named by its runtime

    @property
    def ref(self) -> NetnsRef:
        return NetnsRef(self.inode, self.name, self.container, self.workload)

    def label(self) -> str:
        return self.ref.label()


class NetnsList(list):
    """What :func:`discover` returns: a ``list[NetnsInfo]``, plus what it could
    not see.

    ``denied``: processes whose namespace link could not be read (EACCES,
    i.e. not root).  ``vanished``: processes that exited (or were zombies)
    between listing /proc and reading their link.  ``stale``: paths in
    /run/netns that are not namespaces (a file left by an interrupted
    ``ip netns add``, which creates the file before bind-mounting it;
    iproute2 ip/ipnetns.c netns_add()).
    """

    denied: int = 0
    vanished: int = 0
    stale: tuple[str, ...] = ()

    @property
    def skipped(self) -> int:
        return self.denied + self.vanished


def parse_ns_link(text: str) -> int | None:
    """Inode from the text of a /proc/PID/ns/net link, None if not a net link."""
    if text.startswith("net:[") and text.endswith("]"):
        digits = text[5:-1]
        if digits.isdigit():
            return int(digits)
    return None


@dataclass(frozen=True)
class ProcScan:
    """Namespace of every readable process under a procfs root."""

    inode_of: dict[int, int]  # pid -> namespace inode
    denied: int
    vanished: int


@dataclass(frozen=True)
class NamedScan:
    """The namespaces bind-mounted in a /run/netns-like directory."""

    inode_of: dict[str, int]  # name -> namespace inode
    stale: tuple[str, ...]  # entries that are not namespaces


def ns_inode(path: str | os.PathLike) -> int:
    """Namespace inode behind a /proc/PID/ns/net link (or a recorded copy).

    readlink gives ``net:[N]`` without touching the namespace; stat() is
    the fallback for files that are not links (recordings, bind mounts).
    Raises FileNotFoundError, ProcessLookupError, PermissionError.
    """
    try:
        inode = parse_ns_link(os.readlink(path))
    except OSError as e:
        if e.errno != errno.EINVAL:  # EINVAL: not a symlink
            raise
        inode = None
    return inode if inode is not None else os.stat(path).st_ino


def scan_proc(proc_root: Path = PROC) -> ProcScan:
    """readlink /proc/*/ns/net for every process (not threads: see below)."""
    # Only thread-group leaders are listed in /proc; a thread that setns()'d
    # on its own (as setns.run_in_netns does) is not seen here, and needs
    # not be: its namespace is held by someone else's mount or process.
    inode_of: dict[int, int] = {}
    denied = vanished = 0
    root = os.fspath(proc_root)
    try:
        entries = os.listdir(root)
    except FileNotFoundError:
        return ProcScan({}, 0, 0)
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            inode_of[int(entry)] = ns_inode(f"{root}/{entry}/ns/net")
        except (FileNotFoundError, ProcessLookupError):
            # exited, or a zombie: ns links of a task without nsproxy give
            # ENOENT (ns_get_path() in fs/nsfs.c)
            vanished += 1
        except PermissionError:
            denied += 1
    return ProcScan(inode_of, denied, vanished)


def scan_run_netns(run_netns: Path = RUN_NETNS, nsfs_dev: int | None = None) -> NamedScan:
    """stat() every entry of /run/netns.

    ``nsfs_dev`` is the st_dev of namespace files (all live on the one
    internal nsfs mount); when known, entries on another device are plain
    files, not namespaces, and are reported as stale.
    """
    inode_of: dict[str, int] = {}
    stale: list[str] = []
    try:
        names = sorted(os.listdir(run_netns))
    except (FileNotFoundError, NotADirectoryError):
        return NamedScan({}, ())
    for name in names:
        path = os.path.join(run_netns, name)
        try:
            st = os.stat(path)
        except FileNotFoundError:  # `ip netns del` meanwhile
            continue
        if not stat.S_ISREG(st.st_mode) or (nsfs_dev is not None and st.st_dev != nsfs_dev):
            stale.append(path)
            continue
        inode_of[name] = st.st_ino
    return NamedScan(inode_of, tuple(stale))


def own_ns_path(proc_root: Path = PROC) -> str:
    """Path of the calling thread's namespace link under ``proc_root``.

    /proc/thread-self, not /proc/self: setns() moves one thread, and
    /proc/self/ns/net shows the thread-group leader's namespace.  A
    recording without thread-self falls back to self.
    """
    for link in ("thread-self", "self"):
        try:
            return os.path.join(proc_root, os.readlink(os.path.join(proc_root, link)), "ns", "net")
        except FileNotFoundError:
            continue
    raise FileNotFoundError(f"neither thread-self nor self in {proc_root}")



def host_inode(proc_root: Path = PROC) -> int | None:
    """Inode of the host's (initial) network namespace: init's (pid 1), or
    kthreadd's (pid 2: kernel threads never leave init_net) where init's
    link is unreadable even to root (see :func:`_workload`); None when
    neither can be read (not root)."""
    for pid in (1, 2):
        try:
            return ns_inode(f"{os.fspath(proc_root)}/{pid}/ns/net")
        except OSError:
            continue
    return None

def _nsfs_dev(own_path: str) -> int | None:
    try:
        return os.stat(own_path).st_dev
    except OSError:  # a recording: the link does not resolve
        return None


def _read_cgroup(proc_root: Path, pid: int) -> str:
    try:
        with open(f"{os.fspath(proc_root)}/{pid}/cgroup", encoding="utf-8",
                  errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _workload(proc_root: Path, pids: list[int], resolver: Resolver) -> Workload | None:
    """The container or pod of a namespace, from the cgroups of its processes
    and the runtime's state (collect/runtimes.py).

    The host namespace is the one init (pid 1) or kthreadd (pid 2, kernel
    threads never leave init_net) is in; it gets init's label only, so a
    host-network container (`docker run --network host`) does not name the
    whole host.  pid 2 matters where pid 1's link is unreadable even to root
    (an init holding capabilities the caller lacks fails the ptrace check).
    Elsewhere the lowest pid that is in a container names it (usually the
    first process, e.g. a pod's pause).
    """
    candidates = [1] if pids and pids[0] in (1, 2) else pids
    for pid in candidates:
        ref = ref_from_cgroup(_read_cgroup(proc_root, pid))
        if ref is not None:
            return resolver.workload(ref)
    return None


def discover(proc_root: Path = PROC, run_netns: Path = RUN_NETNS,
             runtime_root: Path = RUNTIME_ROOT) -> NetnsList:
    """Every distinct network namespace, the caller's own first.

    Then named ones by name, then the others by lowest pid.  Returns a
    :class:`NetnsList` (a list of :class:`NetnsInfo` with skip counts).
    Containers are named from the runtimes' state under ``runtime_root``.
    """
    proc_root = Path(proc_root)
    resolver = Resolver(runtime_root)
    own_path = own_ns_path(proc_root)
    own_inode = ns_inode(own_path)
    procs = scan_proc(proc_root)
    named = scan_run_netns(run_netns, _nsfs_dev(own_path))

    pids_of: dict[int, list[int]] = {}
    for pid in sorted(procs.inode_of):
        pids_of.setdefault(procs.inode_of[pid], []).append(pid)
    names_of: dict[int, list[str]] = {}
    for name in sorted(named.inode_of):
        names_of.setdefault(named.inode_of[name], []).append(name)

    found: list[NetnsInfo] = []
    for inode in set(pids_of) | set(names_of) | {own_inode}:
        pids = pids_of.get(inode, [])
        names = names_of.get(inode)
        name = names[0] if names else None
        if name is not None:
            path = os.path.join(run_netns, name)
        elif inode == own_inode:
            path = own_path
        else:
            path = f"{os.fspath(proc_root)}/{pids[0]}/ns/net"
        workload = _workload(proc_root, pids, resolver)
        found.append(NetnsInfo(inode, name, path, tuple(pids),
                               workload.label() if workload else None, inode == own_inode,
                               workload))
    found.sort(key=lambda n: (not n.current, n.name is None, n.name or "",
                              n.pids[0] if n.pids else 0, n.inode))
    out = NetnsList(found)
    out.denied, out.vanished, out.stale = procs.denied, procs.vanished, named.stale
    return out


def current(proc_root: Path = PROC, run_netns: Path = RUN_NETNS,
            runtime_root: Path = RUNTIME_ROOT) -> NetnsInfo:
    """The calling thread's namespace."""
    return discover(proc_root, run_netns, runtime_root)[0]


def by_name(name: str, run_netns: Path = RUN_NETNS, proc_root: Path = PROC,
            runtime_root: Path = RUNTIME_ROOT) -> NetnsInfo:
    """The namespace bind-mounted at ``run_netns/name`` (``ip netns`` names)."""
    # a file name in /run/netns: no "/", no NUL, at most NAME_MAX (255) bytes
    # (a longer one made open(2) say ENAMETOOLONG, issue 13)
    if not name or "/" in name or "\0" in name or name in (".", "..") \
            or len(os.fsencode(name)) > 255:
        raise NetnsNotFound(f"invalid network namespace name {name!r}")
    path = os.path.join(run_netns, name)
    try:
        inode = os.stat(path).st_ino
    except FileNotFoundError:
        raise NetnsNotFound(f"no network namespace named {name!r} in {run_netns}") from None
    except PermissionError as e:
        raise PermissionError(e.errno, f"cannot read {path}: permission denied") from None
    for info in discover(proc_root, run_netns, runtime_root):
        if info.inode == inode and info.name is not None:
            if info.name != name:  # several names for one namespace
                info = replace(info, name=name, path=path)
            return info
    raise NetnsNotFound(f"{path} is not a network namespace (a file left by an "
                        "interrupted `ip netns add`?)")


def by_pid(pid: int, proc_root: Path = PROC, run_netns: Path = RUN_NETNS,
           runtime_root: Path = RUNTIME_ROOT) -> NetnsInfo:
    """The namespace process ``pid`` is in; ``path`` is that process's link
    unless the namespace has a name."""
    link = f"{os.fspath(proc_root)}/{int(pid)}/ns/net"
    try:
        inode = ns_inode(link)
    except (FileNotFoundError, ProcessLookupError):
        raise NetnsNotFound(f"no process {pid} in {proc_root}") from None
    except PermissionError as e:
        raise PermissionError(e.errno, f"cannot see the network namespace of pid {pid}: "
                              "permission denied (not root?)") from None
    for info in discover(proc_root, run_netns, runtime_root):
        if info.inode == inode:
            return info if info.name is not None else replace(info, path=link)
    # exited between the two reads
    raise NetnsNotFound(f"no process {pid} in {proc_root}")


def by_workload(container: str | None = None, pod: str | None = None, proc_root: Path = PROC,
                run_netns: Path = RUN_NETNS,
                runtime_root: Path = RUNTIME_ROOT) -> list[NetnsInfo]:
    """The namespaces of the containers named ``container`` (a name, a
    Kubernetes container name, or an id prefix) and/or in pod ``pod``
    (``NAMESPACE/NAME``); raises NetnsNotFound when none matches."""
    found = [info for info in discover(proc_root, run_netns, runtime_root)
             if info.workload is not None and not info.current
             and (container is None or info.workload.matches_container(container))
             and (pod is None or info.workload.matches_pod(pod))]
    if not found:
        what = " in ".join(x for x in (f"container {container!r}" if container else "",
                                      f"pod {pod!r}" if pod else "") if x)
        raise NetnsNotFound(f"no network namespace of {what} on this host")
    return found
