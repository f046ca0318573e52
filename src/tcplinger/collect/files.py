"""Open file handles on the host, to decide whether walking /proc/*/fd is cheap."""

from __future__ import annotations

import os
from pathlib import Path


#: Walking /proc/*/fd costs ~4-5 us per open file (KERNEL-NOTES, measured
#: again for collect/owners.py): below this many open files on the host,
#: commands find owners without being asked (at most ~0.5 s).
AUTO_OWNERS_MAX_FILES = 100_000


def owners_are_cheap(proc_root: Path = Path("/proc")) -> tuple[bool, int | None]:
    """Whether walking every process's fds is cheap here, and the file count."""
    n = open_files(proc_root)
    return (n is not None and n < AUTO_OWNERS_MAX_FILES), n


def parse_file_nr(text: str) -> int:
    """Allocated file handles from /proc/sys/fs/file-nr.

    >>> parse_file_nr("10336\\t0\\t9223372036854775807\\n")
    10336
    """
    return int(text.split()[0])


def open_files(proc_root: Path = Path("/proc")) -> int | None:
    try:
        return parse_file_nr((proc_root / "sys/fs/file-nr").read_text())
    except (OSError, ValueError, IndexError):
        return None


def socket_inodes(pid: int, proc_root: Path = Path("/proc")) -> set[int]:
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
