"""What tcplinger diagnoses at a moment of a lab run: a snapshot of the
run's namespaces, owners and fd usage of their processes, the ages the
recorder knows exactly (it saw each transition), and the rules
(diagnose/engine.py) over all of them at once, so rules that look across
namespaces (conntrack-mismatch: the router tracks the endpoints' flows)
see the whole path."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..collect import kernel as kernel_reader
from ..collect import owners as owners_mod
from ..collect.netlink import dump as nl
from ..collect.setns import run_in_netns
from ..diagnose import engine
from ..diagnose.inputs import NamespaceInput
from ..diagnose.metadata import BY_ID
from ..model.socket import Age, AgeSource, NetnsRef, UNKNOWN_AGE, format_address
from . import registry


@dataclass(frozen=True)
class LabFinding:
    at: str  # the moment's name
    t_s: float
    side: str
    rule: str
    severity: str
    count: int
    title: str
    evidence: dict

    def to_json(self) -> dict:
        return {"at": self.at, "t_s": round(self.t_s, 3), "side": self.side, "rule": self.rule,
                "severity": self.severity, "count": self.count, "title": self.title,
                "evidence": self.evidence}


def _key(table, i: int):
    r = table.rows[i]
    fam = int(r["family"])
    return ((format_address(fam, r["saddr"].tobytes()), int(r["sport"])),
            (format_address(fam, r["daddr"].tobytes()), int(r["dport"])))


def diagnose(namespaces: dict[str, str], *, at: str, t0: float, msg,
             age_of=None, previous: dict | None = None) -> list[LabFinding]:
    """Findings for the run's namespaces (``side -> namespace name``).
    ``age_of(side, key, state)`` gives the recorder's seconds in state (or
    None); other sockets get the snapshot's own estimate. ``previous``
    (``side -> (KernelContext, time.time())``) is an earlier reading of the
    counters, for the rules about rising ones."""
    inputs, sides = [], {}
    host = kernel_reader.read_global_sysctls(Path("/proc"))
    for side, name in namespaces.items():
        ns = _snapshot(name, host)
        pids = registry.netns_pids(name)
        rows = ns.table.rows
        wanted = set(rows["inode"][rows["inode"] != 0].tolist())
        owners = owners_mod.find_owners(wanted, Path("/proc"), pids=pids) if wanted else {}
        processes = {}
        for pid in {o.pid for os_ in owners.values() for o in os_}:
            try:
                processes[pid] = owners_mod.fd_usage(pid)
            except OSError:
                continue
        ages = None
        if age_of is not None:
            ages = []
            for i in range(len(ns.table)):
                secs = age_of(side, _key(ns.table, i), int(rows["state"][i]))
                ages.append(UNKNOWN_AGE if secs is None else Age(secs, False, AgeSource.TRACE))
        prev, interval = None, None
        if previous and side in previous:
            prev, when = previous[side]
            interval = max(time.time() - when, 0.0)
        inputs.append(NamespaceInput(ns.netns, ns.kernel, ns.table, owners=owners,
                                     processes=processes, ages=ages, previous=prev,
                                     interval=interval))
        sides[ns.netns.inode] = side
    t = time.monotonic() - t0
    out = []
    for f in engine.diagnose(inputs):
        if BY_ID[f.rule].host_wide:
            continue  # about the host (tcp_max_orphans), not the scenario
        out.append(LabFinding(at, t, sides.get(f.netns.inode, "?"), f.rule, f.severity.label,
                              f.count, f.title.render(msg), _plain(f.evidence)))
    return out


@dataclass
class _Ns:
    netns: NetnsRef
    kernel: object
    table: object


def _snapshot(name: str, host: dict) -> _Ns:
    """One sock_diag dump of every socket of the namespace, with tcp_info
    for all of them (a lab namespace holds a handful), and its kernel
    context, read from inside it (collect/snapshot.py does the same for
    any scope; this is the one-namespace, all-tcp_info case)."""
    path = f"/run/netns/{name}"
    ref = NetnsRef(os.stat(path).st_ino, name)

    def inside():
        table = nl.dump(nl.ALL, tcp_info=True)
        kctx = kernel_reader.read_kernel_context(Path("/proc"),
                                                 proc_net=Path("/proc/thread-self/net"),
                                                 global_sysctls=host)
        return table, kctx
    table, kctx = run_in_netns(path, inside)
    return _Ns(ref, kctx, table)


def _plain(obj):
    """Evidence as JSON-safe values (numpy numbers become Python ones)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
