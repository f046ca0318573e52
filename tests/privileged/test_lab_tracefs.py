"""collect/tracefs.py on the real kernel: a private instance, never the
global buffer; events arrive parsed, filtered in the kernel; the instance
goes away on close, stale ones on the next start."""

from __future__ import annotations

import os
import socket
import time

import pytest

pytestmark = pytest.mark.privileged(needs=("tracefs",))

from tcplinger.collect import trace_events, tracefs  # noqa: E402


@pytest.fixture(scope="module")
def root():
    """The tracefs mount (the marker skipped the module where there is none)."""
    return tracefs.find_tracefs()


def _global_state(root):
    return {name: (root / name).read_text() for name in ("tracing_on", "set_event",
                                                          "trace_clock", "buffer_size_kb")}


def test_private_instance_sees_state_changes_and_goes_away(root):
    before = _global_state(root)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    with tracefs.TraceSession("t-lab", filter=trace_events.port_filter([port])) as ts:
        path = ts.path
        assert path.parent == root / "instances" and path.name == f"tl-t-lab-{os.getpid()}"
        assert (path / "trace_clock").read_text().count("[mono]") == 1
        t0 = time.monotonic()
        c = socket.create_connection(("127.0.0.1", port))
        a, _ = srv.accept()
        c.close()
        time.sleep(0.05)
        a.close()
        other = socket.create_connection(("127.0.0.1", port))  # filtered in? yes, same port
        other.close()
        time.sleep(0.4)
        t1 = time.monotonic()
        assert ts.lost() == 0
    srv.close()
    assert not path.exists()
    assert _global_state(root) == before  # the global buffer was never touched
    evs = [e for e in ts.events if e.event == "inet_sock_set_state"]
    assert all(port in (e.local[1], e.remote[1]) for e in ts.events)
    # mono clock = time.monotonic()
    assert all(t0 - 0.01 <= e.t <= t1 for e in ts.events)
    client = [(e.oldstate, e.newstate) for e in evs if e.remote[1] == port and e.local[1] != 0]
    assert (4, 5) in client and (5, 7) in client  # handed to a minisock: no TIME_WAIT event
    assert any(e.event == "tcp_destroy_sock" and e.cookie for e in ts.events)


def test_stale_instances_are_removed_live_ones_kept(root):
    dead = 4_000_000  # above pid_max's default: never a live process
    stale = root / "instances" / f"tl-t-lab-{dead}"
    stale.mkdir()
    live = root / "instances" / f"tl-t-lab-{os.getpid()}-live"  # not our naming: kept
    live.mkdir()
    try:
        removed = tracefs.remove_stale_instances(root)
        assert stale.name in removed and not stale.exists()
        assert live.exists()
    finally:
        for p in (stale, live):
            if p.exists():
                tracefs.remove_instance(p)


def test_lost_lists_the_cpu_files_once(root, monkeypatch):
    """lost() (asked twice a watch sample) reads every CPU's stats file and
    lists them once per instance, not at every call."""
    from pathlib import Path

    listed = []
    glob = Path.glob

    def counting(self, pattern, *args, **kwargs):
        listed.append(pattern)
        return glob(self, pattern, *args, **kwargs)
    monkeypatch.setattr(Path, "glob", counting)
    with tracefs.TraceSession("t-lost") as ts:
        files = sorted(glob(ts.path / "per_cpu", "cpu*/stats"))
        assert len(files) == os.cpu_count()
        want = sum(v.get("overrun", 0) + v.get("dropped events", 0) for v in
                   (trace_events.parse_stats(f.read_text()) for f in files))
        ts.lost_in_pipe = 3
        assert [ts.lost() for _ in range(3)] == [want + 3] * 3
    assert listed.count("cpu*/stats") == 1
