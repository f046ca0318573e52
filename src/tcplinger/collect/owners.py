r"""Which processes hold given sockets: walk /proc/PID/fd for their inodes.

Every open socket is a file whose fd link reads ``socket:[INODE]``, the
inode sock_diag and /proc/net/tcp report.  Nothing maps an inode back to
its processes faster than reading every fd link (ss -p does the same), so:

- only the inodes asked for are matched (pre-built byte strings, one dict
  lookup per fd, no regex, no parsing of non-matching links); above
  WANTED_LINKS_MAX of them every socket link is parsed instead and the
  wanted kept by a sorted array (no Python object per wanted inode);
- one ``open`` of /proc/PID/fd, then ``readlinkat`` relative to it, which
  saves the kernel re-walking ``/proc/PID/fd`` for every fd;
- a large fd table is read by number (0, 1, 2... until as many fds as
  st_size counts were found) instead of being listed first: listing costs
  ~0.7 us per fd on top of ~2.9 us per readlink; a table with many holes
  is listed (collect/fdwalk.py);
- WALK_THREADS threads read different processes: readlink releases the GIL;
- the processes of the sockets' own namespaces can be read first
  (``first``), the others only when some socket still has no owner;
- threads share the fd table, and /proc lists only thread-group leaders, so
  each process is walked once (/proc/PID/task is never read);
- inode 0 (TIME_WAIT, orphans: no file refers to them) is never matched.

Measured on Linux 6.18 (tests/privileged/test_owners_live.py, a process
holding 19,990 sockets, CPU time of the walking thread): about 4 µs per fd
warm, of which ~3.3 µs is kernel time; a C loop of readlinkat over the
same fds takes 3.1 µs per fd.  The first walk after the fds were opened
costs 5-7 µs per fd (procfs instantiates a dentry per fd).  A walk of all of
/proc with 1.22 million open fds took 5.4 s of CPU (4.5 µs per fd).  With
the reading by number and bytes names: 902k fds of 47 processes (the 1M
bench population), 200k of them wanted, 3.3 s of CPU (0.5 s user), 1.9-3.1
s wall in two threads on 2 CPUs, against 4.8 s of CPU before.

The per-process details come from small files, parsed here without I/O:

>>> parse_cmdline(b"nginx: worker process\x00\x00")
'nginx: worker process'
>>> parse_cmdline(b"/usr/bin/python3\x00-m\x00http.server\x008080\x00")
'/usr/bin/python3 -m http.server 8080'
>>> parse_cmdline(b"sh\x00-c\x00sleep 1\nsleep 2\x00")
'sh -c sleep 1 sleep 2'
>>> parse_comm(b"nginx\n"), parse_comm(b"a\nb\x1b[2J\xff\n") == "a?b?[2J\ufffd"
('nginx', True)
>>> parse_status_uid("Name:\tsshd\nUmask:\t0022\nUid:\t0\t101\t0\t0\nGid:\t0\t0\t0\t0\n")
101
>>> parse_nofile_limits("Limit                     Soft Limit           Hard Limit           Units     \n"
...                     "Max open files            1024                 524288               files     \n")
(1024, 524288)
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np

from ..model.owner_map import OwnerMap
from ..model.socket import Owner
from ..model.table import distinct
from ..model.text import printable
from . import files
from .container import container_from_cgroup
from .fdwalk import Walk, socket_inode
from .roots import PROC

CMDLINE_MAX = 256  # characters kept of a command line (then "…")


class FdUsage(NamedTuple):
    open_fds: int
    soft_limit: int | None  # None: unlimited
    hard_limit: int | None


def parse_cmdline(raw: bytes, limit: int = CMDLINE_MAX) -> str:
    """/proc/PID/cmdline (NUL-separated argv) as one line, cut at ``limit``."""
    # one line for tables: newlines, tabs -> space
    text = printable(raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace"), " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_comm(raw: bytes) -> str:
    """/proc/PID/comm (the name and a newline) as one line of printable
    text.  A process names itself with any bytes but NUL (prctl(2)
    PR_SET_NAME, or a write to its comm file; up to 15): a newline, tab or
    escape sequence in it would split a table row or reach the terminal,
    so each unprintable character is shown as "?" (what ps(1) shows), and
    bytes that are not UTF-8 as U+FFFD (model/text.py)."""
    return printable((raw[:-1] if raw.endswith(b"\n") else raw).decode("utf-8", "replace"))


def parse_status_uid(text: str) -> int | None:
    """Effective uid from /proc/PID/status (``Uid: real effective saved fs``):
    the one ``ps -o user`` shows."""
    for line in text.splitlines():
        if line.startswith("Uid:"):
            fields = line.split()
            return int(fields[2]) if len(fields) > 2 else None
    return None


def parse_nofile_limits(text: str) -> tuple[int | None, int | None]:
    """(soft, hard) RLIMIT_NOFILE from /proc/PID/limits; None means unlimited."""
    for line in text.splitlines():
        if line.startswith("Max open files"):
            fields = line[len("Max open files"):].split()
            soft, hard = fields[0], fields[1]
            return (None if soft == "unlimited" else int(soft),
                    None if hard == "unlimited" else int(hard))
    return None, None


#: Up to this many wanted inodes the walk matches each fd link against a
#: dict of their links (one lookup a fd); above, it parses every socket
#: link and keeps the wanted inodes by a sorted array.  The dict and its
#: strings and ints cost ~200 bytes a wanted inode, which were not given
#: back: `ls --json --owners` of the 1M bench population wants 800k, and
#: its RSS went from 133 MB after the dump to 296-325 MB in the walk and
#: stayed at 258 MB for the JSON (01:35Z, 8 Dec); parsing costs ~0.45 us
#: more a fd, building the dict ~0.6 us a wanted inode (docs/performance.md).
WANTED_LINKS_MAX = 250_000


def find_owners(inodes: Iterable[int], proc_root: Path = PROC, *,
                pids: Iterable[int] | None = None,
                first: Iterable[int] | None = None) -> OwnerMap:
    """Owners of the sockets with these inodes, by walking /proc/*/fd.

    ``pids`` limits the walk to those processes (e.g. the ones known to be
    in the socket's namespace).  ``first`` are processes to walk before the
    others, usually those of the sockets' own namespaces: the others are
    walked only when some inode still has no owner afterwards (a socket
    created in one namespace and used from another, or closed since it was
    listed).  So processes in other namespaces count only when needed; a
    socket shared by processes of its own and of another namespace shows
    only the first kind then.  Processes or fds disappearing during the
    walk are skipped; see :class:`~tcplinger.model.owner_map.OwnerMap`
    for the counts.  ``inodes`` may be a numpy array.
    """
    keep = np.asarray(inodes if hasattr(inodes, "dtype") else list(inodes), np.uint64)
    keep = distinct(keep[keep != 0])
    if not len(keep):
        return OwnerMap()
    root = os.fspath(proc_root)
    if pids is None:
        try:
            pid_list = sorted(int(e) for e in os.listdir(root) if e.isdigit())
        except FileNotFoundError:
            pid_list = []
    else:
        pid_list = sorted({int(p) for p in pids})
    if first is None:
        rounds = [pid_list]
    else:
        preferred = {int(p) for p in first}
        rounds = [[p for p in pid_list if p in preferred],
                  [p for p in pid_list if p not in preferred]]

    if len(keep) <= WANTED_LINKS_MAX:
        walk = Walk(root, {b"socket:[%d]" % i: i for i in keep.tolist()}.get)
    else:
        walk = Walk(root, socket_inode, keep)
    for round_pids in rounds:
        if round_pids:
            walk.run(round_pids)
        if walk.found() == len(keep):
            break  # every socket has an owner: the other processes cannot add one

    walk.match = None  # 200k byte strings at 1M sockets: gone before the columns are made
    out = _columns(root, walk.hits)
    out.unreadable, out.vanished = walk.unreadable, walk.vanished
    out.pids_walked, out.fds_walked = walk.pids, walk.fds
    out.open_fds = walk.open_fds
    return out


@dataclass(frozen=True)
class Attribution:
    """What :meth:`OwnerPolicy.find` did: the owners it found (None when it
    did not walk) and, when it left the walk out for its cost, how many open
    files the walk would have read."""

    owners: OwnerMap | None
    skipped_files: int | None = None


@dataclass(frozen=True)
class OwnerPolicy:
    """Whether and where to walk /proc/*/fd for the owners of sockets: the
    one policy of every command (report, check, tune, exporter, ls, stats,
    kill, top, watch) and of the lab.

    Where: only the processes of the sockets' own namespaces when none of
    them is the caller's namespace and their processes are known (a socket's
    owner lives in its namespace but for sockets passed across; a walk of a
    busy host costs seconds, KERNEL-NOTES); otherwise every process, those
    of the namespaces first (``first`` of :func:`find_owners`: the others
    only while some socket has no owner).  ``also`` adds processes known to
    hold the sockets (``--pid``).

    Whether: ``walk`` True always, False never, None (automatic) only while
    the walk would read fewer than ``max_files`` open files: the host's
    (file-nr) for a walk of every process, the walked processes' own
    otherwise.  Inode 0 (TIME_WAIT, orphans) has no owner to find.

    >>> from types import SimpleNamespace as NS
    >>> sorted(OwnerPolicy().processes([NS(pids=(7, 8), current=False)]))
    [7, 8]
    >>> OwnerPolicy().processes([NS(pids=(7,), current=False), NS(pids=(1,), current=True)])
    >>> OwnerPolicy(walk=False).find({5}, []).owners is None
    True
    """

    walk: bool | None = None
    max_files: int = files.AUTO_OWNERS_MAX_FILES

    def processes(self, namespaces: Iterable) -> frozenset[int] | None:
        """The processes to walk (None: every one) for sockets of these
        namespaces (objects with ``pids`` and ``current``, such as
        model.snapshot.NetnsSnapshot)."""
        pids: set[int] = set()
        for ns in namespaces:
            if ns.current or not ns.pids:
                return None
            pids.update(ns.pids)
        return frozenset(pids)

    def left_out(self, namespaces: Iterable, proc_root: Path = PROC) -> int | None:
        """The open files a walk for sockets of ``namespaces`` would read,
        when the automatic mode leaves it out for them; else None. It
        depends on the namespaces only, so a caller can ask before it
        gathers the inodes (which costs more than this at 300k sockets)."""
        if self.walk is not None:
            return None
        pids = self.processes(namespaces)
        cost = files.open_files(proc_root) if pids is None \
            else files.open_files_of(pids, proc_root)
        return cost if cost is not None and cost >= self.max_files else None

    def find(self, inodes: Iterable[int], namespaces: Iterable, proc_root: Path = PROC, *,
             also: Iterable[int] = ()) -> Attribution:
        """Owners of ``inodes``, sockets of ``namespaces``, by this policy.

        ``inodes`` may be a numpy array: its Python ints are made only when
        the walk happens (a million of them in a set are ~60 MB and 0.1 s,
        for a walk that the cost check then leaves out)."""
        if self.walk is False:
            return Attribution(None)
        if hasattr(inodes, "tolist"):  # numpy: nothing per element before the cost check
            if not inodes.any():
                return Attribution(OwnerMap())
            wanted = None
        else:
            wanted = {int(i) for i in inodes if i}
            if not wanted:
                return Attribution(OwnerMap())
        namespaces = list(namespaces)
        pids = self.processes(namespaces)
        cost = self.left_out(namespaces, proc_root)
        if cost is not None:
            return Attribution(None, cost)
        if wanted is None:
            wanted = inodes  # find_owners makes its ints (no set of them here as well)
        if pids is not None:
            return Attribution(find_owners(wanted, proc_root, pids=pids | set(also)))
        first = {p for ns in namespaces for p in ns.pids}
        return Attribution(find_owners(wanted, proc_root, first=first))


def _columns(root: str, hits: dict) -> OwnerMap:
    """The walk's hits (pid -> int64 array of (fd, inode) pairs) as an
    OwnerMap: each inode's owners by pid, then fd; one Owner per process."""
    pids = sorted(hits)
    processes = [Owner(pid=pid, fd=-1, **_details(root, pid)) for pid in pids]
    if not pids:
        return OwnerMap()
    pairs = np.concatenate([np.frombuffer(hits[pid], np.int64) for pid in pids]).reshape(-1, 2)
    proc = np.repeat(np.arange(len(pids), dtype=np.int32), [len(hits[pid]) // 2 for pid in pids])
    order = np.lexsort((pairs[:, 0], proc))  # by pid (sorted above), then fd
    return OwnerMap(processes, proc[order], pairs[order, 0], pairs[order, 1])


def fd_usage(pid: int, proc_root: Path = PROC, open_fds: int | None = None) -> FdUsage:
    """Open fds of a process and its RLIMIT_NOFILE; ``open_fds`` when the
    caller counted them already (an owner walk's ``OwnerMap.open_fds``:
    listing a table of 5k fds again cost the report ~10 ms, issue 16).

    Raises FileNotFoundError when the process is gone, PermissionError when
    its fd directory is not readable.
    """
    base = f"{os.fspath(proc_root)}/{int(pid)}"
    # len(listdir), not st_size: st_size of /proc/PID/fd counts fds only
    # since Linux 6.2 ("proc: report open files as size in stat() for
    # /proc/pid/fd", fs/proc/fd.c proc_fd_getattr), and a recorded tree is
    # an ordinary directory.
    if open_fds is None:
        open_fds = len(os.listdir(f"{base}/fd"))
    soft, hard = parse_nofile_limits(_read(f"{base}/limits"))
    return FdUsage(open_fds, soft, hard)


def process_owner(pid: int, proc_root: Path = PROC) -> Owner | None:
    """A process by its details, without a socket (fd -1): one seen
    connecting by the tracepoint (collect/connects.py). None when gone."""
    root = os.fspath(proc_root)
    if not os.path.isdir(f"{root}/{int(pid)}"):
        return None
    return Owner(pid=int(pid), fd=-1, **_details(root, int(pid)))


_user_names: dict[int, str] = {}


def user_name(uid: int) -> str:
    """Login name of a uid, or the number when it has none (containers)."""
    name = _user_names.get(uid)
    if name is None:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        _user_names[uid] = name
    return name


def _read(path: str, limit: int = 65536) -> str:
    return _read_bytes(path, limit).decode("utf-8", "replace")


def _read_bytes(path: str, limit: int = 65536) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return b""


def _details(root: str, pid: int) -> dict:
    """comm, cmdline, uid, user, container of one owning process.

    Read after the fd walk; a process that exits in between keeps its
    pid and fd with empty details rather than being dropped.
    """
    base = f"{root}/{pid}"
    try:
        with open(f"{base}/cmdline", "rb") as f:
            cmdline = parse_cmdline(f.read(CMDLINE_MAX * 4))
    except OSError:
        cmdline = ""
    uid = parse_status_uid(_read(f"{base}/status"))
    return {
        "comm": parse_comm(_read_bytes(f"{base}/comm")),
        "cmdline": cmdline,
        "uid": -1 if uid is None else uid,
        "user": "" if uid is None else user_name(uid),
        "container": container_from_cgroup(_read(f"{base}/cgroup")),
    }
