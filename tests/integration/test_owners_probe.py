"""find_owners on the real /proc: reading fds by number (collect/owners.py
_read_fds) finds exactly what listing /proc/PID/fd finds, also with holes
in the fd table and with a table that is mostly holes.  The holder is a
child process with TCP sockets that are never connected (no network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tcplinger.collect import fdwalk, owners

# N sockets; then close every K-th, and a run of R in the middle; print the
# inodes still open and wait.
HOLDER = """
import json, os, socket, sys, time
n, k, run = map(int, sys.argv[1:])
socks = [socket.socket() for _ in range(n)]
for i, s in enumerate(socks):
    if i % k == 0 or 300 <= i < 300 + run:
        s.close()
print(json.dumps([os.fstat(s.fileno()).st_ino for s in socks if s.fileno() >= 0]), flush=True)
time.sleep(300)
"""


@pytest.fixture
def holder():
    procs = []

    def start(n: int, every: int = 10, run: int = 20):
        p = subprocess.Popen([sys.executable, "-c", HOLDER, str(n), str(every), str(run)],
                             stdout=subprocess.PIPE, text=True)
        procs.append(p)
        return p.pid, json.loads(p.stdout.readline())
    yield start
    for p in procs:
        p.kill()
        p.wait()


@pytest.mark.parametrize("n,every,run", [(40, 10, 0), (1000, 20, 20), (1000, 5, 150)])
def test_by_number_same_as_listing(holder, monkeypatch, n, every, run):
    pid, inodes = holder(n, every, run)
    listings = []
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: listings.append(p) or real(p))
    got = owners.find_owners(inodes, pids=[pid])
    # a 40-fd table is listed; 1000 with 7% holes is read by number; 35% holes: listed
    assert bool(listings) == (n < fdwalk.PROBE_MIN_FDS or every == 5)
    monkeypatch.setattr(fdwalk, "PROBE_MIN_FDS", 10**9)
    listed = owners.find_owners(inodes, pids=[pid])
    assert got == listed
    assert set(got) == set(inodes) and all(o[0].pid == pid for o in got.values())
    assert got.fds_walked == listed.fds_walked == len(os.listdir(f"/proc/{pid}/fd"))


def test_mostly_holes_falls_back_to_listing(holder, monkeypatch):
    pid, inodes = holder(1000, 20, 20)
    keep = inodes[-3:]  # wanted: three sockets near the end of the table
    calls = []
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: calls.append(p) or real(p))
    monkeypatch.setattr(fdwalk, "PROBE_MISS_RATIO", 10**6)  # no miss allowed
    got = owners.find_owners(keep, pids=[pid])
    assert set(got) == set(keep) and calls  # the holes made it list the table
