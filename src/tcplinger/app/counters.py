"""Kernel counters from an earlier moment, so that the rules about rising
counters (TCPTimeWaitOverflow, TCPAbortOnMemory...) see the rise: sampled
now and again after an interval (``report --interval``), kept in a file
between runs (``check --state``), or kept from the last scrape (the
exporter). Earlier readings are ``{netns inode: (KernelContext, time.time())}``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..collect import kernel as kernel_reader
from ..collect import snapshot as snap_mod
from ..collect.roots import Roots
from ..collect.setns import run_in_netns
from ..collect.snapshot import Scope
from ..fsutil import atomic_write, read_regular
from ..model.files import NotOurFile
from ..model.kernel import KernelContext


def sample(scopes: tuple[Scope, ...], roots: Roots = Roots()) -> dict:
    """The kernel context of each namespace in ``scopes``, now."""
    host = kernel_reader.read_global_sysctls(roots.proc)
    proc_net = roots.proc / "thread-self" / "net"
    read = kernel_reader.read_kernel_context
    out = {}
    for scope in scopes:
        targets, _ = snap_mod.resolve(scope, roots)
        for info in targets:
            try:
                if info.current:
                    ctx = read(roots.proc, proc_net=proc_net, global_sysctls=host)
                else:
                    ctx = run_in_netns(info.path, read, roots.proc, proc_net=proc_net,
                                       global_sysctls=host)
            except OSError:
                continue  # the snapshot will say why this namespace cannot be read
            # stamped after the read, as the snapshot's taken_at is; one
            # stamp before resolving the scope (a /proc scan: seconds under
            # load) stretched the window: 1767/s against the counters'
            # 2295/s once at load 21, 2771 against 2870 once stamped here
            out[info.inode] = (ctx, time.time())
    return out


def of_view(view) -> dict:
    """The readings a view's snapshot carries, for the next comparison."""
    return {p.ns.netns.inode: (p.ns.kernel, p.ns.taken_at) for p in view.parts}


#: what check's state file says it is (the first key of the document)
KIND = "tcplinger check state"
#: more than any host's counters take (a few KB a namespace)
STATE_MAX_BYTES = 16 << 20


class NotCheckState(NotOurFile):
    """``check --state FILE`` names a file that is not one: refused, and
    never overwritten (it may be someone's data)."""

    def __init__(self, path, reason: str):
        super().__init__(path, "file.not_check_state", reason)


def _document(path: Path) -> dict | None:
    """The state document at ``path``; None when there is none yet (no
    file, or an empty one: nothing in it to lose)."""
    try:
        data = read_regular(path, limit=STATE_MAX_BYTES)
    except FileNotFoundError:
        return None
    if not data.strip():
        return None
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise NotCheckState(path, "not JSON") from None
    # ours: {"kind": KIND, "namespaces": {...}}, or the same without
    # "kind" as written before it had one
    if not isinstance(doc, dict) or not isinstance(doc.get("namespaces"), dict) \
            or doc.get("kind", KIND) != KIND or set(doc) - {"kind", "namespaces"}:
        raise NotCheckState(path, "other JSON")
    return doc


def load(path: Path) -> dict:
    """Readings kept by :func:`save`; empty when the file does not exist
    yet (a first run). A file that exists and is not one raises
    NotCheckState (and a directory, a device, a FIFO an OSError: see
    fsutil.read_regular); it is never overwritten."""
    doc = _document(path)
    out = {}
    for ino, entry in (doc or {}).get("namespaces", {}).items():
        try:
            out[int(ino)] = (KernelContext(tcpext={k: int(v) for k, v in entry["tcpext"].items()}),
                             float(entry["time"]))
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return out


def save(path: Path, view) -> None:
    """Keep the TcpExt counters of ``view``'s namespaces in ``path`` (the
    one atomic writer: never over anything but a regular file; and never
    over a file that is not one of ours: :func:`load` refuses it first)."""
    _document(path)
    doc = {"kind": KIND,
           "namespaces": {str(p.ns.netns.inode): {"time": p.ns.taken_at,
                                                  "tcpext": dict(p.ns.kernel.tcpext)}
                          for p in view.parts}}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(doc).encode(), mode=0o600)
