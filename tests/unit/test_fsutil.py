"""The one atomic writer: whole files or none, never a temporary left."""

import errno
import os
import stat

import pytest

from tcplinger.fsutil import (NotARegularFile, atomic_path, atomic_write, check_target,
                              read_regular)


@pytest.fixture
def read_only_dir(tmp_path, read_only_directory):
    with read_only_directory(tmp_path / "ro") as ro:
        yield ro


def test_writes_whole_file_with_mode(tmp_path):
    target = tmp_path / "state.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two", mode=0o600)
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["state.json"]


def test_failed_write_leaves_target_and_no_temporary(tmp_path):
    target = tmp_path / "state.json"
    target.write_bytes(b"before")
    with pytest.raises(TypeError):
        atomic_write(target, "not bytes")  # fails inside write()
    assert target.read_bytes() == b"before"
    assert os.listdir(tmp_path) == ["state.json"]


def test_failed_rename_leaves_no_temporary(tmp_path):
    target = tmp_path / "dir"
    target.mkdir()
    (target / "x").write_text("keeps the directory non-empty")
    with pytest.raises(OSError):
        atomic_write(target, b"data")  # rename(2) over a non-empty directory
    assert sorted(os.listdir(tmp_path)) == ["dir"]


def test_temporary_names_are_unique(tmp_path, monkeypatch):
    """Two writers of one target never share a temporary file (tune once
    used a fixed ``.NAME.tmp``)."""
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        return real(src, dst)
    monkeypatch.setattr(os, "replace", spy)
    for _ in range(3):
        atomic_write(tmp_path / "f", b"x")
    assert len(set(seen)) == 3 and all(n.startswith(".f.") for n in seen)


# ---- what is never replaced (issue 13: `check --state /dev/null` as root
# renamed a file over the machine's /dev/null) ----------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")


def _null_device(path):
    """A private null device (never the machine's /dev/null)."""
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return path


def _entries(d):
    return sorted(os.listdir(d))


@needs_root
def test_a_device_node_is_refused_and_stays(tmp_path):
    null = _null_device(tmp_path / "null")
    with pytest.raises(NotARegularFile, match="character device"):
        atomic_write(null, b"x")
    assert stat.S_ISCHR(os.lstat(null).st_mode) and _entries(tmp_path) == ["null"]


@needs_root
def test_a_symlink_to_a_device_is_refused_and_both_stay(tmp_path):
    null = _null_device(tmp_path / "null")
    (tmp_path / "link").symlink_to(null)
    with pytest.raises(NotARegularFile):
        atomic_write(tmp_path / "link", b"x")
    assert os.path.islink(tmp_path / "link") and stat.S_ISCHR(os.lstat(null).st_mode)
    assert _entries(tmp_path) == ["link", "null"]


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFile, match="FIFO"):
        atomic_write(fifo, b"x")
    with pytest.raises(NotARegularFile, match="FIFO"):
        read_regular(fifo)  # O_NONBLOCK: no writer needed to return
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and _entries(tmp_path) == ["fifo"]


def test_a_directory_is_refused_and_no_temporary_is_left(tmp_path):
    """`tune --write /tmp/somedir` left /tmp/.somedir.tmp (issue 13)."""
    (tmp_path / "somedir").mkdir()
    with pytest.raises(IsADirectoryError):
        atomic_write(tmp_path / "somedir", b"x")
    with pytest.raises(IsADirectoryError):
        read_regular(tmp_path / "somedir")
    assert _entries(tmp_path) == ["somedir"] and _entries(tmp_path / "somedir") == []


def test_a_symlink_to_a_file_keeps_the_link_and_replaces_the_file(tmp_path):
    (tmp_path / "real").write_bytes(b"old")
    (tmp_path / "link").symlink_to("real")
    assert atomic_write(tmp_path / "link", b"new") == tmp_path / "real"
    assert os.path.islink(tmp_path / "link") and (tmp_path / "real").read_bytes() == b"new"


def test_names_that_cannot_be_written(tmp_path):
    with pytest.raises(FileNotFoundError):
        check_target("")  # Path("") would be ".", the current directory
    with pytest.raises(FileNotFoundError) as missing:
        check_target(tmp_path / "missing" / "x")
    assert missing.value.filename == str(tmp_path / "missing")
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        check_target(tmp_path / "file" / "x")
    with pytest.raises(OSError) as long:
        atomic_write(tmp_path / ("x" * 300), b"x")
    assert long.value.errno == errno.ENAMETOOLONG
    assert _entries(tmp_path) == ["file"]


def test_a_read_only_directory_is_refused_before_writing(tmp_path, read_only_dir):
    with pytest.raises(OSError) as exc:
        check_target(read_only_dir / "x")
    assert exc.value.errno in (errno.EROFS, errno.EACCES)
    assert _entries(read_only_dir) == []


def test_an_interrupted_external_writer_leaves_nothing(tmp_path):
    """atomic_path: what a writer of its own (tcpdump) wrote is renamed
    only on a clean exit."""
    (tmp_path / "x.pcap").write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "x.pcap") as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert _entries(tmp_path) == ["x.pcap"] and (tmp_path / "x.pcap").read_bytes() == b"old"
    with atomic_path(tmp_path / "x.pcap", mode=0o640) as tmp:
        tmp.write_bytes(b"whole")
    assert (tmp_path / "x.pcap").read_bytes() == b"whole"
    assert stat.S_IMODE((tmp_path / "x.pcap").stat().st_mode) == 0o640
    assert _entries(tmp_path) == ["x.pcap"]


def test_read_regular_refuses_what_is_too_large(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 2048)
    assert read_regular(tmp_path / "big", limit=4096) == b"x" * 2048
    with pytest.raises(OSError) as exc:
        read_regular(tmp_path / "big", limit=1024)
    assert exc.value.errno == errno.EFBIG


def test_files_in_proc_are_read_but_never_written(tmp_path):
    """/proc files are regular (st_size 0): reading them returns their text;
    writing one through the writer is refused (no new file can be made in
    /proc/self)."""
    assert read_regular("/proc/self/stat").split()[0] == str(os.getpid()).encode()
    with pytest.raises(OSError):
        atomic_write("/proc/self/comm", b"x")
