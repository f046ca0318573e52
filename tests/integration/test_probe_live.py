"""Every probe on this machine (loopback only; as root it also mounts
nothing permanent and creates a tracefs instance it removes): nothing is
left behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tcplinger.collect import features as probe
from tcplinger.collect.features import COSTS, Feature, probe_all


def _by_name(features):
    return {f.name: f for f in features}


def _own_tracefs_instances() -> set[str]:
    """This process's probe instances (``tl-probe-<pid>``): other processes
    probe at the same time and have their own."""
    found = set()
    for mount in probe._tracefs_mounts(Path("/proc")):
        inst = mount / "instances"
        if inst.is_dir():
            found |= {p.name for p in inst.iterdir() if p.name == f"tl-probe-{os.getpid()}"}
    return found


def _probe_mounts() -> set[str]:
    """The mounts a probe could leave: a tracefs anywhere, or anything on a
    ``tl-probe-`` directory (the temporary tracefs, collect/features.py).
    Not the whole mount table: ``ip netns add`` by any other process
    bind-mounts /run/netns/NAME on the host, so host-wide equality fails
    whenever anything else creates a namespace."""
    out = set()
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and (fields[2] == "tracefs" or "tl-probe-" in fields[1]):
            out.add(line)
    return out


def _socket_fds() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                out.add(fd)
        except OSError:
            pass
    return out


def test_live_probes_leave_nothing_behind():
    sockets = _socket_fds()
    mounts = _probe_mounts()
    features = probe_all()
    assert [f.name for f in features] == list(COSTS)
    assert all(isinstance(f, Feature) and (f.ok or f.cost == COSTS[f.name])
               for f in features)
    assert _socket_fds() == sockets
    assert _probe_mounts() == mounts
    assert _own_tracefs_instances() == set()
    if os.geteuid() == 0:
        got = _by_name(features)
        assert got["sock_diag"].ok, got["sock_diag"]
        assert got["tracefs instance"].ok, got["tracefs instance"]


@pytest.mark.privileged
def test_temporary_tracefs_is_unmounted_and_removed(tmp_path):
    """Where no tracefs is mounted, the probe mounts one on a temporary
    directory: it is gone afterwards, mount and directory. (A /proc whose
    mount table lacks tracefs sends it down that path here.)"""
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mounts").write_text("proc /proc proc rw 0 0\n")
    (proc / "filesystems").write_text("nodev\tproc\nnodev\ttracefs\n")
    tmp = Path(tempfile.gettempdir())
    dirs, mounts = set(tmp.glob("tl-probe-tracefs-*")), _probe_mounts()
    got = _by_name(probe._tracefs(proc, tmp_path / "sys"))
    assert got["tracefs"].ok and got["tracefs"].reason == "tracefs_mountable", got["tracefs"]
    assert got["tracefs instance"].ok, got["tracefs instance"]
    assert _probe_mounts() == mounts
    assert set(tmp.glob("tl-probe-tracefs-*")) == dirs
