"""``tcplinger report`` (and plain ``tcplinger``): what is lingering, why,
for how long, and what to change — per namespace, most severe first.

Gathering the diagnosis inputs is shared with ``check``:

1. one snapshot of the scope, with tcp_info for the teardown states (ages,
   RTO); when the scope has at most IDLE_INFO_MAX established sockets, a
   second dump of those with tcp_info (idle times, keepalive rule);
2. owners only for the sockets rules attribute to a process (owned
   teardown sockets, long-idle established ones), walking /proc/*/fd once,
   restricted to the namespace's own processes when it is not the host's;
3. fd usage of the processes holding CLOSE_WAIT;
4. sysctl configuration files, for settings this kernel does not have.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ...collect import files
from ...collect import kernel as kernel_reader
from ...collect import owners as owners_mod
from ...collect import snapshot as snap_mod
from ...collect.setns import run_in_netns
from ...collect.snapshot import Roots, Scope
from ...diagnose import engine
from ...diagnose.inputs import NamespaceInput, NamespaceTrends, Trend
from ...diagnose.metadata import BY_ID, BadThreshold, merge, parse_override
from ...diagnose.summary import namespace_summary
from ...diagnose.sysctl_files import LEGACY, REMOVED, SysctlSetting, parse, proc_path
from ...export import findings as findings_export
from ...model.states import TcpState
from ...model.table import SocketTable
from ...track import trends as trends_mod
from ...ui import report as report_view
from .. import query, watchdb
from ..errors import CliError, Exit
from ..options import add_owners, add_scope, scope_from
from ..output import report_problems, snapshot_meta

NAME = "report"

#: Below this many established sockets in scope, they are dumped a second
#: time with tcp_info (280 bytes each) for their idle times.
IDLE_INFO_MAX = 50_000
#: States whose owned sockets rules attribute to a process.
OWNED_STATES = (TcpState.CLOSE_WAIT, TcpState.FIN_WAIT2, TcpState.FIN_WAIT1, TcpState.LAST_ACK,
                TcpState.CLOSING)
SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d",
               "/lib/sysctl.d")


@dataclass(frozen=True)
class DiagnoseOptions:
    scope: Scope
    owners: bool | None = None  # None: automatic
    thresholds: dict = field(default_factory=dict)
    rules: tuple[str, ...] | None = None
    interval: float | None = None  # seconds between two counter samples
    sample: int = engine.SAMPLE_LIMIT
    db: object = None  # a watch database (None: the default one, when fresh)


@dataclass(frozen=True)
class ReportOptions:
    diagnose: DiagnoseOptions
    json: bool
    sockets: int  # shown per finding in text


@dataclass
class Diagnosis:
    view: query.View
    inputs: list[NamespaceInput]
    findings: list
    owners_skipped: int | None  # open files on the host when owners were not looked up
    thresholds: dict


# ---- arguments ---------------------------------------------------------------

def add_diagnose_args(p) -> None:
    add_scope(p)
    add_owners(p, "always find the owning processes of lingering sockets")
    p.add_argument("--threshold", action="append", default=[], metavar="RULE.NAME=VALUE",
                   help="override a rule threshold (see `tcplinger rules`); repeatable")
    p.add_argument("--rule", action="append", default=None, metavar="RULE",
                   help="run only this rule (repeatable)")
    p.add_argument("--interval", type=float, default=None, metavar="SECONDS",
                   help="sample the kernel counters twice, SECONDS apart, to see which are rising")
    watchdb.add_argument(p)


def threshold_overrides(texts) -> dict[str, dict]:
    """``RULE.NAME=VALUE`` options as ``{rule: {name: value}}``."""
    overrides: dict[str, dict] = {}
    for text in texts:
        try:
            rule, name, value = parse_override(text)
        except BadThreshold as exc:
            raise CliError(str(exc), Exit.USAGE) from None
        overrides.setdefault(rule, {})[name] = value
    return overrides


def diagnose_options(args) -> DiagnoseOptions:
    overrides = threshold_overrides(args.threshold)
    rules = None
    if args.rule:
        unknown = [r for r in args.rule if r not in BY_ID]
        if unknown:
            raise CliError(f"unknown rule {unknown[0]!r} (see `tcplinger rules`)", Exit.USAGE)
        rules = tuple(args.rule)
    if args.interval is not None and not 0 < args.interval <= 3600:
        raise CliError("--interval must be between 0 and 3600 seconds", Exit.USAGE)
    return DiagnoseOptions(scope_from(args), args.owners, overrides, rules, args.interval,
                           db=getattr(args, "db", None))


def register(sub) -> None:
    p = sub.add_parser(NAME, help="explain lingering connections: cause, evidence, lifetime, fix "
                                  "(the default command)",
                       description="Diagnose lingering TCP connections: a state summary per "
                                   "namespace next to the kernel limits, then findings, most "
                                   "severe first, each with evidence, cause, lifetime and fixes.")
    add_diagnose_args(p)
    p.add_argument("--json", action="store_true", help="JSON output (docs/json.md)")
    p.add_argument("--sockets", type=int, default=5, metavar="N",
                   help="sockets shown per finding in text output (default 5)")
    p.set_defaults(run=lambda args, term, msg: run(
        ReportOptions(diagnose_options(args), args.json, max(args.sockets, 0)), term, msg))


# ---- gathering ---------------------------------------------------------------

def gather(opts: DiagnoseOptions, roots: Roots = Roots(), *,
           previous: dict | None = None, extra_scopes: tuple[Scope, ...] = ()) -> Diagnosis:
    """Snapshot, owners, fd usage, sysctl files, then the rules.

    ``previous`` maps a namespace inode to ``(KernelContext, time.time())``
    of an earlier sample (``check --state``); ``--interval`` takes one here.
    ``extra_scopes`` adds namespaces to the same diagnosis (rules that look
    across namespaces, such as conntrack-mismatch, see them all).
    """
    scopes = (opts.scope,) + tuple(extra_scopes)
    before = dict(previous or {})
    if opts.interval:
        t0 = time.time()
        before = {ino: (ctx, t0) for scope in scopes
                  for ino, ctx in _counters(scope, roots).items()}
        time.sleep(opts.interval)
    view = None
    for scope in scopes:
        part = query.collect(scope, tcp_info=True, roots=roots)
        _add_idle_info(part, scope, roots)
        if view is None:
            view = part
        else:
            view.parts += part.parts
            view.snapshot.namespaces += part.snapshot.namespaces
            view.snapshot.skipped += part.snapshot.skipped
    skipped = attach_owners(view, opts, roots)
    watchdb.attach(view, opts.db)  # ages from a fresh `tcplinger watch` database
    history = watch_trends(opts.db)  # and what grows, from the same database
    inputs = []
    for part in view.parts:
        prev = interval = None
        if part.ns.netns.inode in before:
            prev, when = before[part.ns.netns.inode]
            interval = max(part.ns.taken_at - when, 0.0)
        inputs.append(NamespaceInput(
            netns=part.ns.netns, kernel=part.ns.kernel, table=part.table,
            owners=part.owners, processes=fd_usage(part, roots),
            previous=prev, interval=interval,
            ages=part.tracked.to_ages() if part.tracked is not None else None,
            trends=history.of(part.ns.netns.inode) if history is not None else None))
    settings = read_sysctl_files(roots)
    findings = engine.diagnose(inputs, thresholds=opts.thresholds, rules=opts.rules,
                               sysctl_files=settings, sample_limit=opts.sample)
    return Diagnosis(view, inputs, findings, skipped, merge(opts.thresholds))


#: How far back the diagnosis fits growth in the watch database (the raw
#: samples' retention, and history's default).
TREND_WINDOW_S = 6 * 3600.0


@dataclass(frozen=True)
class WatchTrends:
    """What grows in the watch database: per (pid, state), and per
    namespace (``track.trends``, the same fits as ``tcplinger history``)."""

    by_owner: dict
    by_netns: dict  # inode -> (by_state {state: Trend}, connections Trend | None)

    def of(self, inode: int) -> NamespaceTrends:
        by_state, conns = self.by_netns.get(inode, ({}, None))
        return NamespaceTrends(self.by_owner, by_state, conns)


def watch_trends(given: Path | None, now: float | None = None,
                 window: float = TREND_WINDOW_S) -> WatchTrends | None:
    """Trends from the watch database when it is fresh, else None (a
    missing, stale or unreadable database: the diagnosis goes without)."""
    import sqlite3

    from ...track.store import Store
    path = watchdb.path_of(given)
    try:
        if not path.exists():
            return None
        store = Store(path, readonly=True)
    except (OSError, sqlite3.Error):
        return None
    try:
        now = time.time() if now is None else now
        return trends_of(store, now - window) if store.is_fresh(now) else None
    except sqlite3.Error:
        return None
    finally:
        store.db.close()


def trends_of(store, start: float) -> WatchTrends:
    """The growing series of ``store`` since ``start``, as diagnosis input."""
    cw = int(TcpState.CLOSE_WAIT)
    series = store.series(start, by="state_owner", states=[cw])
    owned = trends_mod.growing({k: v for k, v in series.items() if not k.endswith((" ", " -"))},
                               owners=store.owner_info())
    by_owner = {}
    for f in owned:
        pid = f.owner.partition("/")[0]  # owner keys are "pid/comm" (track.series)
        if pid.isdigit():
            by_owner[(int(pid), f.state)] = Trend.of(f)
    by_netns: dict = {}
    for f in trends_mod.namespace_limits(store.counts_by_netns_state(start), store.kernel_latest()):
        by_state, conns = by_netns.get(f.netns, ({}, None))
        if f.state is None:
            conns = Trend.of(f)
        else:
            by_state[f.state] = Trend.of(f)
        by_netns[f.netns] = (by_state, conns)
    return WatchTrends(by_owner, by_netns)


def _counters(scope: Scope, roots: Roots) -> dict:
    """Kernel context of each namespace in scope, by namespace inode."""
    targets, _ = snap_mod.resolve(scope, roots)
    host = kernel_reader.read_global_sysctls(roots.proc)
    proc_net = roots.proc / "thread-self" / "net"
    out = {}
    for info in targets:
        read = kernel_reader.read_kernel_context
        try:
            if info.current:
                out[info.inode] = read(roots.proc, proc_net=proc_net, global_sysctls=host)
            else:
                out[info.inode] = run_in_netns(info.path, read, roots.proc, proc_net=proc_net,
                                               global_sysctls=host)
        except OSError:
            continue  # the snapshot will say why this namespace cannot be read
    return out


def _add_idle_info(view: query.View, scope: Scope, roots: Roots) -> None:
    """Dump established sockets again with tcp_info when there are few."""
    est = int(TcpState.ESTABLISHED)
    n = sum(int(np.count_nonzero(p.table.rows["state"] == est)) for p in view.parts)
    if n == 0 or n > IDLE_INFO_MAX:
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


def _wanted_inodes(part: query.NsView) -> set[int]:
    rows = part.table.rows
    mask = np.isin(rows["state"], [int(s) for s in OWNED_STATES]) & (rows["inode"] != 0)
    info = part.table.info
    if info is not None:
        est = (rows["state"] == int(TcpState.ESTABLISHED)) & info["present"]
        idle = np.minimum(np.minimum(info["last_data_sent"], info["last_data_recv"]),
                          info["last_ack_recv"])
        timeout = BY_ID["keepalive-vs-idle-timeout"].defaults()["idle_timeout"] or 0
        mask |= est & (idle >= timeout * 1000) & (rows["inode"] != 0)
    return set(rows["inode"][mask].tolist())


def attach_owners(view: query.View, opts: DiagnoseOptions, roots: Roots) -> int | None:
    """Find owners for the inodes rules need. Returns the host's open-file
    count when the walk was skipped for cost, else None."""
    wanted = {p.ns.netns.inode: _wanted_inodes(p) for p in view.parts}
    if opts.owners is False:
        return None
    if not any(wanted.values()):
        for part in view.parts:
            part.owners = {}
        view.owners_resolved = True
        return None
    # A namespace that is not the caller's: walk only its processes.
    own = {p.ns.netns.inode for p in view.parts if p.ns.pids and not is_current(p, roots)}
    pids: set[int] | None = set()
    for p in view.parts:
        if wanted[p.ns.netns.inode] and p.ns.netns.inode not in own:
            pids = None  # the host's namespace (or unknown pids): everyone
            break
        if wanted[p.ns.netns.inode]:
            pids.update(p.ns.pids)
    if pids is None and opts.owners is None:
        n = files.open_files(roots.proc)
        if n is not None and n >= files.AUTO_OWNERS_MAX_FILES:
            return n
    all_wanted = set().union(*wanted.values())
    found = owners_mod.find_owners(all_wanted, roots.proc, pids=pids)
    view.unreadable_pids = getattr(found, "unreadable", 0)
    for part in view.parts:
        part.owners = found
    view.owners_resolved = True
    return None


def is_current(part: query.NsView, roots: Roots) -> bool:
    try:
        own = os.stat(roots.proc / "thread-self" / "ns" / "net").st_ino
    except OSError:
        return False
    return own == part.ns.netns.inode


def fd_usage(part: query.NsView, roots: Roots) -> dict:
    """RLIMIT_NOFILE and open fds of the processes holding CLOSE_WAIT."""
    if not part.owners:
        return {}
    rows = part.table.rows
    inodes = rows["inode"][(rows["state"] == int(TcpState.CLOSE_WAIT)) & (rows["inode"] != 0)]
    pids = {o.pid for ino in set(inodes.tolist()) for o in part.owners.get(ino, ())}
    out = {}
    for pid in sorted(pids):
        try:
            out[pid] = owners_mod.fd_usage(pid, roots.proc)
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


# ---- output ------------------------------------------------------------------

def run(opts: ReportOptions, term, msg, roots: Roots = Roots()) -> int:
    d = gather(opts.diagnose, roots)
    summaries = [namespace_summary(i) for i in d.inputs]
    if opts.json:
        doc = findings_export.document(d.findings, summaries, msg, thresholds=d.thresholds)
        doc.update(snapshot_meta(d.view))
        doc["owners_skipped_open_files"] = d.owners_skipped
        term.out(json.dumps(doc, indent=1))
    else:
        for line in report_view.render(summaries, d.findings, msg, width=term.width or 100,
                                       sockets=opts.sockets):
            term.out(line)
        if d.owners_skipped:
            term.out(msg("report.owners_skipped", n=d.owners_skipped))
    report_problems(d.view, term, msg)
    return int(Exit.OK)
