"""Feature probes for ``tcplinger doctor``: what works here, and what its
absence costs.

Every probe tries the thing itself (DESIGN.md: probe features, never
compare version strings): a sock_diag dump that must find a listener this
process just opened, a tracefs instance created and removed, a setns()
into another namespace and back. Probes never raise and leave nothing
behind: sockets are closed, a tracefs mounted for the probe is unmounted,
the probe's tracefs instance is removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from ..model.sock_destroy import Kind, Status
from ..model.states import TcpState
from .feature_texts import COSTS, DETAILS, FEATURE_KEYS
from .roots import PROC, RUN_NETNS
from .setns import enter, run_on_thread


@dataclass(frozen=True)
class Feature:
    """One probed feature. ``detail``/``cost`` are the technical English
    texts (``doctor --json``); ``key``, ``reason`` and ``fields`` let the CLI
    render both from its message catalogs (collect/ does not import i18n):
    ``doctor.detail.<reason>`` with ``fields``, ``doctor.cost.<key>``."""

    name: str
    ok: bool
    detail: str  # what was found, or why not
    cost: str  # what the user loses while it is missing ("" when nothing)
    key: str = ""  # stable identifier of the feature (FEATURE_KEYS)
    reason: str = ""  # stable identifier of the detail (DETAILS)
    fields: dict = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "cost": self.cost,
                "key": self.key, "reason": self.reason, "fields": dict(self.fields)}


CAP_BITS = {"CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21, "CAP_SYS_PTRACE": 19}
MNT_DETACH = 2
TRACEPOINTS = ("sock/inet_sock_set_state", "tcp/tcp_destroy_sock")


def probe_all(proc_root: Path = PROC, sys_root: Path = Path("/sys"), *,
              run_netns: Path = RUN_NETNS) -> list[Feature]:
    """Every probe, in the order ``tcplinger doctor`` prints them."""
    out: list[Feature] = []
    steps: list[tuple[tuple[str, ...], Callable[[], list[Feature]]]] = [
        (("root", *CAP_BITS), lambda: _privileges(proc_root)),
        (("sock_diag", "tcp_info"), _sock_diag),
        (("SOCK_DESTROY",), _sock_destroy),
        (("tracefs", *(f"tracepoint {t.replace('/', ':')}" for t in TRACEPOINTS),
          "tracefs instance"), lambda: _tracefs(proc_root, sys_root)),
        (("setns",), lambda: [_setns(proc_root, run_netns)]),
        (("/run/netns",), lambda: [_run_netns(run_netns)]),
        (("conntrack",), lambda: [_conntrack(proc_root)]),
        (("kernel",), lambda: [_kernel(proc_root)]),
    ]
    for names, step in steps:
        try:
            out.extend(step())
        except Exception as exc:  # a probe must never take doctor down
            out.extend(_feature(n, False, "probe failed",
                                error=f"{type(exc).__name__}: {exc}") for n in names)
    return out


def _feature(name: str, ok: bool, reason: str, **fields) -> Feature:
    """A Feature whose detail is ``DETAILS[reason]`` filled with ``fields``
    (``reason`` may be given with blanks: "probe failed" is "probe_failed")."""
    reason = reason.replace(" ", "_")
    fields = {k: v if isinstance(v, (int, bool)) else str(v) for k, v in fields.items()}
    return Feature(name, ok, DETAILS[reason].format(**fields), "" if ok else COSTS[name],
                   FEATURE_KEYS[name], reason, fields)


# --------------------------------------------------------------------------
# privileges

def _status(proc_root: Path) -> dict[str, str]:
    out = {}
    for line in (proc_root / "self" / "status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def _privileges(proc_root: Path) -> list[Feature]:
    status = _status(proc_root)
    euid = int(status["Uid"].split()[1])
    cap_eff = int(status["CapEff"], 16)
    out = [_feature("root", euid == 0, "effective_uid", uid=euid)]
    for name, bit in CAP_BITS.items():
        has = bool(cap_eff >> bit & 1)
        out.append(_feature(name, has, "cap_in" if has else "cap_not_in",
                            capeff=status["CapEff"]))
    return out


# --------------------------------------------------------------------------
# sock_diag

@contextlib.contextmanager
def _own_listener() -> Iterator[tuple[int, int]]:
    """A loopback LISTEN socket for the probe: (port, inode); closed after
    (a listener leaves no TIME_WAIT behind)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield s.getsockname()[1], os.fstat(s.fileno()).st_ino
    finally:
        s.close()


def _sock_diag() -> list[Feature]:
    try:
        from .netlink.dump import dump
    except ImportError as exc:
        why = {"module": "tcplinger.collect.netlink.dump", "error": exc}
        return [_feature("sock_diag", False, "import_failed", **why),
                _feature("tcp_info", False, "import_failed", **why)]
    mask = 1 << int(TcpState.LISTEN)
    with _own_listener() as (port, inode):
        try:
            plain = dump(states_mask=mask, families=(socket.AF_INET,), tcp_info=False)
        except OSError as exc:
            return [_feature("sock_diag", False, "dump_failed", error=exc.strerror or exc),
                    _feature("tcp_info", False, "needs_sock_diag")]
        found = (plain.rows["sport"] == port) & (plain.rows["inode"] == inode)
        if not found.any():
            return [_feature("sock_diag", False, "own_listener_missing"),
                    _feature("tcp_info", False, "needs_sock_diag")]
        diag = _feature("sock_diag", True, "dump_lists", n=len(plain))
        try:
            full = dump(states_mask=mask, families=(socket.AF_INET,), tcp_info=True)
        except OSError as exc:
            return [diag, _feature("tcp_info", False, "dump_failed",
                                   error=exc.strerror or exc)]
        idx = (full.rows["sport"] == port) & (full.rows["inode"] == inode)
        has = full.info is not None and bool(full.info[idx]["present"].any())
        return [diag, _feature("tcp_info", has, "info_returned" if has else "info_missing")]


def _sock_destroy() -> list[Feature]:
    """The probe ``kill`` runs (netlink/destroy.py): a socket of each kind
    of its own, in a private namespace when it can make one. Ok when a
    process's socket (kind full) can be ended."""
    try:
        from .netlink import destroy
    except ImportError as exc:
        return [_feature("SOCK_DESTROY", False, "import_failed",
                         module="tcplinger.collect.netlink.destroy", error=exc)]
    support = destroy.probe()
    full = support.get(Kind.FULL)
    if full.status is Status.WORKS:
        return [_feature("SOCK_DESTROY", True, "destroy_ok",
                         **{k.value: support.get(k).status.value for k in Kind})]
    # the probe explains a failure in English text only
    return [_feature("SOCK_DESTROY", False, "destroy_said", text=full.detail)]


# --------------------------------------------------------------------------
# tracefs

def _tracefs_mounts(proc_root: Path) -> list[Path]:
    try:
        text = (proc_root / "self" / "mounts").read_text()
    except OSError:
        return []
    # fields: device mountpoint fstype ...; octal escapes for blanks (\040)
    return [Path(f[1].encode().decode("unicode_escape"))
            for f in (line.split() for line in text.splitlines())
            if len(f) > 2 and f[2] == "tracefs"]


def _tracefs(proc_root: Path, sys_root: Path) -> list[Feature]:
    names = ["tracefs", *(f"tracepoint {t.replace('/', ':')}" for t in TRACEPOINTS),
             "tracefs instance"]
    mounted = _tracefs_mounts(proc_root)
    usual = [sys_root / "kernel" / "tracing", sys_root / "kernel" / "debug" / "tracing"]
    root = next((p for p in usual if p in mounted or (p / "events").is_dir()), None)
    root = root or (mounted[0] if mounted else None)
    if root is not None:
        return _tracefs_contents(root, ("tracefs_mounted", {"path": root}), names)
    try:
        known = "tracefs" in (proc_root / "filesystems").read_text().split()
    except OSError:
        known = False
    if not known:
        return [_feature(n, False, "no_tracefs") for n in names]
    with _temporary_tracefs() as (where, why):
        if where is None:
            return [_feature(names[0], False, "mount_failed", error=why)] + [
                _feature(n, False, "tracefs_unavailable") for n in names[1:]]
        return _tracefs_contents(where, ("tracefs_mountable", {"path": usual[0]}), names)


@contextlib.contextmanager
def _temporary_tracefs():
    """Mount tracefs on a fresh temporary directory; unmount and remove it."""
    libc = ctypes.CDLL(None, use_errno=True)
    where = Path(tempfile.mkdtemp(prefix="tl-probe-tracefs-"))
    mounted = False
    try:
        if libc.mount(b"tracefs", bytes(where), b"tracefs", 0, None) != 0:
            yield None, os.strerror(ctypes.get_errno())
            return
        mounted = True
        yield where, ""
    finally:
        if mounted:
            libc.umount2(bytes(where), MNT_DETACH)
        with contextlib.suppress(OSError):
            where.rmdir()


def _tracefs_contents(root: Path, how: tuple[str, dict], names: list[str]) -> list[Feature]:
    out = [_feature(names[0], True, how[0], **how[1])]
    for name, event in zip(names[1:], TRACEPOINTS):
        present = (root / "events" / event).is_dir()
        out.append(_feature(name, present, "event_present" if present else "event_absent",
                            event=event))
    out.append(_instance(root))
    return out


def _instance(root: Path) -> Feature:
    inst = root / "instances" / f"tl-probe-{os.getpid()}"
    try:
        inst.mkdir()
    except OSError as exc:
        return _feature("tracefs instance", False, "instance_failed", path=inst,
                        error=exc.strerror or exc)
    try:
        event = inst / "events" / TRACEPOINTS[0] / "enable"
        ok = event.exists()
        return _feature("tracefs instance", ok, "instance_ok" if ok else "instance_no_event",
                        **({} if ok else {"event": TRACEPOINTS[0]}))
    finally:
        for _ in range(50):  # rmdir is EBUSY while the instance is still in use
            try:
                inst.rmdir()
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    break
                threading.Event().wait(0.02)


# --------------------------------------------------------------------------
# namespaces, conntrack, kernel

def _setns(proc_root: Path, run_netns: Path) -> Feature:
    """setns() into another namespace, on a throwaway thread (collect/setns.py:
    setns changes only the calling thread, KERNEL-NOTES)."""
    own = os.stat(proc_root / "self" / "ns" / "net").st_ino
    targets = []
    with contextlib.suppress(OSError):
        targets += sorted(run_netns.iterdir())
    targets.append(proc_root / "1" / "ns" / "net")
    target = next((t for t in targets if _ino(t) not in (None, own)), targets[-1])
    try:
        run_on_thread(enter, target)
    except OSError as exc:
        if exc.filename is not None:  # os.open() of the namespace file
            return _feature("setns", False, "setns_open_failed", path=target,
                            error=exc.strerror or exc)
        return _feature("setns", False, "setns_failed", path=target,
                        error=os.strerror(exc.errno) if exc.errno else exc)
    return _feature("setns", True, "setns_ok_same" if _ino(target) == own else "setns_ok",
                    path=target)


def _ino(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _run_netns(run_netns: Path) -> Feature:
    try:
        names = sorted(p.name for p in run_netns.iterdir())
    except OSError as exc:
        return _feature("/run/netns", False, "run_netns_error", path=run_netns,
                        error=exc.strerror or exc)
    return _feature("/run/netns", True, "run_netns_count", n=len(names))


def _conntrack(proc_root: Path) -> Feature:
    base = proc_root / "sys" / "net" / "netfilter"
    try:
        cmax = int((base / "nf_conntrack_max").read_text())
        count = int((base / "nf_conntrack_count").read_text())
    except FileNotFoundError:
        return _feature("conntrack", False, "conntrack_unloaded")
    except (OSError, ValueError) as exc:
        return _feature("conntrack", False, "conntrack_unreadable", error=exc)
    return _feature("conntrack", True, "conntrack_loaded", count=count, max=cmax)


def _kernel(proc_root: Path) -> Feature:
    try:
        release = (proc_root / "sys" / "kernel" / "osrelease").read_text().strip()
    except OSError:
        release = os.uname().release
    return _feature("kernel", True, "kernel_release", release=release)
