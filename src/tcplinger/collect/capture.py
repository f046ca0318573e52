"""A bounded live capture in one network namespace, written to a pcap
file for wire/ to analyse.

tcpdump does the capturing (docs/wire.md, "Why tcpdump": measured against
a Python reader on an AF_PACKET socket with a kernel BPF filter, it kept
every packet at rates where the Python reader dropped, and it understands
the whole pcap-filter(7) language). It runs in the namespace through
``nsenter --net=PATH`` (util-linux), with ``--immediate-mode`` and ``-U``
(without them the last packets can be lost when it is stopped, see
KERNEL-NOTES), ``-Z root`` (a change of user would clear the parent-death
signal, prctl(2)), and is stopped with SIGINT by its pid, which flushes
the file; its closing lines give the kernel's drop count.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

#: Bytes kept of each packet: every header up to the end of TCP's options
#: (Ethernet or SLL2 20 + IPv6 40 with an extension header + TCP 60).
SNAPLEN = 200


class CaptureToolMissing(RuntimeError):
    pass


class CaptureFailed(RuntimeError):
    pass


class NoSuchInterface(CaptureFailed):
    """tcpdump found no interface of that name in the namespace."""

    def __init__(self, interface: str, netns_path: str):
        super().__init__(f"no interface {interface!r} in {netns_path}")
        self.interface, self.netns_path = interface, netns_path


@dataclass(frozen=True)
class CaptureStats:
    path: Path
    netns_path: str
    seconds: float
    captured: int | None  # tcpdump's "packets captured"
    dropped: int | None  # "packets dropped by kernel"
    end_t: float | None = None  # when the capture stopped (time.time())
    start_t: float | None = None  # when tcpdump said it was listening


def _prefix() -> list[str]:
    """``setpriv --pdeathsig KILL``: tcpdump dies with us even on SIGKILL."""
    return ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []


def capture(netns_path: str, out: Path, seconds: float, filter_text: str | None = None,
            interface: str = "any", snaplen: int = SNAPLEN) -> CaptureStats:
    """Capture ``seconds`` of TCP in the namespace at ``netns_path`` into
    ``out``; returns tcpdump's own counts."""
    if shutil.which("tcpdump") is None:
        raise CaptureToolMissing("tcpdump")
    expr = "tcp" if not filter_text else f"tcp and ({filter_text})"
    argv = ["nsenter", f"--net={netns_path}", *_prefix(), "tcpdump", "-i", interface, "-n",
            "-Z", "root", "-U", "--immediate-mode", "-s", str(snaplen), "-w", str(out), expr]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # "data link type ..." may come first; "listening on" means the
        # socket is bound and no packet from now on is missed
        seen = ""
        for _ in range(5):
            line = proc.stderr.readline().decode(errors="replace")
            seen += line
            if "listening" in line or not line:
                break
        if "listening" not in seen:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
            # pcap_activate: PCAP_ERROR_NO_SUCH_DEVICE; a number is an index
            # into `tcpdump -D`'s list (tcpdump(8), -i), "Invalid adapter index"
            if "No such device" in seen or "Invalid adapter index" in seen:
                raise NoSuchInterface(interface, netns_path)
            raise CaptureFailed(seen.strip().splitlines()[-1] if seen.strip()
                                else f"exit {proc.returncode}")
        t0 = time.monotonic()
        start_t = time.time()
        while proc.poll() is None and time.monotonic() - t0 < seconds:
            time.sleep(min(0.2, max(0.0, seconds - (time.monotonic() - t0))))
        elapsed = time.monotonic() - t0
        end_t = time.time()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stderr and not proc.stderr.closed:
            proc.stderr.close()
    text = err.decode(errors="replace")
    return CaptureStats(out, netns_path, round(elapsed, 3), _count(text, "captured"),
                        _count(text, "dropped by kernel"), end_t, start_t)


def _count(text: str, what: str) -> int | None:
    """A number from tcpdump's closing lines ("12 packets captured").

    >>> _count("12 packets captured\\n0 packets dropped by kernel", "dropped by kernel")
    0
    """
    m = re.search(r"(\d+) packets? " + re.escape(what), text)
    return int(m.group(1)) if m else None
