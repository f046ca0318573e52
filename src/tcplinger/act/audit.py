"""The audit log: one JSON object per line for every action that changes
the system (``kill --yes``, ``tune --apply``, ``tune --revert``).

Each action writes a ``*.start`` record before touching anything (what is
about to be done, and by whom) and a ``*.result`` record after, both with
the same ``run`` id, so an interrupted action still leaves its intent in
the log. If the log cannot be opened for appending, the action is refused:
nothing is done that would not be recorded.

Record (docs/act.md, "Audit log")::

    {"event": "kill.result", "run": "5f0c2a9e1b7d4e21", "time": "2025-01-31T10:00:00.123+00:00",
     "who": {"uid": 0, "user": "root", "pid": 4242, "argv": ["tcplinger", "kill", ...],
             "loginuid": 1000, "sudo_user": "alice"},
     ...event fields...}

Default path: ``/var/log/tcplinger/audit.jsonl`` for root, else
``$XDG_STATE_HOME/tcplinger/audit.jsonl`` (``~/.local/state/...``).
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import secrets
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

from ..fsutil import NotARegularFile, kind_of

ROOT_LOG = Path("/var/log/tcplinger/audit.jsonl")


def default_path(uid: int, env: Mapping[str, str]) -> Path:
    """Where the log goes when ``--audit-log`` is not given.

    >>> default_path(0, {})
    PosixPath('/var/log/tcplinger/audit.jsonl')
    >>> default_path(1000, {"HOME": "/home/a"})
    PosixPath('/home/a/.local/state/tcplinger/audit.jsonl')
    >>> default_path(1000, {"HOME": "/home/a", "XDG_STATE_HOME": "/s"})
    PosixPath('/s/tcplinger/audit.jsonl')
    """
    if uid == 0:
        return ROOT_LOG
    state = env.get("XDG_STATE_HOME") or os.path.join(env.get("HOME") or "~", ".local", "state")
    return Path(os.path.expanduser(state)) / "tcplinger" / "audit.jsonl"


@dataclass(frozen=True)
class Who:
    uid: int
    user: str
    pid: int
    argv: tuple[str, ...]
    loginuid: int | None = None  # the login session's uid: survives sudo and su
    sudo_user: str | None = None

    def to_json(self) -> dict:
        out = asdict(self)
        out["argv"] = list(self.argv)
        return out


def who_am_i(env: Mapping[str, str] | None = None) -> Who:
    env = os.environ if env is None else env
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    loginuid = None
    try:
        value = int(Path("/proc/self/loginuid").read_text().strip())
        loginuid = None if value == 0xFFFFFFFF else value  # unset: (uid_t)-1
    except (OSError, ValueError):
        pass
    return Who(uid=uid, user=user, pid=os.getpid(), argv=tuple(sys.argv),
               loginuid=loginuid, sudo_user=env.get("SUDO_USER") or None)


def new_run_id() -> str:
    return secrets.token_hex(8)


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="milliseconds")


def record(event: str, run: str, who: Who, when: str, **fields) -> dict:
    """One log line as a dict (pure).

    >>> w = Who(0, "root", 1, ("tcplinger",))
    >>> sorted(record("kill.start", "ab", w, "t", n=1))
    ['event', 'n', 'run', 'time', 'who']
    """
    return {"event": event, "run": run, "time": when, "who": who.to_json(), **fields}


class AuditError(OSError):
    """The log cannot be written: the action must not happen."""


class AuditLog:
    """An append-only JSON-lines file, opened before acting.

    Each record is one ``write()`` on an O_APPEND descriptor under an
    exclusive flock, then fsync'd: concurrent tcplinger runs never
    interleave lines, and a record is on disk before the next step.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # O_NONBLOCK: a FIFO must not hang the act; only a regular file
            # keeps a record (/dev/null would accept and lose every line)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                               | os.O_NONBLOCK, 0o600)
            kind = kind_of(os.fstat(self._fd).st_mode)
            if kind is not None:
                os.close(self._fd)
                raise NotARegularFile(self.path, kind)
            os.set_blocking(self._fd, True)
        except OSError as exc:
            raise AuditError(exc.errno, f"cannot write the audit log {self.path}:"
                                        f" {exc.strerror or exc}") from exc

    def append(self, rec: dict) -> None:
        line = (json.dumps(rec, separators=(",", ":"), default=str) + "\n").encode()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                view = memoryview(line)
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
                os.fsync(self._fd)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        except OSError as exc:
            raise AuditError(exc.errno, f"cannot write the audit log {self.path}:"
                                        f" {exc.strerror or exc}") from exc

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "AuditLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AuditedRun:
    """One act in the log: ``ACT.start`` before anything is changed and
    ``ACT.result`` after, under one run id and one caller (kill, tune's
    apply and revert)."""

    def __init__(self, log: AuditLog, act: str, env: Mapping[str, str]):
        self.log, self.act = log, act
        self.id = new_run_id()
        self.who = who_am_i(env)

    def start(self, **fields) -> str:
        """Record the intent; returns its time."""
        when = now_iso()
        self.log.append(record(f"{self.act}.start", self.id, self.who, when, **fields))
        return when

    def result(self, **fields) -> None:
        self.log.append(record(f"{self.act}.result", self.id, self.who, now_iso(), **fields))


def open_log(path: Path | None, env: Mapping[str, str]) -> AuditLog:
    """The log at ``path``, or this user's default (:func:`default_path`);
    raises AuditError: an act that could not be recorded must not happen."""
    return AuditLog(path or default_path(os.geteuid(), env))


def read(path: Path) -> list[dict]:
    """Every record of a log (tests, ``tcplinger`` tooling)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
