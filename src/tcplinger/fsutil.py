"""The files tcplinger writes and the files it reads as its own.

One atomic writer (:func:`atomic_write`, :func:`atomic_path`) for every
command that writes a file: check's counters, tune's snippet and state
file, the exporter's textfile, ``--html``, ``--svg``, ``--png`` and
``capture --write``. A reader never sees half a file, a failure leaves
the old file and no temporary behind, and nothing but a regular file is
ever replaced: a rename(2) over ``/dev/null`` replaces the device node
itself (as root that broke /dev/null for the whole machine, issue 13), so
a target that exists and is not a regular file (a directory, a device, a
FIFO, a socket; a symbolic link is followed to what it names) is refused
before anything is written.

:func:`check_target` is the same test without writing, for an option's
type to refuse a bad target before a long run; :func:`read_regular` reads
a file tcplinger takes as input (a scenario, a web config, a state file)
without blocking on a FIFO or reading a device.

Errors are OSErrors with an errno and the file name, so that one mapping
(cli/errors.py, ``exit_for``) gives every command the same exit code:
ENOENT 3, EACCES/EPERM/EROFS 4, EISDIR/ENOTDIR/ENAMETOOLONG and
:class:`NotARegularFile` 2.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

#: what a file that is not regular is, by its type bits (stat(2), inode(7))
_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


class NotARegularFile(OSError):
    """The path names a device, a FIFO or a socket where tcplinger reads
    or writes a regular file.

    >>> e = NotARegularFile("/dev/null", "a character device")
    >>> e.errno == errno.EINVAL, str(e)
    (True, "[Errno 22] not a regular file (a character device): '/dev/null'")
    """

    def __init__(self, path, kind: str):
        super().__init__(errno.EINVAL, f"not a regular file ({kind})", str(path))
        self.kind = kind


def kind_of(mode: int) -> str | None:
    """None for a regular file, else what it is (a directory raises
    IsADirectoryError in the callers: its own errno).

    >>> kind_of(stat.S_IFREG | 0o644), kind_of(stat.S_IFIFO | 0o600)
    (None, 'a FIFO')
    """
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def _refuse(path: Path, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    kind = kind_of(mode)
    if kind is not None:
        raise NotARegularFile(path, kind)


def _named(target) -> Path:
    text = os.fspath(target)
    if not text:
        raise FileNotFoundError(errno.ENOENT, "empty file name", "''")
    return Path(text)


def check_target(target) -> Path:
    """Raise the OSError that writing ``target`` would meet, before any
    work is done; returns the path a write goes to (symbolic links
    followed, so that the link stays and the file it names is replaced).

    Refused: an empty name, a target that is a directory or not a regular
    file, a missing parent directory (FileNotFoundError naming it), a
    parent that is not a directory, and a directory where no file can be
    created (EACCES, EROFS, EPERM of an immutable directory): that is
    tried by creating a file there and removing it at once, since root
    passes every permission bit and access(2) knows neither immutable
    directories nor every ACL.
    """
    path = Path(os.path.realpath(_named(target)))
    try:
        _refuse(path, os.stat(path).st_mode)
    except FileNotFoundError:
        pass  # a new file
    parent = path.parent
    if not parent.is_dir():
        if parent.exists():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(parent))
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(parent))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=parent)
    os.close(fd)
    os.unlink(tmp)
    return path


def _fsync_dir(directory: Path) -> None:
    """The rename itself on disk (fsync(2): syncing a file does not sync
    the directory entry that names it)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory: the data is synced
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target, *, mode: int = 0o644):
    """A temporary path beside ``target`` for a writer of its own (tcpdump,
    a library that wants a file name); on a clean exit it is fsync'd and
    renamed over ``target``, on any failure removed.

    The temporary name is unique (mkstemp: O_EXCL, random), so two writers
    never share one. ``mode`` is set explicitly: mkstemp makes 0600 files,
    which a reader running as another user (node_exporter as nobody)
    could not open.
    """
    path = check_target(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)
    try:
        os.close(fd)
        yield Path(tmp)
        fd = os.open(tmp, os.O_RDWR | os.O_CLOEXEC)
        try:
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        # the target may have become something else since check_target
        with contextlib.suppress(FileNotFoundError):
            _refuse(path, os.lstat(path).st_mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write(target, data: bytes, *, mode: int = 0o644) -> Path:
    """Write ``data`` to ``target`` whole or not at all (see
    :func:`atomic_path`); returns the path written."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    with atomic_path(target, mode=mode) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    return Path(os.path.realpath(target))


def read_regular(path, *, limit: int = 64 << 20) -> bytes:
    """The bytes of a regular file tcplinger reads as input. A directory,
    a device, a FIFO or a socket is refused without reading (O_NONBLOCK:
    opening a FIFO does not wait for a writer); so is a file larger than
    ``limit`` (EFBIG)."""
    path = _named(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        _refuse(path, st.st_mode)
        if st.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit >> 20} MiB", str(path))
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise OSError(errno.EFBIG, f"larger than {limit >> 20} MiB", str(path))
        return data
    finally:
        os.close(fd)


def check_regular(path) -> None:
    """Raise unless ``path`` is missing or a regular file (after symbolic
    links): for files a library opens by name (SQLite)."""
    path = _named(path)
    try:
        _refuse(path, os.stat(path).st_mode)
    except FileNotFoundError:
        pass
