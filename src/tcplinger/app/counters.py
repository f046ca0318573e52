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
from ..fsutil import atomic_write
from ..model.kernel import KernelContext


def sample(scopes: tuple[Scope, ...], roots: Roots = Roots()) -> dict:
    """The kernel context of each namespace in ``scopes``, now."""
    host = kernel_reader.read_global_sysctls(roots.proc)
    proc_net = roots.proc / "thread-self" / "net"
    read = kernel_reader.read_kernel_context
    out = {}
    t = time.time()
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
            out[info.inode] = (ctx, t)
    return out


def of_view(view) -> dict:
    """The readings a view's snapshot carries, for the next comparison."""
    return {p.ns.netns.inode: (p.ns.kernel, p.ns.taken_at) for p in view.parts}


def load(path: Path) -> dict:
    """Readings kept by :func:`save`; empty when the file does not exist
    yet or cannot be parsed (a first run)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    out = {}
    for ino, entry in doc.get("namespaces", {}).items():
        try:
            out[int(ino)] = (KernelContext(tcpext={k: int(v) for k, v in entry["tcpext"].items()}),
                             float(entry["time"]))
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return out


def save(path: Path, view) -> None:
    """Keep the TcpExt counters of ``view``'s namespaces in ``path``."""
    doc = {"namespaces": {str(p.ns.netns.inode): {"time": p.ns.taken_at,
                                                  "tcpext": dict(p.ns.kernel.tcpext)}
                          for p in view.parts}}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(doc).encode(), mode=0o600)
