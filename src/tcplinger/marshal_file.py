"""Caches kept beside the package's .pyc files (the message catalogs',
i18n.py; the dataclass methods', dataclass_cache.py): one file format,
checked before anything in it is believed.

A file is ``VERSION`` (the interpreter's ``sys.hexversion``, 4 bytes
little-endian), the CRC-32 of the rest (4 bytes little-endian), then one
``marshal`` value. Why the checks: marshal's format belongs to one
interpreter build (code objects of a 3.11 release candidate share the
cache tag with 3.11.7's, as a .pyc checks its magic for), and marshal
does not detect corruption: of random one-byte changes of a cache file,
1 in 20 made ``marshal.loads`` raise SystemError and 1 in 4 still parsed
(as other code objects, or as message texts with other words).

"""

from __future__ import annotations

import marshal
import sys
import zlib
from pathlib import Path

#: The file's first four bytes.
VERSION = sys.hexversion.to_bytes(4, "little")
_HEAD = len(VERSION) + 4


def read(path: Path) -> object | None:
    """The value in the file at ``path``; None when there is none to
    believe (missing, unreadable, another interpreter's, corrupt)."""
    try:
        data = memoryview(path.read_bytes())
    except OSError:
        return None
    if (len(data) < _HEAD or data[:len(VERSION)] != VERSION
            or int.from_bytes(data[len(VERSION):_HEAD], "little") != zlib.crc32(data[_HEAD:])):
        return None
    try:
        return marshal.loads(data[_HEAD:])
    except Exception:  # noqa: BLE001 - bad data raises ValueError, EOFError, TypeError, SystemError
        return None


def write(path: Path, value) -> None:
    """Write ``value`` to ``path`` atomically, the folder made if needed;
    nothing when the folder is not writable (a read-only install: the
    cache is then made again at every start, as without one)."""
    try:
        from .fsutil import atomic_write  # only after a miss: tempfile is ~10 ms to import

        path.parent.mkdir(exist_ok=True)
        data = marshal.dumps(value)
        atomic_write(path, VERSION + zlib.crc32(data).to_bytes(4, "little") + data)
    except OSError:
        pass
