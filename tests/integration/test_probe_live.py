"""Every probe on this machine (loopback only; as root it also mounts
nothing permanent and creates a tracefs instance it removes): nothing is
left behind."""

from __future__ import annotations

import os
from pathlib import Path

from tcplinger.collect import probe
from tcplinger.collect.probe import COSTS, Feature, probe_all


def _by_name(features):
    return {f.name: f for f in features}


def _tracefs_instances() -> set[str]:
    found = set()
    for mount in probe._tracefs_mounts(Path("/proc")):
        inst = mount / "instances"
        if inst.is_dir():
            found |= {p.name for p in inst.iterdir()}
    return found


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
    mounts = Path("/proc/self/mounts").read_text()
    instances = _tracefs_instances()
    features = probe_all()
    assert [f.name for f in features] == list(COSTS)
    assert all(isinstance(f, Feature) and (f.ok or f.cost == COSTS[f.name])
               for f in features)
    assert _socket_fds() == sockets
    assert Path("/proc/self/mounts").read_text() == mounts
    assert not {i for i in _tracefs_instances() - instances if i.startswith("tl-probe-")}
    if os.geteuid() == 0:
        got = _by_name(features)
        assert got["sock_diag"].ok, got["sock_diag"]
        assert got["tracefs instance"].ok, got["tracefs instance"]
