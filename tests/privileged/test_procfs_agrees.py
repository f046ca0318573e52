"""/proc/net/tcp{,6} and sock_diag agree, socket by socket, on a known mix.

A namespace ``tl-pk-agree-<pid>`` is populated by tests/data/proc/record.py
(``--hold``: the same mix the recorded fixtures come from). Inside it, one
process reads /proc (read_sockets), dumps sock_diag, and reads /proc again,
so every timer seen by sock_diag lies between the two /proc readings.

Also checked here, because the readers' docstrings rely on it: a thread
that setns()'d sees the namespace through /proc/thread-self/net and
/proc/sys, while /proc/net keeps showing the process's namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged

RECORD_PY = Path(__file__).resolve().parents[1] / "data" / "proc" / "record.py"
CLONE_NEWNET = 0x40000000
TICK_MS = 10  # one clock tick at USER_HZ=100: /proc's resolution


def _record_module():
    spec = importlib.util.spec_from_file_location("tl_proc_record", RECORD_PY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def mix():
    """(namespace name, holder pid, manifest); deleted afterwards."""
    rec = _record_module()
    ns = f"tl-pk-agree-{os.getpid()}"
    holder = None
    try:
        rec.netns_setup(ns)
        holder = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, str(RECORD_PY), "--hold"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = holder.stdout.readline()
        if not line:
            pytest.fail("the mix holder exited before it was ready")
        ready = json.loads(line)
        yield ns, ready["pid"], ready["manifest"]
    finally:
        if holder is not None:
            with contextlib.suppress(OSError):
                holder.stdin.close()
            try:
                holder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                holder.kill()  # the Popen we started, by its own pid
                holder.wait()
        rec.netns_delete(ns)


READER = r"""
import json, socket
from pathlib import Path
from tcplinger.collect.procfs import read_sockets
from tcplinger.collect.netlink.dump import dump
from tcplinger.model.states import TcpState

def rows(table):
    return [table.record(i).to_json() for i in range(len(table))]

every_state = sum(1 << int(s) for s in TcpState)
net = Path("/proc/thread-self/net")
before = read_sockets(net)
diag = dump(states_mask=every_state, families=(socket.AF_INET, socket.AF_INET6),
            tcp_info=False)
after = read_sockets(net)
print(json.dumps({"before": rows(before), "netlink": rows(diag), "after": rows(after)}))
"""


def _read_inside(ns: str) -> dict:
    done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", READER],
                          capture_output=True, text=True, timeout=60)
    if "No module named 'tcplinger.collect.netlink" in done.stderr:
        pytest.skip("tcplinger.collect.netlink.dump is not there yet")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _key(row: dict) -> tuple:
    return (row["family"], row["local"]["address"], row["local"]["port"],
            row["remote"]["address"], row["remote"]["port"])


def _manifest_key(m: dict) -> tuple:
    return (m["family"], m["local"]["address"], m["local"]["port"],
            m["remote"]["address"], m["remote"]["port"])


def _keys(table) -> set[tuple]:
    return {_key(table.record(i).to_json()) for i in range(len(table))}


def _index(rows: list[dict]) -> dict[tuple, dict]:
    out = {_key(r): r for r in rows}
    assert len(out) == len(rows), "a 4-tuple is listed twice"
    return out


def test_procfs_and_netlink_agree(mix):
    ns, _, manifest = mix
    seen = _read_inside(ns)
    before, diag, after = (_index(seen[k]) for k in ("before", "netlink", "after"))
    assert set(before) == set(diag) == set(after)
    assert len(diag) == len(manifest)

    for key, nl in diag.items():
        p1, p2 = before[key], after[key]
        where = f"{nl['state']} {key}"
        for col in ("state", "inode", "uid", "timewait_type", "recv_q", "orphan"):
            assert p1[col] == nl[col] == p2[col], f"{col}: {where}"
        if nl["state"] == "LISTEN":
            # sock_diag's Send-Q of a listener is its backlog; /proc prints 0
            assert p1["send_q"] == 0 and nl["send_q"] in (4, 16), where
        else:
            assert p1["send_q"] == nl["send_q"] == p2["send_q"], f"send_q: {where}"
        kind = nl["timer"]["kind"]
        assert p1["timer"]["kind"] == kind == p2["timer"]["kind"], f"timer: {where}"
        if kind == "probe":
            continue  # the zero-window probe timer re-arms between the reads
        assert p1["timer"]["retransmits"] == nl["timer"]["retransmits"], where
        exp = nl["timer"]["expires_ms"]
        # /proc truncates to whole ticks; time only runs down between reads
        assert p2["timer"]["expires_ms"] - TICK_MS <= exp < p1["timer"]["expires_ms"] + TICK_MS, \
            f"expires: /proc {p1['timer']} then {p2['timer']}, sock_diag {nl['timer']}: {where}"
        # what /proc cannot say
        assert p1["cookie"] == 0 and p1["shutdown"] is None
    cookies = [r["cookie"] for r in diag.values()]
    assert all(cookies) and len(set(cookies)) == len(cookies)


def test_manifest_is_what_both_list(mix):
    ns, _, manifest = mix
    diag = _index(_read_inside(ns)["netlink"])
    for m in manifest:
        key = _manifest_key(m)
        assert key in diag, m["role"]
        assert (diag[key]["state"], diag[key]["inode"], diag[key]["timewait_type"]) == \
            (m["state"], m["inode"], m["timewait_type"]), m["role"]


def test_proc_pid_net_reads_the_namespace_from_outside(mix):
    """The fallback for namespaces that cannot be entered: /proc/PID/net."""
    from tcplinger.collect.procfs import read_sockets

    ns, pid, manifest = mix
    assert _keys(read_sockets(Path(f"/proc/{pid}/net"))) == {_manifest_key(m) for m in manifest}


def test_setns_thread_sees_namespace_through_thread_self(mix):
    """What kernel.py's docstring says about /proc after setns()."""
    from tcplinger.collect.kernel import read_kernel_context
    from tcplinger.collect.procfs import read_sockets

    ns, _, manifest = mix
    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                    "net.ipv4.tcp_fin_timeout=33"], check=True)
    libc = ctypes.CDLL(None, use_errno=True)
    seen: dict = {}

    def inside():
        back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                seen["error"] = os.strerror(ctypes.get_errno())
                return
            try:
                seen["thread"] = _keys(read_sockets(Path("/proc/thread-self/net")))
                seen["process"] = _keys(read_sockets(Path("/proc/net")))
                seen["ctx"] = read_kernel_context(
                    proc_net=Path("/proc/thread-self/net"))
                seen["ctx_default_net"] = read_kernel_context()
            finally:
                libc.setns(back, CLONE_NEWNET)
            seen["after"] = read_kernel_context().sysctls["tcp_fin_timeout"]
        finally:
            os.close(target)
            os.close(back)

    t = threading.Thread(target=inside)
    t.start()
    t.join(30)
    assert "error" not in seen, seen.get("error")
    host_fin = read_kernel_context().sysctls["tcp_fin_timeout"]
    mix_keys = {_manifest_key(m) for m in manifest}
    assert seen["thread"] == mix_keys  # the namespace's sockets
    assert not seen["process"] & mix_keys  # /proc/net: still the host's
    ctx = seen["ctx"]
    assert ctx.sysctls["tcp_fin_timeout"] == 33 != host_fin
    assert "tcp_max_orphans" not in ctx.sysctls  # global-only: absent in a child
    assert ctx.sockstat.tw == sum(1 for m in manifest if m["timewait_type"])
    # sysctls follow the thread even when proc_net is left to its default
    assert seen["ctx_default_net"].sysctls["tcp_fin_timeout"] == 33
    assert seen["after"] == host_fin
