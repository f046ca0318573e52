#!/usr/bin/env python3
"""Record a node with pods for tests/unit/test_report_groups.py.

Run as root from the repository root::

    python tests/data/pods/record.py        # writes tests/data/pods/node.json

It builds six pod-like namespaces with bench/podfarm.py (a private node:
its own PID, mount and network namespace; everything is removed after):

==========  ===========================================================
pod 0       python3 podapp.py, 12 CLOSE_WAIT (more than the others)
pod 1       the same app renamed ``worker`` (PR_SET_NAME): another program
pods 2, 3   python3 podapp.py, 5 CLOSE_WAIT
pods 4, 5   quiet: the listener and the ESTABLISHED pairs only
==========  ===========================================================

(each with a listener and 20 ESTABLISHED pairs), and records, per pod, as
the kernel printed them, read from inside the pod's namespace (``ip netns
exec``): ``/proc/net/{tcp,tcp6,sockstat,sockstat6,netstat}`` and every
file under ``/proc/sys/net/ipv4`` and ``/proc/sys/net/netfilter`` that
tcplinger reads; the processes holding its sockets (pid, comm, cmdline, fd
-> socket inode from ``/proc/PID/fd``, open files, RLIMIT_NOFILE from
``/proc/PID/limits``); ``ss -tanpH`` as the oracle; and the pod's names as
podfarm wrote them into containerd's bundle (pod, container, image).  The
recording shares no code with tcplinger.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "bench"))

NET_FILES = ("tcp", "tcp6", "sockstat", "sockstat6", "netstat")
SYS_DIRS = ("net/ipv4", "net/netfilter")
SYS_NAMES = ("tcp_fin_timeout", "tcp_keepalive_time", "tcp_keepalive_intvl",
             "tcp_keepalive_probes", "tcp_max_tw_buckets", "tcp_max_orphans",
             "tcp_orphan_retries", "tcp_retries2", "tcp_tw_reuse", "ip_local_port_range",
             "tcp_mem", "tcp_timestamps", "tcp_syn_retries", "tcp_synack_retries")

#: Runs inside a pod's namespace: its /proc/net and /proc/sys/net files as JSON.
DUMP = r"""
import json, os, sys
net, sysdirs, names = json.loads(sys.argv[1])
out = {}
for n in net:
    out["net/" + n] = open("/proc/net/" + n).read()
for d in sysdirs:
    base = "/proc/sys/" + d
    for n in sorted(os.listdir(base)) if os.path.isdir(base) else ():
        if n in names or n.startswith("nf_conntrack_tcp_timeout") or n in ("nf_conntrack_max", "nf_conntrack_count"):
            out["sys/" + d + "/" + n] = open(base + "/" + n).read()
print(json.dumps(out))
"""


def _owners(inode: int) -> dict:
    """Processes in the namespace ``inode`` and the sockets they hold."""
    procs, owners = {}, {}
    for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino != inode:
                continue
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            fds = os.listdir(f"/proc/{pid}/fd")
            soft = None
            for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
                if line.startswith("Max open files"):
                    value = line.split()[3]
                    soft = None if value == "unlimited" else int(value)
        except OSError:
            continue
        procs[pid] = {"comm": comm, "cmdline": cmdline, "open_fds": len(fds), "soft_limit": soft}
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owners.setdefault(target[8:-1], []).append({"pid": pid, "fd": int(fd)})
    return {"processes": procs, "owners": owners}


def inside(out: Path) -> int:
    pods = []
    for name in sorted(os.listdir("/run/netns")):
        if not name.startswith("tl-pod-"):
            continue
        inode = os.stat(f"/run/netns/{name}").st_ino
        files = json.loads(subprocess.run(
            ["ip", "netns", "exec", name, sys.executable, "-c", DUMP,
             json.dumps([NET_FILES, SYS_DIRS, SYS_NAMES])],
            capture_output=True, text=True, check=True).stdout)
        ss = subprocess.run(["ss", "-N", name, "-tanpH"], capture_output=True, text=True,
                            check=True).stdout
        pods.append({"name": name, "inode": inode, "files": files, "ss": ss, **_owners(inode)})
    out.write_text(json.dumps(pods))
    return 0


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--inside":
        return inside(Path(sys.argv[2]))
    from podfarm import PYTHON, Spec, run

    with tempfile.TemporaryDirectory(prefix="tl-pods-rec-") as tmp:
        dump = Path(tmp) / "inside.json"
        spec = Spec(pods=4, quiet=2, variants={"0": {"close_wait": 12}, "1": {"comm": "worker"}},
                    commands=[{"key": "record", "argv": [PYTHON, str(Path(__file__).resolve()),
                                                         "--inside", str(dump)]}])
        farm = run(spec, Path(tmp))
        if farm["runs"][0]["code"] != 0:
            raise SystemExit(Path(farm["runs"][0]["err"]).read_text())
        if farm["changed_during_runs"]:
            raise SystemExit(f"sockets changed while recording: {farm['changed_during_runs']}")
        recorded = {p["name"]: p for p in json.loads(dump.read_text())}
    pods = []
    for p in farm["pods"]:
        ns, name = p["pod"].split("/")
        rec = recorded[p["name"]]
        rec["workload"] = {"runtime": "containerd", "id": p["cid"][:12], "name": "app",
                           "image": "registry.example/shop/app:1.4", "pod_namespace": ns,
                           "pod_name": name, "pod_uid": p["uid"]}
        rec["app_pid"] = p["pid"]
        pods.append(rec)
    (HERE / "node.json").write_text(json.dumps({"pods": pods}, indent=1) + "\n")
    print(f"recorded {len(pods)} pods in {HERE / 'node.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
