r"""Which processes hold given sockets: walk /proc/PID/fd for their inodes.

Every open socket is a file whose fd link reads ``socket:[INODE]``, the
inode sock_diag and /proc/net/tcp report.  Nothing maps an inode back to
its processes faster than reading every fd link (ss -p does the same), so:

- only the inodes asked for are matched (pre-built byte strings, one dict
  lookup per fd, no regex, no parsing of non-matching links);
- one ``open`` of /proc/PID/fd, then ``readlinkat`` relative to it, which
  saves the kernel re-walking ``/proc/PID/fd`` for every fd;
- a large fd table is read by number (0, 1, 2... until as many fds as
  st_size counts were found) instead of being listed first: listing costs
  ~0.7 us per fd on top of ~2.9 us per readlink; a table with many holes
  is listed (:func:`_read_fds`);
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
>>> parse_status_uid("Name:\tsshd\nUmask:\t0022\nUid:\t0\t101\t0\t0\nGid:\t0\t0\t0\t0\n")
101
>>> parse_nofile_limits("Limit                     Soft Limit           Hard Limit           Units     \n"
...                     "Max open files            1024                 524288               files     \n")
(1024, 524288)
"""

from __future__ import annotations

import gc
import operator
import os
import pwd
import threading
from pathlib import Path
from typing import Iterable, NamedTuple

from ..model.socket import Owner
from .container import container_from_cgroup

PROC = Path("/proc")

CMDLINE_MAX = 256  # characters kept of a command line (then "…")


class OwnerMap(dict):
    """What :func:`find_owners` returns: ``dict[int, tuple[Owner, ...]]``
    mapping each requested inode that has owners to them, sorted by
    (pid, fd), one :class:`Owner` per fd (like ``ss -p``).  Inodes without
    an owner are absent.  Also:

    ``unreadable``: processes whose fd directory could not be read
    (EACCES: other users' processes when not root).  ``vanished``: processes
    that exited during the walk.  ``pids_walked`` / ``fds_walked``: how much
    was read, for timing.
    """

    unreadable: int = 0
    vanished: int = 0
    pids_walked: int = 0
    fds_walked: int = 0


class FdUsage(NamedTuple):
    open_fds: int
    soft_limit: int | None  # None: unlimited
    hard_limit: int | None


def parse_cmdline(raw: bytes, limit: int = CMDLINE_MAX) -> str:
    """/proc/PID/cmdline (NUL-separated argv) as one line, cut at ``limit``."""
    text = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
    if not text.isprintable():  # one line for tables: newlines, tabs -> space
        text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    walk are skipped; see :class:`OwnerMap` for the counts.
    """
    wanted = {b"socket:[%d]" % i: i for i in inodes if i}
    out = OwnerMap()
    if not wanted:
        return out
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

    walk = _Walk(root, wanted)
    for round_pids in rounds:
        if round_pids:
            walk.run(round_pids)
        if len(walk.found_inodes) == len(wanted):
            break  # every socket has an owner: the other processes cannot add one

    found: dict[int, list[Owner]] = {}
    # Hundreds of thousands of Owners, lists and tuples, none in a cycle:
    # without the cyclic collector (which would run every 700 of them and
    # walk the young ones) this takes half the time.
    enabled = gc.isenabled()
    gc.disable()
    try:
        for pid in sorted(walk.hits):
            make = _owner_factory(pid, _details(root, pid))
            for fd, inode in sorted((int(name), inode) for name, inode in walk.hits[pid]):
                found.setdefault(inode, []).append(make(fd))
        out.update((inode, tuple(owners)) for inode, owners in found.items())
    finally:
        if enabled:
            gc.enable()
    out.unreadable, out.vanished = walk.unreadable, walk.vanished
    out.pids_walked, out.fds_walked = walk.pids, walk.fds
    return out


#: Threads reading fd links: readlink() releases the GIL and ~90% of its
#: cost is kernel time, so on 2 CPUs two threads walk 900k fds in 1.9 s
#: instead of 3.0 s (Linux 6.18, 47 processes of ~19k socket fds).
WALK_THREADS = max(1, min(4, os.cpu_count() or 1))
#: Processes with at least this many fds are read by fd number (0, 1, 2...)
#: instead of listing /proc/PID/fd first: the listing costs ~0.7 us per fd
#: on top of the ~2.9 us of each readlink (fs/proc/fd.c instantiates every
#: entry), and the lowest free number is what the kernel hands out, so fd
#: tables are dense.  Smaller ones are listed: few fds, little to save.
PROBE_MIN_FDS = 64
#: Probing stops, and the rest of the table is listed instead, after more
#: closed numbers than 1/PROBE_MISS_RATIO of the fd count: a miss costs as
#: much as a hit (~3 us), a listing ~0.7 us per open fd.  Gaps are normal
#: (closed connections leave holes until the numbers are reused); a table
#: that is mostly holes, or an st_size that is no count (a recorded tree,
#: a kernel before 6.2), ends up listed.
PROBE_MISS_RATIO = 8

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_fd_names: list[bytes] = []


def _names(n: int) -> list[bytes]:
    """``[b"0", b"1", ...]`` with at least ``n`` entries (shared, grows)."""
    if len(_fd_names) < n:
        _fd_names.extend(b"%d" % i for i in range(len(_fd_names), n))
    return _fd_names


class _Walk:
    """Reads the fd tables of processes, in WALK_THREADS threads."""

    def __init__(self, root: str, wanted: dict[bytes, int]):
        self.root = root
        self.wanted = wanted
        self.hits: dict[int, list[tuple[bytes, int]]] = {}  # pid -> [(fd name, inode)]
        self.found_inodes: set[int] = set()
        self.unreadable = self.vanished = self.fds = self.pids = 0

    def run(self, pids: list[int]) -> None:
        self.pids += len(pids)
        lock = threading.Lock()
        queue = iter(pids)
        results: list[tuple] = []
        errors: list[BaseException] = []

        def work() -> None:
            hits: dict[int, list[tuple[bytes, int]]] = {}
            unreadable = vanished = fds = 0
            try:
                while True:
                    with lock:
                        pid = next(queue, None)
                    if pid is None:
                        break
                    mine, n, status = self._one(pid)
                    fds += n
                    if status is _VANISHED:
                        vanished += 1
                    elif status is _UNREADABLE:
                        unreadable += 1
                    elif mine:
                        hits[pid] = mine
            except BaseException as exc:  # re-raised in the caller's thread
                errors.append(exc)
            results.append((hits, unreadable, vanished, fds))

        n_threads = min(WALK_THREADS, len(pids))
        threads = [threading.Thread(target=work, name=f"tcplinger-fd-walk-{i}", daemon=True)
                   for i in range(n_threads - 1)]
        for t in threads:
            t.start()
        work()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        for hits, unreadable, vanished, fds in results:
            self.hits.update(hits)
            for mine in hits.values():
                self.found_inodes.update(map(_second, mine))
            self.unreadable += unreadable
            self.vanished += vanished
            self.fds += fds

    def _one(self, pid: int) -> tuple[list[tuple[bytes, int]], int, object]:
        """(fd, inode) of the wanted sockets ``pid`` holds, fds read, status."""
        try:
            dfd = os.open(f"{self.root}/{pid}/fd", _DIR_FLAGS)
        except (FileNotFoundError, ProcessLookupError):
            return [], 0, _VANISHED
        except PermissionError:
            return [], 0, _UNREADABLE
        mine: list[tuple[bytes, int]] = []
        try:
            n = _read_fds(dfd, self.wanted.get, mine)
        except (FileNotFoundError, ProcessLookupError):
            return [], 0, _VANISHED  # listing a dead process's fd dir fails with ENOENT
        except PermissionError:
            # The fd dir can be listable (root passes the DAC check) while
            # each link is not: proc_fd_link() also wants ptrace read access
            # (fs/proc/fd.c), which root lacks on a process with
            # capabilities outside its own set.
            return [], 0, _UNREADABLE
        finally:
            os.close(dfd)
        return mine, n, _OK


_OK, _VANISHED, _UNREADABLE = object(), object(), object()
_second = operator.itemgetter(1)


def _read_fds(dfd: int, get, mine: list) -> int:
    """readlink every fd of the directory ``dfd``; append (fd name, inode)
    of the wanted ones to ``mine``.  Returns how many fds were read.

    st_size of /proc/PID/fd is the number of open fds since Linux 6.2
    (proc_fd_getattr(), fs/proc/fd.c); a large table is read by number until
    that many were found, the rest (if any) through a listing.  Names and
    links are bytes: no str encoding and decoding per fd (~0.25 us each).
    """
    readlink = os.readlink
    count = os.fstat(dfd).st_size
    seen = listed_from = 0
    if count >= PROBE_MIN_FDS:
        names = _names(count)
        absent = 0
        for name in names[:count]:  # all of them when the table has no holes
            try:
                inode = get(readlink(name, dir_fd=dfd))
            except FileNotFoundError:
                absent += 1  # not open (or the process is gone: the listing tells)
                continue
            except PermissionError:
                raise
            except OSError:  # not a link (EINVAL): a recorded tree
                continue
            if inode is not None:
                mine.append((name, inode))
        seen = count - absent
        fd = count
        budget = count // PROBE_MISS_RATIO - absent
        while seen < count and budget >= 0:  # the fds above the holes
            if fd >= len(names):
                names = _names(2 * fd)
            try:
                link = readlink(names[fd], dir_fd=dfd)
            except FileNotFoundError:
                budget -= 1
                fd += 1
                continue
            except PermissionError:
                raise
            except OSError:
                link = None
            seen += 1
            inode = get(link) if link is not None else None
            if inode is not None:
                mine.append((names[fd], inode))
            fd += 1
        if seen >= count:
            return seen
        listed_from = fd
    for name in os.listdir(dfd):
        if int(name) < listed_from:
            continue  # read above
        seen += 1
        raw = os.fsencode(name)
        try:
            inode = get(readlink(raw, dir_fd=dfd))
        except PermissionError:
            raise
        except OSError:  # fd closed meanwhile (ENOENT), not a link (EINVAL)
            continue
        if inode is not None:
            mine.append((raw, inode))
    return seen


def _owner_factory(pid: int, details: dict):
    """``make(fd)`` -> Owner(pid=pid, fd=fd, **details).

    A frozen dataclass's __init__ sets each of its 7 fields through
    object.__setattr__ (~2.7 us); copying one instance's __dict__ with
    another fd gives an equal object in ~0.6 us, which matters for the
    hundreds of thousands of sockets one server process can hold.
    """
    proto = Owner(pid=pid, fd=-1, **details).__dict__
    new, setattr_ = object.__new__, object.__setattr__

    def make(fd: int) -> Owner:
        owner = new(Owner)
        state = proto.copy()
        state["fd"] = fd
        setattr_(owner, "__dict__", state)
        return owner
    return make


def fd_usage(pid: int, proc_root: Path = PROC) -> FdUsage:
    """Open fds of a process and its RLIMIT_NOFILE.

    Raises FileNotFoundError when the process is gone, PermissionError when
    its fd directory is not readable.
    """
    base = f"{os.fspath(proc_root)}/{int(pid)}"
    # len(listdir), not st_size: st_size of /proc/PID/fd counts fds only
    # since Linux 6.2 ("proc: report open files as size in stat() for
    # /proc/pid/fd", fs/proc/fd.c proc_fd_getattr), and a recorded tree is
    # an ordinary directory.
    open_fds = len(os.listdir(f"{base}/fd"))
    soft, hard = parse_nofile_limits(_read(f"{base}/limits"))
    return FdUsage(open_fds, soft, hard)


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
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


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
        "comm": _read(f"{base}/comm").rstrip("\n"),
        "cmdline": cmdline,
        "uid": -1 if uid is None else uid,
        "user": "" if uid is None else user_name(uid),
        "container": container_from_cgroup(_read(f"{base}/cgroup")),
    }
