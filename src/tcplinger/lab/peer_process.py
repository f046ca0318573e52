"""The lab's side of a peer process (lab/peer_agent.py): start it in a
namespace, send it commands, collect its replies and events, end it by pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass


class PeerError(RuntimeError):
    """A command the peer could not do; ``errno`` names the system error."""

    def __init__(self, op: str, reply: dict):
        self.reply = reply
        self.errno = reply.get("errno")
        super().__init__(f"{op}: {reply.get('error', 'failed')}")


@dataclass
class PeerEvent:
    name: str  # the peer's name in the run ("client", "server")
    obj: dict


class PeerProcess:
    """One peer in one namespace. ``events`` collects everything the peer
    said without being asked (eof, closed, accepted, error)."""

    def __init__(self, label: str, netns: str, on_event=None, wait_ready: bool = True):
        """Start the peer; with ``wait_ready`` (else call :meth:`ready`)
        wait until it says it is ready. Create it in the thread that ends
        last: its parent-death signal follows the creating thread
        (PR_SET_PDEATHSIG, prctl(2))."""
        self.label = label
        self.netns = netns
        self.on_event = on_event
        self.events: list[dict] = []
        self._replies: dict[int, dict] = {}
        self._cv = threading.Condition()
        self._next = 0
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-m", "tcplinger.lab.peer_agent",
             "--parent", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": package_root()}, text=True, bufsize=1)
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"peer {label}")
        self._reader.start()
        if wait_ready:
            self.ready()

    def ready(self) -> None:
        """Wait until the peer says it is ready; kill it and raise if it
        does not."""
        if self.wait_event("ready", timeout=20) is None:
            err = self._stderr_tail()
            self.kill()
            raise RuntimeError(f"peer {self.label} did not start in {self.netns}: {err}")

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            with self._cv:
                if "event" in obj:
                    self.events.append(obj)
                else:
                    self._replies[obj.get("id")] = obj
                self._cv.notify_all()
            if "event" in obj and self.on_event is not None:
                self.on_event(PeerEvent(self.label, obj))
        with self._cv:
            self._cv.notify_all()

    def _stderr_tail(self) -> str:
        try:
            return (self.proc.stderr.read() or "").strip().splitlines()[-1:][0]
        except (OSError, ValueError, IndexError):
            return "no output"

    def wait_event(self, kind: str, name: str | None = None, timeout: float = 10.0,
                   after: int = 0) -> dict | None:
        """The first ``kind`` event (for socket ``name``) among events[after:]."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for ev in self.events[after:]:
                    if ev.get("event") == kind and (name is None or ev.get("name") == name):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self._cv.wait(min(left, 0.5))

    def call(self, op: str, *, wait: float = 30.0, check: bool = True, **args) -> dict:
        """Send one command and wait up to ``wait`` seconds for its reply
        (``args`` go to the peer; a ``timeout`` among them is the socket
        call's own)."""
        with self._cv:
            self._next += 1
            cid = self._next
        line = json.dumps({"id": cid, "op": op, **args}) + "\n"
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise RuntimeError(f"peer {self.label} is gone") from None
        deadline = time.monotonic() + wait
        with self._cv:
            while cid not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(f"peer {self.label}: no answer to {op}")
                self._cv.wait(min(left, 0.5))
            reply = self._replies.pop(cid)
        if check and not reply.get("ok"):
            raise PeerError(op, reply)
        return reply

    def exit(self, timeout: float = 5.0) -> float | None:
        """Ask the peer to exit (the kernel closes its sockets as exit(2)
        does); the time it was asked to (it exits right after answering),
        None if it was gone."""
        try:
            reply = self.call("exit", wait=timeout)
        except RuntimeError:
            return None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return reply["t"]

    def kill(self) -> None:
        """End the process by its pid (SIGKILL), and reap it."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass


def package_root() -> str:
    """The directory holding the tcplinger package, for the peer's imports
    (``ip netns exec`` keeps the environment)."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    existing = os.environ.get("PYTHONPATH")
    return root if not existing else root + os.pathsep + existing
