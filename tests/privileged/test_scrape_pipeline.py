"""An exporter scrape of many namespaces makes each namespace's samples as
its snapshot arrives, while the others are still being read (app/scrape.py,
export/prometheus.Preparation), and diagnoses briefly (engine.diagnose
brief); the exposition must be the one the scrape would give if build
made them all after the snapshot, and with the full diagnosis (issue 16).

On the real kernel, on a private node: this file re-runs itself under
``unshare --pid --fork --mount-proc --mount --net`` with a tmpfs on
/run/netns, so ``--all-netns`` sees its own namespaces and nothing of the
machine's other jobs, and everything made goes with the PID namespace,
also when the test fails. Five namespaces ``tl-pipe-<pid>-<i>``, each
with its own tcp_fin_timeout and population (listeners, established
pairs, a half-closed pair, a TIME_WAIT), so samples filed under the wrong
namespace change the text.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
N = 5
FIN_TIMEOUTS = [41 + i for i in range(N)]


@pytest.mark.privileged
def test_pipelined_scrape_is_the_sequential_one():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), TL_PIPE_INNER="1")
    done = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "--mount", "--net",
                           "--propagation", "private", sys.executable, __file__],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.splitlines()[-1])
    # every namespace read (the node's own and the five) was prepared while
    # the scrape read, and build took every one of them ...
    assert got["namespaces"] == N + 1
    assert got["prepared"] == N + 1
    assert got["made_by_build"] == {"pipelined": 0, "sequential": N + 1}
    # ... and gave the text build gives without them, byte for byte
    assert got["same"], got["diff"]
    # its findings (the brief diagnosis) show as the full diagnosis's would
    assert got["same_as_full_diagnosis"]
    assert got["findings"] >= 2 * N  # a close-wait-leak and a half-closed one in each
    # the namespaces' samples differ (a mix-up would show)
    assert sorted(got["fin_timeouts"]) == FIN_TIMEOUTS
    assert got["samples"] > 60 * (N + 1)


def _populate(i: int) -> list:
    """In namespace i: two listeners, i+1 established pairs, a half-closed
    pair (FIN_WAIT2 + CLOSE_WAIT) and a TIME_WAIT."""
    keep = []
    for port in (8000 + i, 9000 + i):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen(16)
        keep.append(s)
    for _ in range(i + 1):
        c = socket.create_connection(("127.0.0.1", 8000 + i))
        keep += [c, keep[0].accept()[0]]
    c = socket.create_connection(("127.0.0.1", 9000 + i))
    a, _ = keep[1].accept()
    c.shutdown(socket.SHUT_WR)  # c FIN_WAIT2, a CLOSE_WAIT
    keep += [c, a]
    c = socket.create_connection(("127.0.0.1", 9000 + i))
    a, _ = keep[1].accept()
    c.close()  # the client closes first: TIME_WAIT once the server closes too
    a.close()
    return keep


def _inner() -> dict:
    from dataclasses import replace

    from tcplinger.app import observation
    from tcplinger.app.scrape import ScrapeOptions, ScrapeSource
    from tcplinger.collect import setns
    from tcplinger.collect.snapshot import Scope
    from tcplinger.diagnose import engine
    from tcplinger.export import exposition, namespace_samples, prometheus

    subprocess.run(["mount", "-t", "tmpfs", "tl-pipe", "/run/netns"], check=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    held = []
    for i in range(N):
        name = f"tl-pipe-{os.getpid()}-{i}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", name, "sh", "-c",
                        f"echo {FIN_TIMEOUTS[i]} > /proc/sys/net/ipv4/tcp_fin_timeout"],
                       check=True)
        held += setns.run_in_netns(f"/run/netns/{name}", _populate, i)
    time.sleep(0.05)  # the FINs' ACKs (loopback: at once)
    limits = prometheus.Limits(top_owners=3, top_destinations=2)
    scrape = ScrapeSource(ScrapeOptions(Scope(all_netns=True)), limits=limits)()

    class Families:  # what exposition.text reads of a registry
        def __init__(self, scrape):
            self.scrape = scrape

        def collect(self):
            return prometheus.build(self.scrape, limits)

    made = []
    add = namespace_samples.add
    namespace_samples.add = lambda *a, **k: (made.append(1), add(*a, **k))[1]
    try:
        piped = exposition.text(Families(scrape)).decode()
        by_build = len(made)
        sequential = exposition.text(Families(replace(scrape, prepared={}))).decode()
    finally:
        namespace_samples.add = add
    # the scrape's findings are the brief diagnosis's: the full one's give
    # the same text
    full = engine.diagnose(scrape.namespaces, sysctl_files=observation.read_sysctl_files(),
                           sample_limit=0)
    with_full = exposition.text(Families(replace(scrape, findings=full))).decode()
    lines = piped.splitlines()
    diff = [(a, b) for a, b in zip(lines, sequential.splitlines()) if a != b][:5]
    return {"namespaces": len(scrape.namespaces), "prepared": len(scrape.prepared),
            "made_by_build": {"pipelined": by_build, "sequential": len(made) - by_build},
            "same": piped == sequential, "diff": diff, "samples": len(lines),
            "same_as_full_diagnosis": piped == with_full,
            "findings": sum(x.startswith("tcplinger_finding{") for x in lines),
            "fin_timeouts": [int(float(x.rsplit(" ", 1)[1])) for x in lines
                             if x.startswith("tcplinger_sysctl{") and "tcp_fin_timeout" in x
                             and 'netns="tl-pipe-' in x]}


if __name__ == "__main__" and os.environ.get("TL_PIPE_INNER") == "1":
    print(json.dumps(_inner()))
