"""The one atomic writer: whole files or none, never a temporary left."""

import os
import stat

import pytest

from tcplinger.fsutil import atomic_write


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
