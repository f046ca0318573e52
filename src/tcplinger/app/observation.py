"""Observe a scope: everything the diagnosis reads, gathered once for
``report``, ``check``, ``tune``, the exporter and the lab.

1. one snapshot of the scope, with tcp_info for the teardown states (ages,
   RTO); when the scope has at most IDLE_INFO_MAX established sockets, a
   second dump of those with tcp_info (idle times, keepalive rule);
2. owners, by the one policy (collect/owners.py), only for the sockets
   rules attribute to a process (owned teardown sockets, long-idle
   established ones);
3. ages, trends and counter rates from the watch database when it is
   fresh;
4. fd usage of the processes holding CLOSE_WAIT;
5. sysctl configuration files, for settings this kernel does not have;
6. kernel counters of an earlier moment (app/counters.py), paired by
   namespace; with ``interval``, also the sockets' first look (a socket
   in both is at least that old) and who connects where during it
   (app/interval.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..collect import owners as owners_mod
from ..collect import snapshot as snap_mod
from ..collect.owners import OwnerPolicy
from ..collect.roots import Roots
from ..collect.snapshot import Scope
from ..diagnose import culprits
from ..diagnose.inputs import Connects, NamespaceInput
from ..diagnose.metadata import BY_ID
from ..diagnose.sysctl_files import LEGACY, REMOVED, SysctlSetting, parse, proc_path
from ..model.owner_map import OwnerMap
from ..model.states import OWNABLE, TcpState
from ..model.table import SocketTable, distinct
from . import watchdb

if TYPE_CHECKING:  # report --interval only: its connect probe and tracefs, ~10 ms to import
    from . import interval
from .view import NsView, View, take

#: Below this many established sockets in scope, they are dumped a second
#: time with tcp_info (280 bytes each) for their idle times.
IDLE_INFO_MAX = 50_000
SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d",
               "/lib/sysctl.d")


@dataclass(frozen=True)
class ObserveOptions:
    scope: Scope
    owners: OwnerPolicy = OwnerPolicy()
    interval: float | None = None  # seconds between two counter samples
    db: Path | None = None  # a watch database (None: the default one, when fresh)
    #: ages and trends from the watch database (the lab has its own ages)
    history: bool = True
    #: the second dump of ESTABLISHED sockets with tcp_info, when few
    idle_info: bool = True
    #: tcp_info for these states in the one dump (the lab's handful of
    #: sockets: all of them, at once), instead of the teardown states
    info_states: frozenset | None = None
    #: what only the rules read: fd usage of CLOSE_WAIT holders ...
    fd_usage: bool = True
    #: ... and the host's sysctl.d files
    sysctl_files: bool = True
    #: over ``interval``: who connects where, from the tracepoint (root)
    connects: bool = True


@dataclass
class Observation:
    view: View
    inputs: list[NamespaceInput]
    owners_skipped: int | None  # open files the owner walk would have read when skipped
    sysctl_files: list[SysctlSetting]
    phases: dict = field(default_factory=dict)  # seconds per step
    errors: list = field(default_factory=list)  # steps that failed (strict=False)


def observe(opts: ObserveOptions, roots: Roots = Roots(), *, previous: dict | None = None,
            extra_scopes: tuple[Scope, ...] = (), ages: Callable | None = None,
            tables: dict | None = None, strict: bool = True,
            log=lambda step, text: None, on_namespace=None) -> Observation:
    """The diagnosis inputs of ``opts.scope`` (and ``extra_scopes``: rules
    that look across namespaces, such as conntrack-mismatch, see them all).

    ``previous`` are earlier counter readings (app/counters.py);
    ``opts.interval`` takes one here and waits. ``ages(ns_snapshot, table)``
    gives the ages of a namespace's rows (the lab's recorder) instead of
    the snapshot's and the watch database's. ``tables`` (netns inode ->
    SocketTable) are sockets dumped earlier, at the moment the caller
    diagnoses, that stand for those namespaces' own: the lab dumps its
    namespaces the instant a scenario names (lab/recorder.py), and reading
    the rest of a namespace (sysctls, counters) can take seconds on a
    loaded host while its sockets live two. With ``strict`` False an
    owner walk that fails is logged and left out (the exporter's other
    metrics still count). ``on_namespace(ns)`` gets each namespace's
    NetnsSnapshot on the calling thread as soon as it is read, while the
    others are still being read (collect/snapshot.take).
    """
    scopes = (opts.scope,) + tuple(extra_scopes)
    if opts.history:
        watchdb.check_given(opts.db)  # an explicit --db that cannot be read: before any work
    before = dict(previous or {})
    first = None
    if opts.interval:
        from . import interval

        first = interval.sample_over(scopes, opts.interval, roots, connects=opts.connects)
        before = first.counters
        if first.connects_error:
            log("connects", first.connects_error)
    phases: dict = {}
    t = time.perf_counter()
    # Every scope's dump first, the second dumps after: the namespaces are
    # seen as close to one moment as can be (a lab run's sockets live seconds).
    parts = [take(scope, info_states=opts.info_states, idle_info=opts.idle_info, roots=roots,
                  on_namespace=on_namespace) for scope in scopes]
    if opts.idle_info:
        for scope, part in zip(scopes, parts):
            _add_idle_info(part, scope, roots)
    view = parts[0]
    for part in parts[1:]:
        view.merge(part)
    for part in view.parts:
        if tables and part.ns.netns.inode in tables:
            part.table = tables[part.ns.netns.inode]
    phases["snapshot"] = time.perf_counter() - t
    t = time.perf_counter()
    errors, skipped = [], None
    try:
        skipped = attach_owners(view, opts.owners, roots)
    except OSError as exc:
        if strict:
            raise
        errors.append("owners")
        log("owners", f"{exc.strerror or exc}")
    phases["owners"] = time.perf_counter() - t
    trends, rates = None, {}
    if opts.history:
        watchdb.attach_ages(view, opts.db)  # ages from a fresh `tcplinger watch` database
        trends = watchdb.watch_trends(opts.db)  # and what grows, from the same database
        rates = watchdb.watch_rates(opts.db) or {}  # and the counters' rates
    if first is not None and ages is None:  # a socket in both looks: at least the interval old
        from . import interval

        for part in view.parts:
            interval.attach_ages(part, first.sockets.get(part.ns.netns.inode))
    inputs = [_input(part, roots, before, opts, ages, trends, first,
                     rates.get(part.ns.netns.inode, {})) for part in view.parts]
    settings = read_sysctl_files(roots) if opts.sysctl_files else []
    return Observation(view, inputs, skipped, settings, phases, errors)


def _input(part: NsView, roots: Roots, before: dict, opts: ObserveOptions, ages,
           trends, first: "interval.Before | None" = None, rates=None) -> NamespaceInput:
    inode = part.ns.netns.inode
    prev = gap = None
    if inode in before:
        prev, when = before[inode]
        gap = max(part.ns.taken_at - when, 0.0)
    if ages is not None:
        known = ages(part.ns, part.table)
    else:  # None: the rules take them from the snapshot itself
        known = part.tracked.to_ages() if part.tracked is not None else None
    return NamespaceInput(
        netns=part.ns.netns, kernel=part.ns.kernel, table=part.table, owners=part.owners,
        processes=fd_usage(part, roots) if opts.fd_usage else {},
        previous=prev, interval=gap, sampled_at=part.ns.taken_at, ages=known,
        trends=trends.of(inode) if trends is not None else None,
        connects=_connects(first, inode, roots), rates=rates or {})


def _connects(first, inode: int, roots: Roots) -> Connects | None:
    """The processes of namespace ``inode`` the tracepoint saw connecting
    during the interval, with their command lines."""
    if first is None or first.connects is None:
        return None
    items = []
    for c in first.connects.by_netns.get(inode, ()):
        # read again (a process may exec between), else as it was while it
        # connected: a client that connected once and exited is named too
        owner = (owners_mod.process_owner(c.pid, roots.proc)
                 or first.connects.processes.get(c.pid))
        if owner is not None:
            items.append((owner, c.family, c.addr, c.port, c.count))
    return Connects(first.connects.window_s, tuple(items), first.connects.lost,
                    first.connects.unplaced)


def _add_idle_info(view: View, scope: Scope, roots: Roots) -> None:
    """Dump established sockets again with tcp_info when there are few.

    Small namespaces got it with their one dump (take(idle_info=True)):
    their established rows only move behind the others, as a second dump
    puts them; with too many in scope it is cleared again, so that the
    rules see the same inputs either way.
    """
    est = int(TcpState.ESTABLISHED)
    masks = [p.table.rows["state"] == est for p in view.parts]
    n = sum(int(np.count_nonzero(m)) for m in masks)
    if n == 0:
        return
    if n > IDLE_INFO_MAX:
        for part, m in zip(view.parts, masks):
            if part.table.info is not None and part.table.info["present"][m].any():
                part.table.info.view(np.uint8).reshape(len(part.table), -1)[m] = 0
        return
    if all(p.table.info is not None and p.table.info["present"][m].all()
           for p, m in zip(view.parts, masks)):
        for part, m in zip(view.parts, masks):
            if m.any():
                part.table = SocketTable.concat([part.table.select(~m), part.table.select(m)])
        return
    try:
        again = snap_mod.take(scope, states={TcpState.ESTABLISHED},
                              info_states={TcpState.ESTABLISHED}, roots=roots)
    except OSError:
        return
    fresh = {ns.netns.inode: ns.table for ns in again.namespaces}
    for part in view.parts:
        table = fresh.get(part.ns.netns.inode)
        if table is None:
            continue
        keep = part.table.select(part.table.rows["state"] != est)
        part.table = SocketTable.concat([keep, table])


def _owned_teardown(rows: np.ndarray) -> np.ndarray:
    ownable = np.zeros(256, bool)  # a lookup by state number: np.isin sorts
    ownable[[int(s) for s in OWNABLE]] = True
    return ownable[rows["state"]] & (rows["inode"] != 0)


def holds_wanted(part: NsView) -> bool:
    """Whether :func:`wanted_inodes` of ``part`` is not empty, told from
    its owned teardown sockets alone when it has some (nearly always)."""
    return bool(_owned_teardown(part.table.rows).any()) or len(wanted_inodes(part)) > 0


def wanted_inodes(part: NsView) -> np.ndarray:
    """Inodes whose owners the rules use: owned teardown sockets, and
    established ones idle longer than keepalive-vs-idle-timeout's bound."""
    rows = part.table.rows
    mask = _owned_teardown(rows)
    info = part.table.info
    if info is not None:
        est = (rows["state"] == int(TcpState.ESTABLISHED)) & info["present"]
        idle = np.minimum(np.minimum(info["last_data_sent"], info["last_data_recv"]),
                          info["last_ack_recv"])
        timeout = BY_ID["keepalive-vs-idle-timeout"].defaults()["idle_timeout"] or 0
        mask |= est & (idle >= timeout * 1000) & (rows["inode"] != 0)
    # listeners and same-destination sockets: the inferred culprits of
    # sockets no process holds (diagnose/culprits.py)
    mask |= culprits.wanted_mask(part.table)
    return distinct(rows["inode"][mask])


def attach_owners(view: View, policy: OwnerPolicy, roots: Roots) -> int | None:
    """Owners of the inodes the rules need, by ``policy``. Returns the open
    files the walk would have read when the policy left it out, else None."""
    return view.attach_owners(policy, roots, wanted_of=wanted_inodes,
                              holds=holds_wanted).skipped_files


def fd_usage(part: NsView, roots: Roots) -> dict:
    """RLIMIT_NOFILE and open fds of the processes holding CLOSE_WAIT."""
    if not part.owners:
        return {}
    rows = part.table.rows
    inodes = rows["inode"][(rows["state"] == int(TcpState.CLOSE_WAIT)) & (rows["inode"] != 0)]
    owners = OwnerMap.of(part.owners)
    pids = owners.pids_of(inodes.tolist())
    out = {}
    for pid in sorted(pids):
        try:
            out[pid] = owners_mod.fd_usage(pid, roots.proc, owners.open_fds.get(pid))
        except OSError:
            continue
    return out


def read_sysctl_files(roots: Roots = Roots(), etc: Path = Path("/")) -> list[SysctlSetting]:
    """Settings of removed or legacy keys in sysctl.d(5) files, with whether
    the key exists on the running kernel."""
    paths = [etc / "etc/sysctl.conf"]
    for d in SYSCTL_DIRS:
        try:
            paths += sorted((etc / d.lstrip("/")).glob("*.conf"))
        except OSError:
            continue
    out = []
    watched = set(REMOVED) | set(LEGACY)
    for path in paths:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for s in parse(str(path), text):
            if s.key in watched:
                exists = (roots.proc / "sys" / proc_path(s.key)).exists()
                out.append(replace(s, exists=exists))
    return out
