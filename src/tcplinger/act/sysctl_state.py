"""Apply a tune plan to one namespace, remember what was there, put it back.

``/proc/sys/net/...`` resolves to the namespace of the thread that opens it
(net/sysctl_net.c; collect/kernel.py), so reads and writes for another
namespace run on a thread that entered it (collect/setns.run_in_netns).

The state file keeps, per namespace (by inode, with its name), each
changed sysctl's text exactly as it was read before the first change and
the text tcplinger wrote::

    {"version": 1,
     "namespaces": {"4026532267": {
        "netns": {"inode": 4026532267, "name": "blue", "container": null},
        "applied_at": "2025-01-31T10:00:00.000+00:00", "run": "5f0c2a9e1b7d4e21",
        "values": {"net.ipv4.tcp_fin_timeout": {"path": "net/ipv4/tcp_fin_timeout",
                                                "previous": "60", "applied": "30"}}}}}

It is written (atomically: temp file, fsync, rename) *before* any sysctl
changes, so an interrupted apply can still be reverted. Applying twice
keeps the first ``previous``: a revert always returns to what was there
before tcplinger. A revert writes ``previous`` back only where the value is
still what tcplinger wrote; a value changed since by someone else is left
alone and reported (``force`` overrides).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..collect.setns import run_in_netns
from ..fsutil import atomic_write, read_regular
from ..model.files import NotOurFile
from ..model.socket import NetnsRef

ROOT_STATE = Path("/var/lib/tcplinger/tune-state.json")
PROC_SYS = Path("/proc/sys")


def default_state_path(uid: int, env: Mapping[str, str]) -> Path:
    """``/var/lib/tcplinger/tune-state.json`` for root, else under XDG_STATE_HOME.

    >>> default_state_path(0, {})
    PosixPath('/var/lib/tcplinger/tune-state.json')
    """
    if uid == 0:
        return ROOT_STATE
    state = env.get("XDG_STATE_HOME") or os.path.join(env.get("HOME") or "~", ".local", "state")
    return Path(os.path.expanduser(state)) / "tcplinger" / "tune-state.json"


def same_value(a: str, b: str) -> bool:
    """Two sysctl texts mean the same (whitespace between numbers aside).

    >>> same_value("32768\\t60999", "32768 60999\\n"), same_value("60", "30")
    (True, False)
    """
    return a.split() == b.split()


# ---- reading and writing in a namespace ------------------------------------------

@dataclass(frozen=True)
class Change:
    sysctl: str  # dotted name
    path: str  # below /proc/sys
    value: str  # text to write


@dataclass(frozen=True)
class Outcome:
    sysctl: str
    path: str
    before: str | None  # text read before writing (None: unreadable)
    after: str | None  # text read back after writing
    ok: bool
    error: str | None = None  # one line when not ok

    def to_json(self) -> dict:
        return {"sysctl": self.sysctl, "path": self.path, "before": self.before,
                "after": self.after, "ok": self.ok, "error": self.error}


def _read(path: str, proc_sys: Path) -> str:
    return (proc_sys / path).read_text().strip()


def _write(path: str, value: str, proc_sys: Path) -> None:
    # One write of the whole value, as sysctl(8) does: proc_dointvec parses
    # the buffer once (a range is two numbers in one write).
    fd = os.open(proc_sys / path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, (value + "\n").encode())
    finally:
        os.close(fd)


def read_values(paths: Sequence[str], proc_sys: Path = PROC_SYS) -> dict[str, str | None]:
    """Current texts (None where unreadable), in the calling thread's namespace."""
    out: dict[str, str | None] = {}
    for p in paths:
        try:
            out[p] = _read(p, proc_sys)
        except OSError:
            out[p] = None
    return out


def write_values(changes: Sequence[Change], proc_sys: Path = PROC_SYS) -> list[Outcome]:
    """Write each change and read it back, in the calling thread's namespace."""
    out = []
    for c in changes:
        try:
            before = _read(c.path, proc_sys)
        except OSError as exc:
            out.append(Outcome(c.sysctl, c.path, None, None, False, _why(exc)))
            continue
        try:
            _write(c.path, c.value, proc_sys)
            after = _read(c.path, proc_sys)
        except OSError as exc:
            out.append(Outcome(c.sysctl, c.path, before, None, False, _why(exc)))
            continue
        ok = same_value(after, c.value)
        out.append(Outcome(c.sysctl, c.path, before, after, ok,
                           None if ok else f"wrote {c.value!r}, reads back {after!r}"))
    return out


def in_netns(path: str | None, fn, *args):
    """``fn(*args)`` in the namespace at ``path`` (None: the caller's)."""
    if path is None:
        return fn(*args)
    return run_in_netns(path, fn, *args)


def _why(exc: OSError) -> str:
    return f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")


# ---- the state file -------------------------------------------------------------------

class NotTuneState(NotOurFile):
    """A state file that is not one: refused, and never overwritten."""

    def __init__(self, path, reason: str):
        super().__init__(path, "file.not_tune_state", reason)


class StateFile:
    """``required``: a missing file is an error (FileNotFoundError: a
    ``--state-file`` named for a revert), not an empty record."""

    def __init__(self, path: Path, *, required: bool = False):
        self.path = Path(path)
        self.required = required

    def load(self) -> dict:
        try:
            raw = read_regular(self.path, limit=16 << 20)
        except FileNotFoundError:
            if self.required:
                raise
            return {"version": 1, "namespaces": {}}
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise NotTuneState(self.path, "not JSON") from None
        if not isinstance(data, dict) or data.get("version") != 1 \
                or not isinstance(data.get("namespaces", {}), dict):
            raise NotTuneState(self.path, "other JSON")
        data.setdefault("namespaces", {})
        return data

    def save(self, data: dict) -> None:
        if not data.get("namespaces"):
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        atomic_write(self.path, text.encode(), mode=0o600)

    def entry(self, netns: NetnsRef) -> dict | None:
        return self.load()["namespaces"].get(str(netns.inode))


def record_intent(state: StateFile, netns: NetnsRef, changes: Sequence[Change],
                  current: Mapping[str, str | None], when: str, run: str) -> None:
    """Save previous values before anything is written (see module docstring)."""
    data = state.load()
    ns = data["namespaces"].setdefault(str(netns.inode), {"values": {}})
    ns["netns"] = netns.to_json()
    ns["applied_at"] = when
    ns["run"] = run
    for c in changes:
        prev = current.get(c.path)
        if prev is None:
            continue
        slot = ns["values"].get(c.sysctl)
        if slot is None:
            ns["values"][c.sysctl] = {"path": c.path, "previous": prev, "applied": c.value}
        else:
            slot["applied"] = c.value  # keep the first "previous"
    state.save(data)


def record_applied(state: StateFile, netns: NetnsRef, outcomes: Sequence[Outcome]) -> None:
    """Forget values whose write failed and left the old value in place."""
    data = state.load()
    ns = data["namespaces"].get(str(netns.inode))
    if ns is None:
        return
    for o in outcomes:
        slot = ns["values"].get(o.sysctl)
        if slot is not None and not o.ok and o.after is None and o.before is not None \
                and same_value(o.before, slot["previous"]):
            del ns["values"][o.sysctl]
    if not ns["values"]:
        del data["namespaces"][str(netns.inode)]
    state.save(data)


@dataclass(frozen=True)
class RevertItem:
    sysctl: str
    path: str
    previous: str
    applied: str
    current: str | None
    drifted: bool  # current is neither what tcplinger wrote nor the previous value


def revert_items(entry: dict, current: Mapping[str, str | None]) -> list[RevertItem]:
    """What a revert would do, from a state entry and the current texts (pure).

    >>> e = {"values": {"net.ipv4.tcp_fin_timeout": {"path": "p", "previous": "60",
    ...                                               "applied": "30"}}}
    >>> [i.drifted for i in revert_items(e, {"p": "30"})], [i.drifted for i in revert_items(e, {"p": "45"})]
    ([False], [True])
    """
    out = []
    for name, slot in sorted(entry.get("values", {}).items()):
        cur = current.get(slot["path"])
        drifted = cur is not None and not same_value(cur, slot["applied"]) \
            and not same_value(cur, slot["previous"])
        out.append(RevertItem(name, slot["path"], slot["previous"], slot["applied"], cur,
                              drifted))
    return out


def forget(state: StateFile, netns: NetnsRef, sysctls: Sequence[str]) -> None:
    data = state.load()
    ns = data["namespaces"].get(str(netns.inode))
    if ns is None:
        return
    for name in sysctls:
        ns["values"].pop(name, None)
    if not ns["values"]:
        del data["namespaces"][str(netns.inode)]
    state.save(data)
