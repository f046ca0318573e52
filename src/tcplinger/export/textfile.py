"""Metrics as a file for node_exporter's textfile collector.

node_exporter (``--collector.textfile.directory=DIR``) reads every
``DIR/*.prom`` at each of its scrapes, so a file must never be seen half
written: it is written under a temporary name that does not end in
``.prom`` in the same directory (same filesystem, so rename(2) is atomic),
flushed to disk, made world-readable and renamed over the old one
(rename(2): "If newpath already exists, it will be atomically replaced").
A failed write removes its temporary file and leaves the old file alone.

Only tcplinger's own families go in the file: node_exporter already
exports its process_* metrics, and a second copy would make it fail with
"collected metric ... was collected before".
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..fsutil import atomic_write
from .exposition import text

FILENAME = "tcplinger.prom"
_PREFIX, _SUFFIX = ".tcplinger-", ".tmp"


def check_directory(directory: Path) -> None:
    """Raise the OSError a write would meet (missing directory, not a
    directory, no permission, read-only filesystem) before any work is done.

    Root passes permission bits, so the only reliable test is creating a
    file there; it is removed at once.
    """
    directory = Path(directory)
    if not directory.exists():
        raise FileNotFoundError(2, "no such directory", str(directory))
    if not directory.is_dir():
        raise NotADirectoryError(20, "not a directory", str(directory))
    fd, name = tempfile.mkstemp(prefix=_PREFIX, suffix=_SUFFIX, dir=directory)
    os.close(fd)
    os.unlink(name)


def write(directory: Path, registry, filename: str = FILENAME) -> Path:
    """Write ``registry``'s exposition (the text format, export/exposition.py)
    to ``directory/filename`` atomically."""
    return write_bytes(directory, text(registry), filename)


def write_bytes(directory: Path, data: bytes, filename: str = FILENAME) -> Path:
    # 0644: node_exporter may run as nobody
    return atomic_write(Path(directory) / filename, data, mode=0o644)
