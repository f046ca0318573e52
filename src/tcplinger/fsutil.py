"""Writing files so that a reader never sees half of one: the one atomic
writer (check's counters, tune's snippet and state file, the exporter's
textfile)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(target: Path, data: bytes, *, mode: int = 0o644) -> Path:
    """Write ``data`` to a temporary file beside ``target``, fsync it and
    rename it over ``target`` (rename(2) is atomic within a filesystem).

    The temporary name is unique (mkstemp: O_EXCL, random), so two writers
    never share one, and it is removed on every failure, interrupts
    included. ``mode`` is set explicitly: mkstemp makes 0600 files, which
    a reader running as another user (node_exporter as nobody) could not
    open.
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        f = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target
