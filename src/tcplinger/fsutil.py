"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(target: Path, data: bytes, *, mode: int = 0o644) -> Path:
    """Write ``data`` to a temporary file beside ``target``, fsync it and
    rename it over ``target`` (rename(2) is atomic within a filesystem).

    ``mode`` is set explicitly: mkstemp makes 0600 files, which a reader
    running as another user (node_exporter as nobody) could not open.
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
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
