"""The namespace of a benchmark population (bench/popgen.py): made with a
private TCP established hash when asked, its sysctls, its sockets counted
with ss, and stale ones of dead runs removed."""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Callable

# popgen_plan makes tcplinger importable from a checkout (src/) as well
from popgen_plan import Plan, PopulationError, parse_count

from tcplinger.collect.setns import unshare

NETNS_PREFIX = "tl-bench-"
NETNS_DIR = Path("/run/netns")


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def namespace_sysctls(plan: Plan) -> dict[str, str]:
    """sysctls set inside the namespace (all per-netns on this kernel)."""
    return {
        "net.ipv4.ip_local_port_range": "1024 65535",
        "net.core.somaxconn": "65535",
        # also counts orphaned FIN-WAIT-2 minisockets and the overlap while refreshing
        "net.ipv4.tcp_max_tw_buckets": str(max(262144, 2 * plan.total.time_wait + 65536)),
        "net.ipv4.tcp_tw_reuse": "0",
    }


def netns_exec(netns: str, *argv: str) -> list[str]:
    """``ip netns exec NETNS argv...`` as an argv list."""
    return ["ip", "netns", "exec", netns, *argv]


def ss_counts(netns: str) -> Counter:
    """State column counts of ``ss -tan`` run inside ``netns``."""
    counts: Counter = Counter()
    with subprocess.Popen(netns_exec(netns, "ss", "-tanH"), stdout=subprocess.PIPE, text=True) as p:
        for line in p.stdout:
            counts[line.split(None, 1)[0]] += 1
    if p.returncode:
        raise subprocess.CalledProcessError(p.returncode, p.args)
    return counts


def host_ehash_entries() -> int:
    """Buckets of the TCP established hash this process's namespace uses
    (tcp_ehash_entries, Linux 6.1+; negative when the table is shared)."""
    return abs(int(Path("/proc/sys/net/ipv4/tcp_ehash_entries").read_text()))


def parse_ehash(text: str) -> int | None:
    """``--ehash`` value: ``shared`` -> None, ``host`` -> the host table's
    size, else a bucket count.

    >>> parse_ehash("shared"), parse_ehash("65536")
    (None, 65536)
    """
    if text == "shared":
        return None
    if text == "host":
        return host_ehash_entries()
    n = parse_count(text)
    if not 0 < n <= 2**24:  # proc_tcp_child_ehash_entries: at most 16M
        raise ValueError(f"ehash entries {n}: must be 1..{2**24}")
    return n


def create_netns(name: str, ehash_entries: int | None) -> None:
    """``ip netns add NAME``, optionally with a private TCP established hash.

    A namespace gets its own hash table only if, when it is created, its
    *creator's* namespace has net.ipv4.tcp_child_ehash_entries set (Linux 6.1,
    commit d1e5e6408b30 "tcp: Introduce optional per-netns ehash").  Setting
    that in the host namespace would change every namespace other users
    create meanwhile, so a forked child first enters a throwaway namespace,
    sets it there, creates ours from it, and ``ip netns attach`` pins ours
    by the child's PID; the throwaway namespace dies with the child.
    """
    if ehash_entries is None:
        _run(["ip", "netns", "add", name])
        return
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only syscalls, then _exit
        status = 1
        try:
            os.close(ready_r)
            os.close(done_w)
            for step in range(2):
                unshare()  # the forked child has one thread
                if step == 0:
                    Path("/proc/sys/net/ipv4/tcp_child_ehash_entries").write_text(str(ehash_entries))
            os.write(ready_w, b"1")
            os.read(done_r, 1)
            status = 0
        finally:
            os._exit(status)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise PopulationError("could not create a namespace with a private ehash")
        _run(["ip", "netns", "attach", name, str(pid)])
    finally:
        os.close(ready_r)
        os.close(done_w)  # lets the child exit
        os.waitpid(pid, 0)


def cleanup_stale(log: Callable[[str], None] = print) -> list[str]:
    """Delete ``tl-bench-<pid>-*`` namespaces whose creating process is gone."""
    removed = []
    for path in sorted(NETNS_DIR.glob(NETNS_PREFIX + "*")) if NETNS_DIR.is_dir() else []:
        m = re.fullmatch(re.escape(NETNS_PREFIX) + r"(\d+)-[0-9a-f]+", path.name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            subprocess.run(["ip", "netns", "del", path.name], check=False)
            removed.append(path.name)
            log(f"removed stale namespace {path.name}")
    return removed
