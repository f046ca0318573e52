"""find_owners / fd_usage over the recorded tree tests/data/proc_pids/mixed,
checked against `ss -tanpe` taken at the moment of recording."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tcplinger.collect import fdwalk, owners
from tcplinger.model.socket import Owner

MIXED = Path(__file__).parent.parent / "data" / "proc_pids" / "mixed"
SS = MIXED / "ss_tanpe_tl-ns-rec-a.txt"
LISTENER, CLIENT, ACCEPTED = 257184, 257185, 257186
HOLDER_CMD = "/root/.pyenv/versions/3.11.7/bin/python3 /tmp/tl_holder.py"
DOCKER = "docker:3f4e8a2b9c1d"


def ss_owners(text: str) -> dict[int, set[tuple[str, int, int]]]:
    """inode -> {(comm, pid, fd)} from `ss -tanpe` lines."""
    out = {}
    for line in text.splitlines():
        ino = re.search(r"\bino:(\d+)", line)
        if ino and int(ino.group(1)):
            out[int(ino.group(1))] = {(c, int(p), int(f)) for c, p, f in
                                      re.findall(r'\("([^"]*)",pid=(\d+),fd=(\d+)\)', line)}
    return out


def test_matches_ss_recorded():
    expected = ss_owners(SS.read_text())
    assert set(expected) == {LISTENER, CLIENT, ACCEPTED}
    found = owners.find_owners(expected, MIXED)
    assert {ino: {(o.comm, o.pid, o.fd) for o in own} for ino, own in found.items()} == expected


def test_owner_details_and_order():
    found = owners.find_owners([LISTENER, ACCEPTED], MIXED)
    assert found[LISTENER] == (
        Owner(pid=11552, comm="python3", fd=3, cmdline=HOLDER_CMD, user="root", uid=0,
              container=DOCKER),
        Owner(pid=11596, comm="python3", fd=3, cmdline=HOLDER_CMD, user="4000123",
              uid=4000123, container=DOCKER),
    )
    # dup()'d fd: one Owner per fd, like ss -p
    assert [(o.pid, o.fd) for o in found[ACCEPTED]] == [(11552, 5), (11552, 6)]


def test_counts_and_vanished():
    found = owners.find_owners([CLIENT], MIXED)
    assert list(found) == [CLIENT]
    # pid 2 (no fd dir in git) and 4242 (exited) could not be walked
    assert (found.vanished, found.unreadable, found.pids_walked) == (2, 0, 7)
    assert found.fds_walked == sum(len(os.listdir(MIXED / p / "fd")) for p in
                                   ("11552", "11553", "11554", "11596", "11602"))


def test_pids_limit_the_walk():
    found = owners.find_owners([LISTENER, CLIENT], MIXED, pids=[11596, 4242])
    assert {ino: [o.pid for o in own] for ino, own in found.items()} == {LISTENER: [11596]}
    assert (found.pids_walked, found.vanished) == (2, 1)


def test_inode_zero_and_unknown_are_never_matched():
    # 0 is every TIME_WAIT and orphan socket: nobody owns it
    found = owners.find_owners([0, 999999999], MIXED)
    assert dict(found) == {}
    assert found.pids_walked == 7  # walked, found nothing
    assert owners.find_owners([0], MIXED).pids_walked == 0  # nothing wanted: no walk


def test_non_socket_links_are_not_confused(tmp_path):
    """A pipe or file whose number equals a wanted socket inode is no match."""
    proc = tmp_path / "proc"
    shutil.copytree(MIXED, proc, symlinks=True)
    os.symlink("pipe:[257185]", proc / "11553" / "fd" / "7")
    os.symlink("/tmp/socket:[257185]", proc / "11553" / "fd" / "8")
    (proc / "11553" / "fd" / "9").write_text("not a link")  # readlink: EINVAL
    found = owners.find_owners([CLIENT], proc)
    assert [(o.pid, o.fd) for o in found[CLIENT]] == [(11552, 4)]


def test_owner_vanishing_after_the_walk(tmp_path):
    """Details unreadable (process gone after its fds were read): kept, empty."""
    proc = tmp_path / "proc"
    shutil.copytree(MIXED, proc, symlinks=True)
    for name in ("comm", "cmdline", "status", "cgroup"):
        (proc / "11596" / name).unlink()
    (o,) = owners.find_owners([LISTENER], proc, pids=[11596])[LISTENER]
    assert o == Owner(pid=11596, comm="", fd=3, cmdline="", user="", uid=-1, container=None)


def test_fd_usage_recorded():
    usage = owners.fd_usage(11552, MIXED)
    assert usage == (len(os.listdir(MIXED / "11552" / "fd")), 20000, 20000)
    assert (usage.open_fds, usage.soft_limit, usage.hard_limit) == (11, 20000, 20000)
    with pytest.raises(FileNotFoundError):
        owners.fd_usage(4242, MIXED)


@pytest.mark.parametrize("line,expected", [
    ("Max open files            1024                 524288               files     ", (1024, 524288)),
    ("Max open files            unlimited            unlimited            files     ", (None, None)),
    ("Max processes             63432                63432                processes ", (None, None)),
])
def test_parse_nofile_limits(line, expected):
    text = "Limit                     Soft Limit           Hard Limit           Units     \n" + line
    assert owners.parse_nofile_limits(text) == expected


def test_parse_cmdline_truncates():
    raw = b"java\0" + b"-Dx=" + b"y" * 1000 + b"\0"
    text = owners.parse_cmdline(raw)
    assert len(text) == owners.CMDLINE_MAX and text.startswith("java -Dx=yyy") and text[-1] == "…"
    assert owners.parse_cmdline(b"") == ""
    assert owners.parse_cmdline(b"\xff\xfe\0") == "\ufffd\ufffd"


def test_parse_status_uid_missing():
    assert owners.parse_status_uid("Name:\tx\n") is None


def test_user_name_falls_back_to_number():
    assert owners.user_name(0) == "root"
    assert owners.user_name(4000123) == "4000123"


def test_first_processes_then_the_others_only_when_needed():
    # every inode found among the first processes: nobody else is read
    found = owners.find_owners([ACCEPTED], MIXED, first=[11552])
    assert [(o.pid, o.fd) for o in found[ACCEPTED]] == [(11552, 5), (11552, 6)]
    assert found.pids_walked == 1
    # CLIENT is not held by 11596: the rest of the processes are read too
    found = owners.find_owners([LISTENER, CLIENT], MIXED, first=[11596])
    assert found.pids_walked == 7
    assert {ino: {o.pid for o in own} for ino, own in found.items()} == \
        {LISTENER: {11552, 11596}, CLIENT: {11552}}
    # documented limit: a socket shared with a process outside `first` shows
    # only the owners found first
    found = owners.find_owners([LISTENER], MIXED, first=[11596])
    assert [o.pid for o in found[LISTENER]] == [11596] and found.pids_walked == 1


def _fd_tree(tmp_path, fds: list[int], wanted: dict[int, int]) -> Path:
    """A /proc-like tree: pid 100 with fds ``fds``, socket links for the
    inodes in ``wanted`` (fd -> inode), pipes elsewhere."""
    fd_dir = tmp_path / "proc" / "100" / "fd"
    fd_dir.mkdir(parents=True)
    for fd in fds:
        target = f"socket:[{wanted[fd]}]" if fd in wanted else f"pipe:[{9000 + fd}]"
        os.symlink(target, fd_dir / str(fd))
    (tmp_path / "proc" / "100" / "comm").write_text("holder\n")
    return tmp_path / "proc"


@pytest.mark.parametrize("fds", [
    list(range(300)),  # dense
    [fd for fd in range(400) if fd % 7],  # small holes
    list(range(100)) + list(range(5000, 5100)),  # one big hole: listed instead
    list(range(3)) + [1023],  # sparse and small: listed
])
def test_reading_fds_by_number_finds_what_listing_finds(tmp_path, monkeypatch, fds):
    wanted = {fds[i]: 700000 + i for i in range(0, len(fds), 3)}
    proc = _fd_tree(tmp_path, fds, wanted)
    got = owners.find_owners(wanted.values(), proc)
    monkeypatch.setattr(fdwalk, "PROBE_MIN_FDS", 10**9)  # list every directory
    listed = owners.find_owners(wanted.values(), proc)
    assert got == listed
    assert {ino: [o.fd for o in own] for ino, own in got.items()} == \
        {ino: [fd] for fd, ino in wanted.items()}
    assert got.fds_walked == listed.fds_walked == len(fds)
    # the fd usage the report shows, from the walk (no second listing)
    assert got.open_fds == listed.open_fds == {100: len(fds)}


def test_the_walk_counts_the_open_fds_a_listing_counts():
    """OwnerMap.open_fds (what the report's fd usage reads instead of
    listing /proc/PID/fd again, issue 16): for this process, live, with
    more fds than PROBE_MIN_FDS (read by number) and a hole among them,
    the count a listing gives; and fd_usage takes it instead of listing."""
    import socket

    socks = [socket.socket() for _ in range(fdwalk.PROBE_MIN_FDS + 20)]
    try:
        socks.pop(len(socks) // 2).close()  # a hole: the lowest free number is reused later
        inodes = [os.fstat(s.fileno()).st_ino for s in socks]
        found = owners.find_owners(inodes, Path("/proc"), pids=[os.getpid()])
        listed = len(os.listdir(f"/proc/{os.getpid()}/fd"))  # its own dir fd, as the walk's
        assert found.open_fds == {os.getpid(): listed}
        assert len(found) == len(inodes)
        usage = owners.fd_usage(os.getpid(), Path("/proc"), found.open_fds[os.getpid()])
        assert usage.open_fds == listed
    finally:
        for s in socks:
            s.close()
    assert owners.fd_usage(11552, MIXED, 5) == (5, 20000, 20000)  # told, it does not list


def test_walk_in_several_threads_is_the_same(tmp_path, monkeypatch):
    proc = tmp_path / "proc"
    expected = {}
    for pid in range(200, 230):
        d = proc / str(pid) / "fd"
        d.mkdir(parents=True)
        for fd in range(5):
            os.symlink(f"socket:[{pid * 10 + fd}]", d / str(fd))
            expected[pid * 10 + fd] = [(pid, fd)]
    for threads in (1, 3):
        monkeypatch.setattr(fdwalk, "WALK_THREADS", threads)
        found = owners.find_owners(expected, proc)
        assert {ino: [(o.pid, o.fd) for o in own] for ino, own in found.items()} == expected
        assert (found.pids_walked, found.fds_walked) == (30, 150)


# ---- the one owner policy ----------------------------------------------------

def _ns(pids, current=False):
    """What OwnerPolicy reads of a namespace (model.snapshot.NetnsSnapshot)."""
    from types import SimpleNamespace
    return SimpleNamespace(pids=tuple(pids), current=current)


def _pids(found, inode):
    return sorted({o.pid for o in found.owners[inode]})


def test_policy_walks_only_the_namespaces_own_processes():
    """LISTENER is held by 11552 and 11596; a namespace whose processes are
    known (not the caller's) is walked alone, plus ``also`` (--pid)."""
    policy = owners.OwnerPolicy(walk=True)
    assert _pids(policy.find([LISTENER], [_ns([11596])], MIXED), LISTENER) == [11596]
    assert _pids(policy.find([LISTENER], [_ns([11596])], MIXED, also=[11552]),
                 LISTENER) == [11552, 11596]


def test_policy_walks_everyone_when_the_callers_namespace_is_in_play():
    policy = owners.OwnerPolicy(walk=True)
    both = [_ns([11596]), _ns([11552], current=True)]
    assert _pids(policy.find([LISTENER], both, MIXED), LISTENER) == [11552, 11596]
    unknown = [_ns([])]  # a named namespace no process was seen in
    assert _pids(policy.find([LISTENER], unknown, MIXED), LISTENER) == [11552, 11596]


def test_policy_gate_counts_the_files_the_walk_would_read(tmp_path):
    """Automatic mode leaves a full walk out from AUTO_OWNERS_MAX_FILES open
    files on the host (file-nr); --owners walks anyway, --no-owners never."""
    proc = tmp_path / "proc"
    shutil.copytree(MIXED, proc, symlinks=True)
    (proc / "sys" / "fs").mkdir(parents=True)
    (proc / "sys" / "fs" / "file-nr").write_text("150000\t0\t9223372036854775807\n")
    host = [_ns([11552], current=True)]
    skipped = owners.OwnerPolicy().find([LISTENER], host, proc)
    assert skipped.owners is None and skipped.skipped_files == 150000
    # every process may be walked, the namespace's own first: 11552 owns it,
    # so the others are not read (find_owners ``first``)
    assert _pids(owners.OwnerPolicy(walk=True).find([LISTENER], host, proc), LISTENER) == [11552]
    assert owners.OwnerPolicy(max_files=200_000).find([LISTENER], host, proc).owners
    never = owners.OwnerPolicy(walk=False).find([LISTENER], host, proc)
    assert never.owners is None and never.skipped_files is None
    # nothing wanted (TIME_WAIT, orphans: inode 0): resolved, empty, no walk
    assert owners.OwnerPolicy().find([0], host, proc).owners == {}


MA_PROBE = r"""
import json, sys
from pathlib import Path
from tcplinger.collect import owners
found = owners.find_owners([int(i) for i in sys.argv[2:]], Path(sys.argv[1]))
print(json.dumps({"found": sorted(found), "ma": "numpy.ma" in sys.modules}))
"""


def test_the_walk_does_not_import_numpy_ma():
    """Counting the inodes found (fdwalk.Walk.found, after each round)
    takes their distinct values with model/table.distinct: a plain
    np.unique imports numpy.ma through its hash path, ~15 ms of CPU of
    every `stats --owners` and `report --owners` start (issue 16). A
    fresh interpreter, the recorded tree."""
    src = Path(__file__).resolve().parents[2] / "src"
    wanted = [LISTENER, CLIENT, ACCEPTED]
    out = subprocess.run([sys.executable, "-c", MA_PROBE, str(MIXED), *map(str, wanted)],
                         capture_output=True, text=True, timeout=60, check=True,
                         env=dict(os.environ, PYTHONPATH=str(src)))
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc == {"found": wanted, "ma": False}
