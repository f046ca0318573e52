"""netns discovery over the recorded /proc tree in tests/data/proc_pids/mixed.

See tests/data/proc_pids/README.md for what each pid is.  Trees that need
/run/netns files or changed links are copied to tmp_path first (symlinks
kept as symlinks).
"""

import os
import shutil
from pathlib import Path

import pytest

from tcplinger.collect import netns
from tcplinger.model.socket import NetnsRef
from tcplinger.model.workload import Workload

MIXED = Path(__file__).parent.parent / "data" / "proc_pids" / "mixed"
HOST, NS_A, NS_B = 4026531833, 4026532177, 4026532246
POD = "pod:1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/aa11bb22cc33"


@pytest.fixture
def tree(tmp_path):
    """A copy of the recorded tree plus an empty run_netns directory."""
    proc = tmp_path / "proc"
    shutil.copytree(MIXED, proc, symlinks=True)
    run = tmp_path / "run_netns"
    run.mkdir()
    return proc, run


def relink(proc: Path, pid: int, inode: int) -> None:
    link = proc / str(pid) / "ns" / "net"
    link.unlink()
    os.symlink(f"net:[{inode}]", link)


@pytest.mark.parametrize("text,inode", [
    ("net:[4026531840]", 4026531840),
    ("net:[1]", 1),
    ("mnt:[4026531840]", None),
    ("net:[]", None),
    ("net:[12a]", None),
    ("socket:[123]", None),
    ("", None),
])
def test_parse_ns_link(text, inode):
    assert netns.parse_ns_link(text) == inode


def test_scan_proc_recorded():
    scan = netns.scan_proc(MIXED)
    assert scan.inode_of == {2: HOST, 11554: HOST, 11602: HOST,
                             11552: NS_A, 11596: NS_A, 11553: NS_B}
    assert (scan.denied, scan.vanished) == (0, 1)  # 4242 exited mid-scan


def test_discover_without_run_netns(tmp_path):
    found = netns.discover(MIXED, run_netns=tmp_path / "absent")
    assert [n.inode for n in found] == [HOST, NS_A, NS_B]
    host, a, b = found
    assert host.current and not a.current and not b.current
    assert host.pids == (2, 11554, 11602)
    # 11554 is a host-network docker container: it must not name the host
    assert host.container is None
    assert host.path == f"{MIXED}/11602/ns/net"  # self, not pid 2's
    assert (a.pids, a.container, a.name) == ((11552, 11596), "docker:3f4e8a2b9c1d", None)
    assert a.path == f"{MIXED}/11552/ns/net"
    assert (b.pids, b.container) == ((11553,), POD)
    assert (found.denied, found.vanished, found.skipped, found.stale) == (0, 1, 1, ())
    assert isinstance(found, list)


def test_discover_merges_run_netns_by_inode(tree):
    proc, run = tree
    (run / "web").touch()
    os.link(run / "web", run / "web-alias")  # `ip netns attach` twice: one inode, two names
    (run / "idle").touch()  # `ip netns add idle`: a namespace with no process
    (run / "not-a-file").mkdir()
    web = (run / "web").stat().st_ino
    idle = (run / "idle").stat().st_ino
    relink(proc, 11552, web)
    relink(proc, 11596, web)

    found = netns.discover(proc, run)
    assert [(n.inode, n.name) for n in found] == [
        (HOST, None), (idle, "idle"), (web, "web"), (NS_B, None)]
    by_inode = {n.inode: n for n in found}
    assert by_inode[web].path == str(run / "web")
    assert by_inode[web].pids == (11552, 11596)
    assert by_inode[web].container == "docker:3f4e8a2b9c1d"
    assert by_inode[web].ref == NetnsRef(web, "web", "docker:3f4e8a2b9c1d",
                                         Workload("docker", "3f4e8a2b9c1d"))
    assert by_inode[idle].pids == () and by_inode[idle].container is None
    assert by_inode[idle].label() == "idle"
    assert found.stale == (str(run / "not-a-file"),)


def test_by_name(tree):
    proc, run = tree
    (run / "web").touch()
    os.link(run / "web", run / "web-alias")
    relink(proc, 11552, (run / "web").stat().st_ino)
    info = netns.by_name("web", run_netns=run, proc_root=proc)
    assert (info.name, info.pids, info.path) == ("web", (11552,), str(run / "web"))
    alias = netns.by_name("web-alias", run_netns=run, proc_root=proc)
    assert (alias.inode, alias.name, alias.path) == (info.inode, "web-alias",
                                                     str(run / "web-alias"))


@pytest.mark.parametrize("name,message", [
    ("nope", "no network namespace named 'nope' in {run}"),
    ("../etc", "invalid network namespace name '../etc'"),
    ("", "invalid network namespace name ''"),
])
def test_by_name_not_found(tree, name, message):
    proc, run = tree
    with pytest.raises(netns.NetnsNotFound) as err:
        netns.by_name(name, run_netns=run, proc_root=proc)
    assert str(err.value) == message.format(run=run)
    assert isinstance(err.value, LookupError)


def test_by_name_stale_entry(tree):
    proc, run = tree
    (run / "half").mkdir()
    with pytest.raises(netns.NetnsNotFound, match="is not a network namespace"):
        netns.by_name("half", run_netns=run, proc_root=proc)


def test_by_pid(tmp_path):
    info = netns.by_pid(11596, MIXED, run_netns=tmp_path)
    assert (info.inode, info.pids, info.container) == (NS_A, (11552, 11596),
                                                       "docker:3f4e8a2b9c1d")
    assert info.path == f"{MIXED}/11596/ns/net"  # the pid asked for
    assert netns.by_pid(2, MIXED, run_netns=tmp_path).current


@pytest.mark.parametrize("pid", [999999, 4242])
def test_by_pid_not_found(tmp_path, pid):
    with pytest.raises(netns.NetnsNotFound, match=f"no process {pid} in "):
        netns.by_pid(pid, MIXED, run_netns=tmp_path)


def test_current(tmp_path):
    info = netns.current(MIXED, run_netns=tmp_path)
    assert (info.inode, info.current, info.name) == (HOST, True, None)


def test_current_follows_thread_self(tree):
    """A thread that setns()'d: /proc/thread-self wins over /proc/self."""
    proc, run = tree
    task = proc / "11602" / "task" / "11603" / "ns"
    task.mkdir(parents=True)
    os.symlink(f"net:[{NS_B}]", task / "net")
    os.symlink("11602/task/11603", proc / "thread-self")
    found = netns.discover(proc, run)
    assert found[0].inode == NS_B and found[0].current
    assert found[0].path == str(proc / "11602" / "task" / "11603" / "ns" / "net")
    assert [n.inode for n in found if not n.current] == [HOST, NS_A]


def test_vanished_between_listing_and_reading(tree):
    proc, run = tree
    (proc / "11553" / "ns" / "net").unlink()  # exited: its links are gone
    found = netns.discover(proc, run)
    assert [n.inode for n in found] == [HOST, NS_A]
    assert found.vanished == 2


def test_stale_run_netns_file_on_real_nsfs(tmp_path):
    """A plain file (what an interrupted `ip netns add` leaves) is no namespace.

    Uses the real /proc/self only to learn the nsfs device; no privileges.
    """
    (tmp_path / "leftover").touch()
    nsfs_dev = os.stat("/proc/self/ns/net").st_dev
    scan = netns.scan_run_netns(tmp_path, nsfs_dev)
    assert scan.inode_of == {} and scan.stale == (str(tmp_path / "leftover"),)
    found = netns.discover(Path("/proc"), tmp_path)
    assert found.stale == (str(tmp_path / "leftover"),)
    assert found[0].current and found[0].inode == os.stat("/proc/thread-self/ns/net").st_ino


def test_ns_inode_stat_fallback(tmp_path):
    """Not a link (a bind-mounted file, or a copy): the inode comes from stat."""
    f = tmp_path / "net"
    f.touch()
    assert netns.ns_inode(f) == f.stat().st_ino


def test_a_namespace_deleted_during_a_scan_is_skipped(tmp_path, monkeypatch):
    """`ip netns del` unmounts /run/netns/NAME, then unlinks it: a scan that
    reaches the left-over plain file gets EINVAL from setns(). With
    --all-netns that namespace vanished (skipped, said so); asked for by
    name, it is not found (seen: `top`'s kill key failed on another run's
    namespace being deleted)."""
    import os

    import pytest

    from tcplinger.collect import snapshot as snap_mod
    from tcplinger.collect.netns import NetnsInfo, NetnsNotFound
    from tcplinger.collect.snapshot import Scope

    if os.geteuid() != 0:
        pytest.skip("setns() on a plain file gives EPERM without root, before EINVAL")
    left = tmp_path / "tl-gone"
    left.write_text("")
    gone = NetnsInfo(4026599999, "tl-gone", str(left), (), None, False)
    monkeypatch.setattr(snap_mod, "resolve", lambda scope, roots: ([gone], 0))
    snap = snap_mod.take(Scope(all_netns=True))
    assert snap.namespaces == [] and len(snap.skipped) == 1
    with pytest.raises(NetnsNotFound):
        snap_mod.take(Scope(netns="tl-gone"))
