r"""Read the fd tables of processes for the links of given socket inodes:
the walk behind :func:`tcplinger.collect.owners.find_owners`.

Every open socket is a file whose fd link reads ``socket:[INODE]``.  The
walk matches only the inodes asked for (pre-built byte strings, one dict
lookup per fd), opens /proc/PID/fd once and ``readlinkat``s relative to it,
reads a large table by number rather than listing it first, and reads
different processes in WALK_THREADS threads (readlink releases the GIL).
The measurements behind each choice are in collect/owners.py's docstring
and next to each constant below.
"""

from __future__ import annotations

import os
import threading
from array import array

import numpy as np

from ..model.table import distinct

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


def socket_inode(link: bytes) -> int | None:
    """The inode of any socket's fd link, None for other files: the match
    of a walk for too many inodes to hold as links (:class:`Walk` ``keep``).

    >>> socket_inode(b"socket:[4026531993]"), socket_inode(b"pipe:[77]"), socket_inode(b"socket:[]")
    (4026531993, None, None)
    """
    if link.startswith(b"socket:["):
        try:
            return int(link[8:-1])
        except ValueError:  # not a kernel's link: a recorded tree
            return None
    return None


class Walk:
    """Reads the fd tables of processes, in WALK_THREADS threads.

    ``match`` maps an fd link (bytes) to the inode to keep, or None: the
    ``get`` of a dict of the wanted links (``b"socket:[INODE]"`` -> INODE,
    one lookup a fd), or :func:`socket_inode` with ``keep``, the wanted
    inodes sorted (uint64): every socket's inode is parsed (~0.45 us more a
    fd than the lookup) and a process's hits not in ``keep`` dropped after
    its table is read, so that nothing per wanted inode is a Python object
    (collect/owners.WANTED_LINKS_MAX).
    """

    def __init__(self, root: str, match, keep: np.ndarray | None = None):
        self.root = root
        self.match = match
        self.keep = keep
        #: pid -> its hits as an int64 array of (fd, inode) pairs: no Python
        #: object per socket found (200k of them at 1M sockets)
        self.hits: dict[int, array] = {}
        #: pid -> fds read, for the processes with hits (their open fds:
        #: the report's fd usage needs no second listing, issue 16)
        self.open_fds: dict[int, int] = {}
        self.unreadable = self.vanished = self.fds = self.pids = 0

    def run(self, pids: list[int]) -> None:
        self.pids += len(pids)
        lock = threading.Lock()
        queue = iter(pids)
        results: list[tuple] = []
        errors: list[BaseException] = []

        def work() -> None:
            hits: dict[int, array] = {}
            open_fds: dict[int, int] = {}
            unreadable = vanished = fds = 0
            try:
                while True:
                    with lock:
                        pid = next(queue, None)
                    if pid is None:
                        break
                    mine, n, status = self._read_process(pid)
                    fds += n
                    if status is _VANISHED:
                        vanished += 1
                    elif status is _UNREADABLE:
                        unreadable += 1
                    elif mine:
                        hits[pid] = mine
                        open_fds[pid] = n
            except BaseException as exc:  # re-raised in the caller's thread
                errors.append(exc)
            results.append((hits, open_fds, unreadable, vanished, fds))

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
        for hits, open_fds, unreadable, vanished, fds in results:
            self.hits.update(hits)
            self.open_fds.update(open_fds)
            self.unreadable += unreadable
            self.vanished += vanished
            self.fds += fds

    def found(self) -> int:
        """How many of the wanted inodes were found so far."""
        if not self.hits:
            return 0
        pairs = np.concatenate([np.frombuffer(h, np.int64) for h in self.hits.values()])
        # distinct, not np.unique: its hash path imports numpy.ma (~15 ms
        # of CPU at every `--owners` start, issue 16)
        return len(distinct(pairs[1::2]))

    def _read_process(self, pid: int) -> tuple[array, int, object]:
        """(fd, inode) pairs of the wanted sockets ``pid`` holds, fds read, status."""
        try:
            dfd = os.open(f"{self.root}/{pid}/fd", _DIR_FLAGS)
        except (FileNotFoundError, ProcessLookupError):
            return array("q"), 0, _VANISHED
        except PermissionError:
            return array("q"), 0, _UNREADABLE
        mine = array("q")
        try:
            n = _read_fds(dfd, self.match, mine)
        except (FileNotFoundError, ProcessLookupError):
            return array("q"), 0, _VANISHED  # listing a dead process's fd dir fails with ENOENT
        except PermissionError:
            # The fd dir can be listable (root passes the DAC check) while
            # each link is not: proc_fd_link() also wants ptrace read access
            # (fs/proc/fd.c), which root lacks on a process with
            # capabilities outside its own set.
            return array("q"), 0, _UNREADABLE
        finally:
            os.close(dfd)
        if self.keep is not None and mine:
            mine = _kept(mine, self.keep)
        return mine, n, _OK


def _kept(pairs: array, keep: np.ndarray) -> array:
    """The (fd, inode) pairs whose inode is in ``keep`` (sorted).

    >>> _kept(array("q", [3, 10, 4, 11, 5, 12]), np.array([10, 12], np.uint64)).tolist()
    [3, 10, 5, 12]
    """
    both = np.frombuffer(pairs, np.int64).reshape(-1, 2)
    inode = both[:, 1].astype(np.uint64)
    at = np.minimum(np.searchsorted(keep, inode), len(keep) - 1)
    out = array("q")
    out.frombytes(both[keep[at] == inode].tobytes())
    return out


_OK, _VANISHED, _UNREADABLE = object(), object(), object()


def _read_fds(dfd: int, get, mine: array) -> int:
    """readlink every fd of the directory ``dfd``; append fd and inode of
    the wanted ones to ``mine`` (an int64 array).  Returns how many fds
    were read.

    st_size of /proc/PID/fd is the number of open fds since Linux 6.2
    (proc_fd_getattr(), fs/proc/fd.c); a large table is read by number until
    that many were found, the rest (if any) through a listing.  Names and
    links are bytes: no str encoding and decoding per fd (~0.25 us each).
    """
    readlink = os.readlink
    add = mine.append
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
                add(int(name))
                add(inode)
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
                add(fd)
                add(inode)
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
            add(int(name))
            add(inode)
    return seen
