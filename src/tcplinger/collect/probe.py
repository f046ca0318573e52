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

from ..model.states import TcpState


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


#: What each missing feature costs the user (a catalog: user-facing text).
COSTS = {
    "root": "only what this user may see: other users' processes cannot be named as"
            " owners, other namespaces cannot be entered, nothing can be traced",
    "CAP_NET_ADMIN": "sockets cannot be ended (SOCK_DESTROY needs CAP_NET_ADMIN) and"
                     " sysctl plans cannot be applied",
    "CAP_SYS_ADMIN": "other network namespaces cannot be entered (setns) and tracefs"
                     " cannot be mounted",
    "CAP_SYS_PTRACE": "sockets held by other users' processes show no owner"
                      " (/proc/PID/fd is unreadable)",
    "sock_diag": "falls back to /proc/net/tcp: no socket cookies (identity by 4-tuple"
                 " only), no tcp_info, no shutdown state, slower on large hosts",
    "tcp_info": "no RTT, retransmission or last-data ages: sockets first seen have no"
                " lower bound on their age",
    "SOCK_DESTROY": "`tcplinger kill` cannot end sockets; the owner must close them or"
                    " be restarted",
    "tracefs": "no state-change tracing: ages come only from timers and first-seen"
               " times",
    "tracepoint sock:inet_sock_set_state": "no exact time of entering a state",
    "tracepoint tcp:tcp_destroy_sock": "no record of when a socket was destroyed",
    "tracefs instance": "tracing would need the global buffer other tools share;"
                        " tcplinger does not trace then",
    "setns": "other network namespaces are read through /proc/PID/net only: no"
             " cookies, no tcp_info, no sysctls of that namespace",
    "/run/netns": "namespaces are found through /proc/*/ns/net only and have no"
                  " `ip netns` names",
    "conntrack": "",  # without conntrack there is no table whose timeouts can cut a connection
    "kernel": "",
}

#: Stable keys of the features (catalog keys ``doctor.cost.<key>``; JSON "key").
FEATURE_KEYS = {
    "root": "root", "CAP_NET_ADMIN": "cap_net_admin", "CAP_SYS_ADMIN": "cap_sys_admin",
    "CAP_SYS_PTRACE": "cap_sys_ptrace", "sock_diag": "sock_diag", "tcp_info": "tcp_info",
    "SOCK_DESTROY": "sock_destroy", "tracefs": "tracefs",
    "tracepoint sock:inet_sock_set_state": "tp_inet_sock_set_state",
    "tracepoint tcp:tcp_destroy_sock": "tp_tcp_destroy_sock",
    "tracefs instance": "tracefs_instance", "setns": "setns", "/run/netns": "run_netns",
    "conntrack": "conntrack", "kernel": "kernel",
}

#: English detail texts by reason (the catalog's ``doctor.detail.<reason>``
#: holds the same placeholders; tests/unit/test_probe.py checks).
DETAILS = {
    "probe_failed": "probe failed: {error}",
    "effective_uid": "effective uid {uid}",
    "cap_in": "in CapEff {capeff}",
    "cap_not_in": "not in CapEff {capeff}",
    "import_failed": "{module} cannot be imported: {error}",
    "dump_failed": "dump failed: {error}",
    "needs_sock_diag": "needs sock_diag",
    "own_listener_missing": "a dump did not list this process's own listener",
    "dump_lists": "dump lists {n} IPv4 listener(s), this probe's among them",
    "info_returned": "INET_DIAG_INFO returned",
    "info_missing": "no INET_DIAG_INFO attribute in the reply",
    "destroy_ok": "ended a loopback connection this probe opened",
    "destroy_said": "{text}",
    "tracefs_mounted": "mounted at {path}",
    "tracefs_mountable": "not mounted at {path}; mountable (mounted for this probe and"
                         " unmounted)",
    "no_tracefs": "kernel has no tracefs (not in /proc/filesystems)",
    "mount_failed": "not mounted, and mounting failed: {error}",
    "tracefs_unavailable": "tracefs not available",
    "event_present": "events/{event} present",
    "event_absent": "events/{event} absent",
    "instance_failed": "cannot create {path}: {error}",
    "instance_ok": "created and removed a private instance",
    "instance_no_event": "created and removed a private instance, but it has no {event}"
                         " event",
    "setns_open_failed": "cannot open {path}: {error}",
    "setns_failed": "setns({path}) failed: {error}",
    "setns_no_return": "entered but could not switch back (thread discarded)",
    "setns_ok": "entered {path} and back",
    "setns_ok_same": "entered {path} and back (it is this namespace: no other one found)",
    "setns_timeout": "setns probe did not finish",
    "run_netns_error": "{path}: {error}",
    "run_netns_count": "{n} named namespace(s)",
    "conntrack_unloaded": "nf_conntrack not loaded: no connection tracking table can"
                          " expire lingering connections here",
    "conntrack_unreadable": "unreadable: {error}",
    "conntrack_loaded": "loaded: {count} of {max} entries in this namespace",
    "kernel_release": "Linux {release} (informational: features are probed, not"
                      " inferred from the version)",
}

CAP_BITS = {"CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21, "CAP_SYS_PTRACE": 19}
CLONE_NEWNET = 0x40000000
MNT_DETACH = 2
TRACEPOINTS = ("sock/inet_sock_set_state", "tcp/tcp_destroy_sock")


def probe_all(proc_root: Path = Path("/proc"), sys_root: Path = Path("/sys"), *,
              run_netns: Path = Path("/run/netns")) -> list[Feature]:
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
    try:
        from .netlink.destroy import probe_destroy
    except ImportError as exc:
        return [_feature("SOCK_DESTROY", False, "import_failed",
                         module="tcplinger.collect.netlink.destroy", error=exc)]
    ok, detail = probe_destroy()
    # probe_destroy (netlink/destroy.py) explains a failure in English text only
    return [_feature("SOCK_DESTROY", bool(ok), "destroy_said", text=detail) if detail
            else _feature("SOCK_DESTROY", bool(ok), "destroy_ok")]


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
    """setns() into another namespace and back, in a throwaway thread
    (setns changes only the calling thread: KERNEL-NOTES)."""
    own = os.stat(proc_root / "self" / "ns" / "net").st_ino
    targets = []
    with contextlib.suppress(OSError):
        targets += sorted(run_netns.iterdir())
    targets.append(proc_root / "1" / "ns" / "net")
    target = next((t for t in targets if _ino(t) not in (None, own)), targets[-1])
    result: list[tuple[bool, str, dict]] = []

    def attempt():
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            back = os.open(proc_root / "thread-self" / "ns" / "net", os.O_RDONLY)
            fd = os.open(target, os.O_RDONLY)
        except OSError as exc:
            result.append((False, "setns_open_failed",
                           {"path": target, "error": exc.strerror or exc}))
            return
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                result.append((False, "setns_failed",
                               {"path": target, "error": os.strerror(err)}))
                return
            if libc.setns(back, CLONE_NEWNET) != 0:
                result.append((False, "setns_no_return", {}))
                return
            same = _ino(target) == own
            result.append((True, "setns_ok_same" if same else "setns_ok", {"path": target}))
        finally:
            os.close(fd)
            os.close(back)

    t = threading.Thread(target=attempt, name="tl-probe-setns", daemon=True)
    t.start()
    t.join(10)
    ok, reason, fields = result[0] if result else (False, "setns_timeout", {})
    return _feature("setns", ok, reason, **fields)


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
