"""Socket owners on the real kernel, checked against `ss -tanpe` for the same
sockets; namespaces `tl-ns-<pid>-…` and processes made here, always removed.

The speed test prints µs per fd (run with -s to see it)."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import threading
import time

import pytest

pytestmark = pytest.mark.privileged

from tcplinger.collect import netns, owners  # noqa: E402

# Listener, an established pair (the accepted end dup()'d), a pair the
# client closed first (client side -> TIME_WAIT, inode 0; server side
# CLOSE_WAIT, still held), and a forked child that keeps the listener.
# RLIMIT_NOFILE soft limit lowered to 4321 for fd_usage.  Prints the pids
# and the inodes it holds, then waits to be killed.
HOLDER = """
import json, os, resource, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4321, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
l = socket.socket(); l.bind(("127.0.0.1", 8090)); l.listen()
c = socket.create_connection(("127.0.0.1", 8090)); a, _ = l.accept()
dup = os.dup(a.fileno())
c2 = socket.create_connection(("127.0.0.1", 8090)); a2, _ = l.accept()
c2.close()
child = os.fork()
if child == 0:
    for s in (c, a, a2):
        s.close()
    os.close(dup)
    time.sleep(600)
    os._exit(0)
ino = lambda s: os.fstat(s.fileno()).st_ino
print(json.dumps({"child": child, "listener": ino(l), "client": ino(c), "accepted": ino(a),
                  "accepted_fd": a.fileno(), "dup": dup, "close_wait": ino(a2)}), flush=True)
time.sleep(600)
"""

# N sockets in one process, for timing.
MANY = """
import json, os, socket, sys, time
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
print(json.dumps([os.fstat(s.fileno()).st_ino for s in socks]), flush=True)
time.sleep(600)
"""


class Space:
    """One namespace and the processes started in it; close() removes all."""

    def __init__(self, suffix: str) -> None:
        self.name = f"tl-ns-{os.getpid()}-{suffix}"
        self.procs: list[subprocess.Popen] = []
        self.pids: list[int] = []  # grandchildren (forked by what we started)
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)

    def start(self, code: str, *args: str) -> tuple[subprocess.Popen, object]:
        proc = subprocess.Popen(["ip", "netns", "exec", self.name, sys.executable, "-c",
                                 code, *args], stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc, json.loads(proc.stdout.readline())

    def close(self) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", self.name], check=False)


@pytest.fixture
def space():
    spaces: list[Space] = []
    try:
        yield lambda suffix: spaces.append(Space(suffix)) or spaces[-1]
    finally:
        for s in spaces:
            s.close()


def ss_sockets(name: str) -> list[tuple[str, int, set[tuple[str, int, int]]]]:
    """(state, inode, {(comm, pid, fd)}) per TCP socket of a namespace."""
    out = subprocess.run(["ss", "-N", name, "-tanpe"], capture_output=True, text=True,
                         check=True).stdout
    rows = []
    for line in out.splitlines()[1:]:
        ino = re.search(r"\bino:(\d+)", line)
        users = {(c, int(p), int(f)) for c, p, f in
                 re.findall(r'\("([^"]*)",pid=(\d+),fd=(\d+)\)', line)}
        rows.append((line.split()[0], int(ino.group(1)) if ino else 0, users))
    return rows


@pytest.mark.parametrize("links_max", [owners.WANTED_LINKS_MAX, 0], ids=["links", "parsed"])
def test_owners_match_ss(space, links_max, monkeypatch):
    """(``parsed``: every socket link of the host parsed, the wanted kept by
    a sorted array, as for more than WANTED_LINKS_MAX wanted inodes.)"""
    monkeypatch.setattr(owners, "WANTED_LINKS_MAX", links_max)
    sp = space("own")
    proc, held = sp.start(HOLDER)
    sp.pids.append(held["child"])
    # the client that closed first is an orphan FIN-WAIT-2 (the server never
    # closes) once the server's ACK of its FIN is in: that ACK may be delayed
    # (tcp_fin() schedules it; delayed ACKs wait up to 40 ms, longer under
    # load), and a CI run read FIN-WAIT-1 right after the holder was ready
    want = ["CLOSE-WAIT", "ESTAB", "ESTAB", "FIN-WAIT-2", "LISTEN"]
    deadline = time.monotonic() + 10
    while True:
        rows = ss_sockets(sp.name)
        states = sorted(state for state, _, _ in rows)
        if states == want or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert states == want
    inodes = [ino for _, ino, _ in rows]
    assert 0 in inodes  # the client that closed first: no file, no owner

    found = owners.find_owners(inodes)
    expected = {ino: users for _, ino, users in rows if ino}
    assert {ino: {(o.comm, o.pid, o.fd) for o in own} for ino, own in found.items()} == expected
    assert 0 not in found
    listener = found[held["listener"]]
    assert [o.pid for o in listener] == sorted([proc.pid, held["child"]])
    assert [(o.pid, o.fd) for o in found[held["accepted"]]] == sorted(
        [(proc.pid, held["accepted_fd"]), (proc.pid, held["dup"])])
    assert held["close_wait"] in found  # CLOSE_WAIT: still held by its process
    assert all(o.user == "root" and o.uid == 0 and o.container is None
               and "import json" in o.cmdline for own in found.values() for o in own)

    # walking only the namespace's processes gives the same answer
    only = owners.find_owners(inodes, pids=netns.by_name(sp.name).pids)
    assert dict(only) == dict(found)
    assert only.pids_walked == 2


def test_fd_usage_live(space):
    sp = space("fds")
    proc, held = sp.start(HOLDER)
    sp.pids.append(held["child"])
    usage = owners.fd_usage(proc.pid)
    assert usage.open_fds == len(os.listdir(f"/proc/{proc.pid}/fd"))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # the holder inherits ours
    assert (usage.soft_limit, usage.hard_limit) == (4321, None if hard == resource.RLIM_INFINITY
                                                    else hard)
    with pytest.raises(FileNotFoundError):
        owners.fd_usage(2 ** 22 + 1)  # above pid_max's ceiling: never a process


def test_speed_20k_sockets(space):
    """µs per fd walking a process that holds 19,990 sockets (the hard
    RLIMIT_NOFILE here is 20000).  CPU time of this thread (user + kernel),
    which is what the walk costs; wall time is printed too but depends on
    what else the machine runs."""
    sp = space("speed")
    n = 19990
    proc, inodes = sp.start(MANY, str(n))
    cpu, wall = {}, {}
    for label, wanted in (("10 wanted", inodes[:10]), ("all wanted", inodes)):
        cpu[label], wall[label] = [], []
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.thread_time()
            found = owners.find_owners(wanted, pids=[proc.pid])
            c1, t1 = time.thread_time(), time.perf_counter()
            assert len(found) == len(wanted)
            assert all(o[0].pid == proc.pid for o in found.values())
            assert found.fds_walked >= n
            cpu[label].append(round((c1 - c0) / found.fds_walked * 1e6, 2))
            wall[label].append(round((t1 - t0) / found.fds_walked * 1e6, 2))
    c0 = time.thread_time()
    everything = owners.find_owners(inodes[:10])
    all_cpu = time.thread_time() - c0
    print(f"\nfind_owners on {n} sockets, µs/fd (first walk, then warm): cpu {cpu}, wall {wall};"
          f" all of /proc: {everything.pids_walked} pids, {everything.fds_walked} fds"
          f" in {all_cpu * 1e3:.1f} ms cpu")
    assert len(everything) == 10
    # generous bound: ~4 µs/fd cpu measured here warm (~3.3 of it kernel),
    # +1-2.5 µs per matched fd for building its Owner
    assert min(cpu["10 wanted"]) < 20 and min(cpu["all wanted"]) < 30


def test_survives_processes_exiting_mid_walk(space):
    sp = space("churn")
    proc, held = sp.start(HOLDER)
    sp.pids.append(held["child"])
    stop = threading.Event()
    churned = []

    def churn():
        while not stop.is_set():
            p = subprocess.Popen(["ip", "netns", "exec", sp.name, "sleep", "0.005"])
            churned.append(p.pid)
            p.wait()

    workers = [threading.Thread(target=churn) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        vanished = rounds = 0
        deadline = time.monotonic() + 120
        while (rounds < 20 or len(churned) < 20) and time.monotonic() < deadline:
            rounds += 1
            # the namespace's processes, some of which exit before or while
            # their fds are read (all of /proc would also walk whatever
            # else this machine runs)
            ns = netns.by_name(sp.name)
            found = owners.find_owners([held["listener"]], pids=ns.pids)
            assert [o.pid for o in found[held["listener"]]] == sorted([proc.pid, held["child"]])
            vanished += found.vanished
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert rounds >= 20 and len(churned) >= 20
    print(f"\n{len(churned)} processes started and ended during {rounds} walks; "
          f"{vanished} vanished mid-walk")


def test_not_root_counts_unreadable(space):
    """As an unprivileged user other users' fd dirs give EACCES: counted in
    ``unreadable``, never raised.  Run in a forked child that dropped to
    uid/gid 65534."""
    sp = space("nobody")
    proc, held = sp.start(HOLDER)
    sp.pids.append(held["child"])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            found = owners.find_owners([held["listener"]], pids=[proc.pid, held["child"]])
            data = json.dumps({"owners": len(found), "unreadable": found.unreadable})
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            data, code = json.dumps({"error": repr(e)}), 1
        with os.fdopen(w, "w") as f:
            f.write(data)
        os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        out = json.loads(f.read())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert out == {"owners": 0, "unreadable": 2}


# A process that names itself with a newline, an escape sequence, a tab
# and a byte that is no UTF-8 (prctl PR_SET_NAME takes any byte but NUL),
# then holds a listener.
ODD_COMM = r"""
import ctypes, json, os, socket, time
ctypes.CDLL(None).prctl(15, ctypes.c_char_p(b"a\nb\x1b[2J\xff\tz"), 0, 0, 0)
l = socket.socket(); l.bind(("127.0.0.1", 8091)); l.listen()
print(json.dumps({"listener": os.fstat(l.fileno()).st_ino, "fd": l.fileno()}), flush=True)
time.sleep(600)
"""


def test_odd_comm_is_one_printable_line(space):
    """``ls --owners``: a comm with a newline and an escape sequence stays
    in its row, shown as ps shows it ("?" per unprintable character); the
    JSON says the same. Before: the row split in two and the terminal got
    the escape sequence."""
    sp = space("comm")
    proc, held = sp.start(ODD_COMM)
    argv = [sys.executable, "-m", "tcplinger", "ls", "--owners", "--netns", sp.name,
            "--port", "8091"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert "\x1b" not in out and "\t" not in out
    rows = [line for line in out.splitlines() if line.startswith("LISTEN")]
    assert len(rows) == 1 and rows[0].endswith(f"a?b?[2J\ufffd?z/{proc.pid}:{held['fd']}"), out
    doc = json.loads(subprocess.run(argv + ["--json"], capture_output=True, text=True,
                                    check=True).stdout)
    assert [o["comm"] for s in doc["sockets"] for o in s["owners"]] == ["a?b?[2J\ufffd?z"]
