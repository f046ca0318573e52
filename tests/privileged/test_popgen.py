"""Smoke test of the benchmark population generator (bench/popgen.py).

A small population must show exactly the planned state counts in `ss -tan`,
be built without a single RST or SYN retransmission (the "vanishing" peers
must be silent, the 4-tuples must not collide), and leave neither its
namespace nor its holder processes behind - after a clean exit, an
exception, and Ctrl-C.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from harness import default_sigint

pytestmark = pytest.mark.privileged(needs=("nstat",))  # root for TCP_REPAIR too

POPGEN_PATH = Path(__file__).resolve().parents[2] / "bench" / "popgen.py"


def _load_popgen():
    spec = importlib.util.spec_from_file_location("popgen", POPGEN_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("popgen", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


popgen = _load_popgen()


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it holds no sockets any more.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _counters(netns: str, *names: str) -> dict[str, int]:
    out = subprocess.run(["ip", "netns", "exec", netns, "nstat", "-asz", *names],
                         capture_output=True, text=True, check=True).stdout
    values = dict.fromkeys(names, 0)
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] in values:
            values[fields[0]] = int(fields[1])
    return values


def _assert_gone(netns: str, pids: tuple[int, ...]) -> None:
    assert netns not in _namespaces()
    assert [pid for pid in pids if _alive(pid)] == []


@pytest.mark.parametrize("mix", [
    # more CLOSE-WAIT than FIN-WAIT-2: half-closed pairs plus CLOSE-WAIT solos
    "established=0.4,close-wait=0.25,fin-wait-2=0.15,time-wait=0.15,listen=0.05",
    # more FIN-WAIT-2 than CLOSE-WAIT, an odd ESTAB count (one solo), no TIME-WAIT
    "established=0.3005,close-wait=0.1,fin-wait-2=0.5995,listen=0.0005",
])
def test_counts_match_ss_and_everything_is_removed(mix):
    with popgen.Population(2000, mix) as pop:
        netns, pids = pop.netns, pop.holder_pids
        assert netns.startswith("tl-bench-") and netns in _namespaces()
        assert len(pids) >= 1 and all(_alive(pid) for pid in pids)
        expected = pop.expected()
        assert sum(expected.values()) == 2000
        assert popgen.ss_counts(netns) == Counter(expected)
        # No RST was sent (vanishing is silent) and no SYN was retransmitted
        # (a SYN into a reused 4-tuple would be). TcpEstabResets is no use
        # here: tcp_set_state() counts every ESTABLISHED/CLOSE_WAIT -> CLOSE,
        # also a vanishing one that sends nothing.
        quiet = _counters(netns, "TcpOutRsts", "TcpExtTCPSynRetrans")
        assert quiet == {"TcpOutRsts": 0, "TcpExtTCPSynRetrans": 0}
        time.sleep(1.0)  # a late RST or a fin timeout would show up here
        assert popgen.ss_counts(netns) == Counter(expected)
        assert pop.problems() == []
    _assert_gone(netns, pids)


def test_cleanup_after_an_exception():
    with pytest.raises(RuntimeError, match="boom"):
        with popgen.Population(300, "established=0.5,time-wait=0.5") as pop:
            netns, pids = pop.netns, pop.holder_pids
            raise RuntimeError("boom")
    _assert_gone(netns, pids)


def test_cleanup_after_ctrl_c():
    # Ctrl-C reaches the whole foreground process group: send SIGINT to the
    # group, as a terminal would; holders ignore it and the parent unwinds.
    proc = subprocess.Popen([sys.executable, str(POPGEN_PATH), "--sockets", "500", "--hold", "-v"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=default_sigint)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("holding"):
                break
        netns = re.search(r"^(tl-bench-\S+):", "".join(lines), re.M).group(1)
        pids = tuple(int(p) for p in re.findall(r"pid (\d+)", "".join(lines)))
        assert netns in _namespaces() and pids
        os.killpg(proc.pid, signal.SIGINT)
        rest = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:  # failed above: SIGTERM still cleans up, SIGKILL would not
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert "interrupted" in rest and proc.returncode == 0
    _assert_gone(netns, pids)


@pytest.mark.slow
def test_time_wait_population_is_kept_past_the_timewait_length():
    # TIME-WAIT lasts TCP_TIMEWAIT_LEN (60 s) plus timer-wheel rounding; the
    # holders must re-create each batch as it expires.
    with popgen.Population(600, "established=0.5,time-wait=0.5", batch=64) as pop:
        expected = Counter(pop.expected())
        assert popgen.ss_counts(pop.netns) == expected
        time.sleep(popgen.TIMEWAIT_LEN + 12)
        # A batch being re-created at this instant is briefly in other states
        # (ESTAB, FIN-WAIT-2, LAST-ACK): look a few times.
        for _ in range(10):
            seen = popgen.ss_counts(pop.netns)
            if seen == expected:
                break
            time.sleep(0.3)
        assert seen == expected
