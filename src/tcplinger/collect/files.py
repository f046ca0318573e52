"""Open file handles on the host, to decide whether walking /proc/*/fd is cheap."""

from __future__ import annotations

import os
from pathlib import Path


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
