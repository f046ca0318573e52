"""Open file handles on the host, to decide whether walking /proc/*/fd is cheap."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .roots import PROC

#: Walking /proc/*/fd costs ~4-5 us per open file (KERNEL-NOTES, measured
#: again for collect/owners.py): below this many open files to read,
#: commands find owners without being asked (at most ~0.5 s).
AUTO_OWNERS_MAX_FILES = 100_000


def parse_file_nr(text: str) -> int:
    """Allocated file handles from /proc/sys/fs/file-nr.

    >>> parse_file_nr("10336\\t0\\t9223372036854775807\\n")
    10336
    """
    return int(text.split()[0])


def open_files(proc_root: Path = PROC) -> int | None:
    """Open files on the host (file-nr), None when it cannot be read."""
    try:
        return parse_file_nr((proc_root / "sys/fs/file-nr").read_text())
    except (OSError, ValueError, IndexError):
        return None


def open_files_of(pids: Iterable[int], proc_root: Path = PROC) -> int:
    """Open files of these processes: what walking only their fds reads.

    The fd count of a process is the st_size of /proc/PID/fd since Linux
    6.2 ("proc: report open files as size in stat() for /proc/pid/fd",
    fs/proc/fd.c proc_fd_getattr); before that (and in a recorded tree)
    st_size is 0 and the estimate does not hold a walk back.
    """
    total = 0
    for pid in pids:
        try:
            total += os.stat(f"{os.fspath(proc_root)}/{int(pid)}/fd").st_size
        except OSError:
            continue  # exited, or not ours to read: the walk skips it too
    return total


def socket_inodes(pid: int, proc_root: Path = PROC) -> set[int]:
    """Inodes of the sockets process ``pid`` holds (``socket:[N]`` fd links).

    Raises ProcessLookupError when there is no such process.
    """
    fd_dir = proc_root / str(pid) / "fd"
    try:
        names = os.listdir(fd_dir)
    except FileNotFoundError:
        raise ProcessLookupError(f"no process {pid}") from None
    out = set()
    for name in names:
        try:
            link = os.readlink(fd_dir / name)
        except OSError:  # closed meanwhile
            continue
        if link.startswith("socket:["):
            out.add(int(link[8:-1]))
    return out
