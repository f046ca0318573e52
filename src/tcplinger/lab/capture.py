"""tcpdump on the router's two interfaces, for "who sent what".

``--immediate-mode`` and ``-U`` make tcpdump hand every packet to the
file as it comes (without them the last packets can be lost when it is
stopped: pcap buffering, see tcpdump(1)); it is stopped with SIGINT by
its pid, which flushes and closes the file. Timestamps are
CLOCK_REALTIME; :attr:`Capture.offset` turns them into the monotonic
clock the rest of the lab uses.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .pcap import Segment, read_segments


def pdeathsig_prefix() -> list[str]:
    """``setpriv --pdeathsig KILL`` when util-linux has it: a helper started
    through it dies with the lab even when the lab is SIGKILLed (prctl(2)
    PR_SET_PDEATHSIG survives the exec)."""
    return ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []


class Capture:
    def __init__(self, netns: str, interfaces: dict[str, str], filter: str = "tcp",
                 run_id: str = "x"):
        self.netns = netns
        self.interfaces = interfaces  # label -> interface name
        self.filter = filter
        # Named after the run, so that `lab clean` finds it after a crash.
        self.dir = Path(tempfile.mkdtemp(prefix=f"tl-lab-{run_id}-cap-"))
        self.procs: dict[str, subprocess.Popen] = {}
        self.available = shutil.which("tcpdump") is not None
        self.error: str | None = None if self.available else "tcpdump is not installed"
        # realtime - monotonic, sampled around the capture (NTP slews are
        # far below a millisecond over a lab run).
        self.offset = time.time() - time.monotonic()

    def start(self) -> None:
        if not self.available:
            return
        for label, iface in self.interfaces.items():
            out = self.dir / f"{label}.pcap"
            self.procs[label] = subprocess.Popen(
                # -Z root: tcpdump would otherwise switch to its own user,
                # and a change of uid clears the parent-death signal (prctl(2)).
                ["ip", "netns", "exec", self.netns, *pdeathsig_prefix(), "tcpdump", "-i", iface,
                 "-Z", "root", "-n", "-U",
                 "--immediate-mode", "-s", "128", "-w", str(out), self.filter],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # tcpdump says "listening on ..." once the socket is bound: wait for
        # it so that the first packets are not missed.
        for label, proc in self.procs.items():
            line = proc.stderr.readline().decode(errors="replace")
            if "listening" not in line:
                self.error = f"tcpdump on {self.interfaces[label]}: {line.strip()}"

    def stop(self, not_before: float | None = None) -> dict[str, list[Segment]]:
        """Stop every tcpdump (by pid) and read what they wrote.

        ``not_before`` (monotonic): the observation's end plus a guard, so
        that a segment that crossed the router by the end is in both files:
        its copy has left the router (8.2 ms at most, measured through the
        ipfw bridge on a loaded machine; 0.03 ms when the kernel forwards)
        and tcpdump has read it from its ring (what it has not read when
        SIGINT arrives is lost). All are signalled before any is waited for.
        """
        if not_before is not None:
            time.sleep(max(0.0, not_before - time.monotonic()))
        out: dict[str, list[Segment]] = {}
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
            if proc.stderr:
                proc.stderr.close()
        self.offset = (self.offset + time.time() - time.monotonic()) / 2
        for label in self.procs:
            path = self.dir / f"{label}.pcap"
            try:
                segs = read_segments(path.read_bytes())
            except (OSError, ValueError):
                segs = []
            out[label] = [Segment(s.t - self.offset, s.src, s.sport, s.dst, s.dport, s.seq,
                                  s.ack, s.flag_bits, s.window, s.length) for s in segs]
        self.procs = {}
        return out

    def cleanup(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        self.procs = {}
        shutil.rmtree(self.dir, ignore_errors=True)
