"""TCP state changes from the kernel's tracepoints, through a private
tracefs instance.

The source of exact state-change times (DESIGN.md: the most trusted age).
The lines are parsed by collect/trace_events.py (pure); :class:`TraceSession`
is the I/O: it creates ``instances/tl-<purpose>-<pid>`` (never the global
buffer, which other tools use), selects the ``mono`` trace clock (so event
times are ``time.monotonic()`` seconds), enables ``sock:inet_sock_set_state``
and ``tcp:tcp_destroy_sock`` (and any other event asked for), optionally
with a kernel-side filter (trace_events.port_filter), reads ``trace_pipe``
on a thread, counts events lost to ring-buffer overruns
(``per_cpu/cpuN/stats``) and removes the instance on :meth:`close`.
Instances left by dead processes (``tl-*-<pid>`` whose pid is gone) are
removed when a session starts (:func:`remove_stale_instances`).
"""

from __future__ import annotations

import errno
import os
import re
import select
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from .kernel import _read as read_text
from .trace_events import TraceEvent, lost_events, parse_line, parse_stats

#: Where tracefs is, in the order tried (the second is the pre-4.1 path).
TRACEFS_PATHS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))

#: The events tcplinger needs: every state change, and the cookie at destroy.
STATE_EVENTS = ("sock/inet_sock_set_state", "tcp/tcp_destroy_sock")

# ---- the filesystem -------------------------------------------------------------

class TracefsUnavailable(OSError):
    """No tracefs (not mounted and cannot be mounted, not root, or an event
    missing): fall back to sock_diag polling."""


def find_tracefs(mount: bool = True) -> Path:
    """The tracefs root, mounting it on /sys/kernel/tracing if it is not
    mounted (mount(8) -t tracefs). Raises TracefsUnavailable."""
    for path in TRACEFS_PATHS:
        if (path / "instances").is_dir():
            return path
    if mount and os.geteuid() == 0 and TRACEFS_PATHS[0].is_dir():
        import subprocess  # only here: ~5 ms of every report's start otherwise (issue 16)

        done = subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS_PATHS[0])],
                              capture_output=True, text=True)
        if done.returncode == 0 and (TRACEFS_PATHS[0] / "instances").is_dir():
            return TRACEFS_PATHS[0]
        raise TracefsUnavailable(errno.ENODEV, "cannot mount tracefs: "
                                 + (done.stderr.strip() or f"mount exited {done.returncode}"))
    raise TracefsUnavailable(errno.ENODEV, "tracefs is not mounted"
                             + ("" if os.geteuid() == 0 else " (and mounting it needs root)"))


_INSTANCE = re.compile(r"^tl-(?P<purpose>[A-Za-z0-9_.-]+)-(?P<pid>\d+)$")


def instance_name(purpose: str, pid: int | None = None) -> str:
    """``tl-<purpose>-<pid>``: the pid tells later runs whether the owner lives.

    >>> instance_name("lab-3fa2c1", 4242)
    'tl-lab-3fa2c1-4242'
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", purpose):
        raise ValueError(f"bad tracefs instance purpose {purpose!r}")
    return f"tl-{purpose}-{os.getpid() if pid is None else pid}"


def instance_owner(name: str) -> int | None:
    """The pid in an instance name made by :func:`instance_name`.

    >>> instance_owner("tl-lab-3fa2c1-4242"), instance_owner("perf-tool")
    (4242, None)
    """
    m = _INSTANCE.match(name)
    return int(m.group("pid")) if m else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_instance(path: Path) -> bool:
    """Disable its events and remove the instance directory (rmdir is how
    tracefs deletes one; it fails with EBUSY while trace_pipe is open)."""
    try:
        (path / "tracing_on").write_text("0")
    except OSError:
        pass
    for attempt in range(50):
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                return False
            time.sleep(0.02)
    return False


def remove_stale_instances(root: Path | None = None, prefix: str = "tl-") -> list[str]:
    """Remove ``tl-*-<pid>`` instances whose pid no longer runs; their names."""
    try:
        root = root or find_tracefs(mount=False)
    except TracefsUnavailable:
        return []
    removed = []
    try:
        entries = list((root / "instances").iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        pid = instance_owner(entry.name)
        if pid is not None and not _alive(pid) and remove_instance(entry):
            removed.append(entry.name)
    return removed


class TraceSession:
    """A private tracefs instance with TCP events on, read on a thread.

    ``on_event`` is called (on the reader thread) with every parsed event;
    without it, events are kept in :attr:`events`. Use as a context manager,
    or call :meth:`start` and :meth:`close` (which always removes the
    instance).

    ``filter`` is applied in the kernel to every event enabled (each of
    them has ``sport``/``dport`` fields), so a busy host does not flood
    the buffer; ``buffer_kb`` is the per-CPU ring size.
    """

    def __init__(self, purpose: str, *, events: Iterable[str] = STATE_EVENTS,
                 filter: str | None = None, buffer_kb: int = 2048,
                 on_event: Callable[[TraceEvent], None] | None = None,
                 root: Path | None = None, keep_raw: bool = False, fields: bool = False,
                 max_lines_per_s: int | None = None,
                 on_chunk: Callable[[bytes], None] | None = None):
        self.purpose = purpose
        self.event_names = tuple(events)
        self.filter = filter
        self.buffer_kb = buffer_kb
        self.on_event = on_event
        self._root = root
        self.keep_raw = keep_raw
        self.raw: list[str] = []  # every line read, when keep_raw (fixtures)
        self.fields_option = fields
        # A cap on the lines read a second, so a storm of events cannot take
        # a whole core: beyond it the ring buffer overruns and lost()
        # counts exactly what was dropped (per_cpu/cpuN/stats "overrun").
        self.max_lines_per_s = max_lines_per_s
        # Raw complete lines (bytes, "\n"-separated) instead of parsed events:
        # for a consumer that parses in bulk (app/watcher.py); it must
        # count the "[LOST N EVENTS]" notes itself (add to lost_in_pipe).
        self.on_chunk = on_chunk
        self.path: Path | None = None
        #: the instance's per_cpu/cpuN/stats files (lost()), listed once
        self._stats: list[str] | None = None
        self.events: list[TraceEvent] = []
        self.lost_in_pipe = 0
        self.stale_removed: list[str] = []
        self._fd: int | None = None
        self._stop_r, self._stop_w = None, None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        #: time.monotonic() when recording was switched on, and off (pause())
        self.on_at: float | None = None
        self.off_at: float | None = None

    # -- life cycle ---------------------------------------------------------
    def start(self) -> "TraceSession":
        root = self._root or find_tracefs()
        self.stale_removed = remove_stale_instances(root)
        path = root / "instances" / instance_name(self.purpose)
        try:
            path.mkdir()
        except FileExistsError:
            remove_instance(path)
            path.mkdir()
        except OSError as exc:
            raise TracefsUnavailable(exc.errno, f"cannot create tracefs instance: {exc.strerror}")
        self.path = path
        self._stats = None
        try:
            self._configure(path)
            self._fd = os.open(path / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            self._stop_r, self._stop_w = os.pipe()
            self.on_at = time.monotonic()
            (path / "tracing_on").write_text("1")
            self._thread = threading.Thread(target=self._read_loop, daemon=True,
                                            name=f"tracefs {path.name}")
            self._thread.start()
        except BaseException:
            self.close()
            raise
        return self

    def _configure(self, path: Path) -> None:
        (path / "tracing_on").write_text("0")
        # mono = CLOCK_MONOTONIC = time.monotonic() (kernel/trace/trace.c trace_clocks[]).
        (path / "trace_clock").write_text("mono")
        (path / "buffer_size_kb").write_text(str(self.buffer_kb))
        if self.fields_option:  # raw fields, with skaddr (see parse_line)
            (path / "options" / "fields").write_text("1")
        for name in self.event_names:
            ev = path / "events" / name
            if not (ev / "enable").exists():
                raise TracefsUnavailable(errno.ENOENT, f"no tracepoint {name} in this kernel")
            if self.filter:
                (ev / "filter").write_text(self.filter)
            (ev / "enable").write_text("1")

    def pause(self) -> float:
        """Stop recording (tracing_on 0: the ring buffer takes no more
        events, the reader still drains what it holds); returns the
        time.monotonic() at that moment. A rate over a window needs both
        ends: events keep arriving until the instance is removed, which a
        loaded host delays (nginx's connects under ab read 0.62 of the
        active closes over a window measured from after start() to before
        close(), 0.5 being the truth)."""
        if self.path is not None and self.off_at is None:
            (self.path / "tracing_on").write_text("0")
            self.off_at = time.monotonic()
        return self.off_at if self.off_at is not None else time.monotonic()

    def close(self) -> None:
        if self._stop_w is not None:
            try:
                os.write(self._stop_w, b"x")
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (self._fd, self._stop_r, self._stop_w):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fd = self._stop_r = self._stop_w = None
        if self.path is not None:
            remove_instance(self.path)
            self.path = None

    def __enter__(self) -> "TraceSession":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading ------------------------------------------------------------
    def _read_loop(self) -> None:
        buf = b""
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        stopping = False
        try:
            while True:
                ready = dict(poller.poll(200))
                if self._stop_r in ready:
                    stopping = True
                try:
                    chunk = os.read(self._fd, 1 << 16)
                except BlockingIOError:
                    chunk = b""
                if chunk and self.on_chunk is not None:
                    buf += chunk
                    cut = buf.rfind(b"\n") + 1
                    if cut:
                        self.on_chunk(buf[:cut])
                        if self.max_lines_per_s:
                            self._throttle(buf.count(b"\n", 0, cut))
                        buf = buf[cut:]
                    continue
                if chunk:
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for raw in lines:
                        self._line(raw.decode("utf-8", "replace"))
                    if self.max_lines_per_s:
                        self._throttle(len(lines))
                    continue
                if stopping:
                    return
        except BaseException as exc:  # noqa: BLE001 - reported by check()
            self._error = exc

    def _throttle(self, n: int) -> None:
        now = time.monotonic()
        start, count = getattr(self, "_window", (now, 0))
        count += n
        if now - start >= 0.1:
            start, count = now, n
        budget = self.max_lines_per_s * 0.1
        if count >= budget:
            time.sleep(max(0.0, start + 0.1 - now))
            start, count = time.monotonic(), 0
        self._window = (start, count)

    def _line(self, text: str) -> None:
        if self.keep_raw:
            self.raw.append(text)
        ev = parse_line(text)
        if ev is None:
            self.lost_in_pipe += lost_events(text)
            return
        if self.on_event is not None:
            self.on_event(ev)
        else:
            self.events.append(ev)

    def drain(self, settle: float = 0.15) -> None:
        """Wait until events already in the ring are read (trace_pipe wakes
        readers when a page fills or on its poll timeout)."""
        time.sleep(settle)

    def check(self) -> None:
        """Raise the reader thread's exception, if it had one."""
        if self._error is not None:
            raise self._error

    def lost(self) -> int:
        """Events lost so far: ring overruns and drops on every CPU, plus
        the LOST notes the pipe reported."""
        total = self.lost_in_pipe
        if self.path is None:
            return total
        # The watch loop asks twice a sample: the files are listed once
        # (tracefs makes an instance's per_cpu directories for the possible
        # CPUs at its creation) and read with os.read(), not a globbing
        # and TextIOWrapper per CPU (0.20 -> 0.04 ms a call on 2 CPUs).
        if self._stats is None:
            self._stats = [str(p) for p in sorted((self.path / "per_cpu").glob("cpu*/stats"))]
        for stats in self._stats:
            try:
                values = parse_stats(read_text(stats))
            except OSError:
                continue
            total += values.get("overrun", 0) + values.get("dropped events", 0)
        return total


__all__ = ["TraceSession", "TracefsUnavailable", "find_tracefs", "instance_name",
           "instance_owner", "remove_stale_instances", "remove_instance", "STATE_EVENTS"]
