"""``tcplinger kill``: end lingering sockets with SOCK_DESTROY, safely.

Without ``--yes`` it is a dry run: it prints the plan (each socket, its
owner, what its peer will see) and changes nothing. With ``--yes`` it
probes the kernel on sockets of its own, writes the intent to the audit
log, ends the targets in their own namespaces, looks each one up again
and reports what ended and what did not (docs/act.md).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...act import audit as audit_mod
from ...act import kill_exec, kill_plan, probe as probe_mod, selection
from ...act.kernel_support import Kind, Status, Support
from ...collect import files as files_mod
from ...collect import owners as owners_mod
from ...collect import snapshot as snap_mod
from ...collect.snapshot import Scope
from ...model.states import BY_STATE, TcpState
from ...ui.sockets import age_text
from ...ui.table import render as render_table
from .. import query
from ..errors import CliError, Exit
from ..options import Filters, add_scope, pid, port, scope_from, states
from ..output import report_problems, snapshot_meta

NAME = "kill"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class KillOptions:
    scope: Scope
    criteria: selection.KillCriteria
    yes: bool
    json: bool
    audit_log: Path | None


def _typed(fn):
    """An argparse type from a selection parser (BadValue -> usage error)."""
    def parse(text):
        try:
            return fn(text)
        except selection.BadValue as exc:
            raise argparse.ArgumentTypeError(str(exc))
    parse.__name__ = fn.__name__
    return parse


def register(sub) -> None:
    p = sub.add_parser(
        NAME, help="end lingering sockets (SOCK_DESTROY); a dry run unless --yes",
        description="End TCP sockets through sock_diag SOCK_DESTROY, in their own network "
                    "namespace. Without --yes nothing is changed: the plan is printed. "
                    "LISTEN sockets are always refused; ESTABLISHED (and opening) ones "
                    "unless --include-established. Default states: the lingering ones "
                    "(FIN_WAIT1, FIN_WAIT2, CLOSING, TIME_WAIT, CLOSE_WAIT, LAST_ACK).")
    add_scope(p)
    p.add_argument("--state", type=states, metavar="LIST",
                   help="comma-separated states or groups (default: lingering)")
    p.add_argument("--pid", type=pid, help="only sockets held by this process")
    p.add_argument("--comm", metavar="NAME", help="only sockets held by a process of this name"
                                                  " (as in /proc/PID/comm)")
    p.add_argument("--port", type=port, help="local or remote port")
    p.add_argument("--sport", type=port, help="local (source) port")
    p.add_argument("--dport", type=port, help="remote (destination) port")
    p.add_argument("--peer", type=_typed(selection.parse_peer), action="append", default=[],
                   metavar="ADDR[/PREFIX]", help="remote address or network (repeatable)")
    p.add_argument("--older-than", type=_typed(selection.parse_duration), metavar="DURATION",
                   help="only sockets known to be in their state at least this long "
                        "(90s, 5m, 2h); unknown ages are left out, never guessed")
    p.add_argument("--cookie", type=_typed(selection.parse_cookie), action="append", default=[],
                   help="sock_diag cookie, as `tcplinger ls --json` shows it (repeatable)")
    p.add_argument("--include-established", action="store_true",
                   help="allow ending ESTABLISHED (and SYN_SENT/SYN_RECV) connections")
    p.add_argument("--max", type=_typed(selection.parse_max), default=selection.DEFAULT_MAX,
                   metavar="N", help=f"end at most N sockets (default {selection.DEFAULT_MAX})")
    p.add_argument("--yes", action="store_true", help="act: end the sockets (default: dry run)")
    p.add_argument("--json", action="store_true", help="JSON output (docs/act.md)")
    p.add_argument("--audit-log", type=Path, metavar="PATH",
                   help="audit log file (default /var/log/tcplinger/audit.jsonl for root, "
                        "~/.local/state/tcplinger/audit.jsonl otherwise)")
    p.set_defaults(run=lambda args, term, msg: run(options_from(args), term, msg))


def options_from(args) -> KillOptions:
    criteria = selection.KillCriteria(
        states=args.state, pid=args.pid, comm=args.comm, port=args.port, sport=args.sport,
        dport=args.dport, peers=tuple(args.peer), older_than=args.older_than,
        cookies=frozenset(args.cookie), include_established=args.include_established,
        max=args.max)
    return KillOptions(scope_from(args), criteria, args.yes, args.json, args.audit_log)


# ---- running --------------------------------------------------------------------

def run(opts: KillOptions, term, msg) -> int:
    c = opts.criteria
    if not c.has_filter():
        raise CliError(msg("kill.err.no_filter"), Exit.USAGE)
    log = None
    if opts.yes:  # refuse before looking, when the action could not be recorded
        path = opts.audit_log or audit_mod.default_path(os.geteuid(), term.env)
        try:
            log = audit_mod.AuditLog(path)
        except audit_mod.AuditError as exc:
            raise CliError(msg("kill.err.audit", error=exc.strerror or str(exc)),
                           Exit.PERMISSION) from None
    try:
        return _run(opts, term, msg, log)
    finally:
        if log is not None:
            log.close()


def _run(opts: KillOptions, term, msg, log) -> int:
    c = opts.criteria
    view = collect(opts.scope, c)
    parts = [_part(p) for p in view.parts]
    kinds = kill_plan.candidate_kinds([p for p in parts if p.source == "netlink"], c)
    support = probe_mod.probe(kinds) if kinds else Support()
    plan = kill_plan.plan(parts, c, support)

    results: list[kill_exec.Result] | None = None
    run_id = None
    fds = kill_exec.owner_fds(plan)
    if opts.yes and plan.targets:
        run_id = audit_mod.new_run_id()
        who = audit_mod.who_am_i(term.env)
        log.append(audit_mod.record("kill.start", run_id, who, audit_mod.now_iso(),
                                    criteria=c.to_json(), kernel=support.to_json(),
                                    sockets=[t.to_json() for t in plan.targets]))
        targets, _ = snap_mod.resolve(opts.scope)
        paths = {info.inode: kill_exec.NetnsPath(info.path, info.current) for info in targets}
        results = kill_exec.execute(plan, paths)
        fds = kill_exec.remeasure(fds)
        log.append(audit_mod.record("kill.result", run_id, who, audit_mod.now_iso(),
                                    summary=kill_exec.summary(results),
                                    results=[r.to_json() for r in results]))
    elif opts.yes:
        results = []

    if opts.json:
        doc = document(plan, results, msg, dry_run=not opts.yes,
                       audit_log=str(log.path) if log and run_id else None, run=run_id)
        doc["owner_fds"] = [f.to_json() for f in fds]
        doc.update(snapshot_meta(view))
        term.out(json.dumps(doc, indent=1))
    else:
        for line in render(plan, results, msg, dry_run=not opts.yes, width=term.width, fds=fds):
            term.out(line)
        if log is not None and run_id:
            term.out(msg("kill.audit", path=str(log.path), run=run_id))
    for line in warnings(plan, msg):
        term.err(line)
    report_problems(view, term, msg)
    if opts.yes and plan.refused and not plan.targets:
        term.err(msg("kill.err.all_refused"))
        return int(Exit.REFUSED)  # nothing was done: every selected socket was refused
    return int(exit_code(results))


def collect(scope: Scope, c: selection.KillCriteria) -> query.View:
    """The sockets in scope matching the kernel-side filters, with owners.

    Owners are looked up for the selected rows only, walking the fds of the
    namespace's own processes when it is not the caller's (as ``report``
    does; a full walk of a busy host costs seconds), plus ``--pid``'s.
    """
    pid_inodes = None
    if c.pid is not None:  # first: a missing pid fails before any dump
        pid_inodes = files_mod.socket_inodes(c.pid)
    filters = Filters(states=c.wanted_states(), port=c.port, sport=c.sport, dport=c.dport)
    view = query.collect(scope, filters, want_owners=False)
    wanted: set[int] = set()
    pids: set[int] | None = set()
    for part in view.parts:
        if pid_inodes is not None:
            keep = np.isin(part.table.rows["inode"], np.fromiter(pid_inodes, dtype=np.uint64))
            part.table = part.table.select(keep)
        inodes = part.table.rows["inode"]
        mine = set(np.unique(inodes[inodes != 0]).tolist())
        wanted |= mine
        if mine and pids is not None:
            if _is_own(part) or not part.ns.pids:
                pids = None
            else:
                pids.update(part.ns.pids)
    if pids is not None and c.pid is not None:
        pids.add(c.pid)
    found = owners_mod.find_owners(wanted, pids=pids) if wanted else {}
    view.unreadable_pids = getattr(found, "unreadable", 0)
    for part in view.parts:
        part.owners = found
    view.owners_resolved = True
    return view


def _part(p: query.NsView) -> kill_plan.PlanPart:
    exact, lower = p.age_arrays()
    prefix = ""
    if not p.ns.netns.name and p.ns.pids and not _is_own(p):
        prefix = f"nsenter -t {p.ns.pids[0]} -n"
    return kill_plan.PlanPart(p.ns.netns, p.table, exact, lower, p.owners, p.ns.source, prefix)


def _is_own(p: query.NsView) -> bool:
    try:
        return os.stat("/proc/thread-self/ns/net").st_ino == p.ns.netns.inode
    except OSError:
        return False


def exit_code(results) -> Exit:
    """0 when every target ended or was already gone (or a dry run)."""
    if not results:
        return Exit.OK
    bad = [r.outcome for r in results if r.outcome not in (kill_exec.Outcome.ENDED,
                                                           kill_exec.Outcome.ALREADY_GONE)]
    if not bad:
        return Exit.OK
    if all(o is kill_exec.Outcome.NOT_PERMITTED for o in bad):
        return Exit.PERMISSION
    if all(o is kill_exec.Outcome.UNSUPPORTED for o in bad):
        return Exit.UNSUPPORTED
    return Exit.ERROR


# ---- output -----------------------------------------------------------------------

def document(plan: kill_plan.KillPlan, results, msg, *, dry_run: bool, audit_log, run) -> dict:
    doc = {"schema": SCHEMA_VERSION, "dry_run": dry_run}
    doc.update(plan.to_json())
    for r in doc["refused"]:
        r["reason_text"] = msg(f"kill.refused.{r['reason']}")
    if results is not None:
        doc["results"] = [r.to_json() for r in results]
        doc["summary"] = kill_exec.summary(results)
    doc["audit_log"] = audit_log
    doc["run"] = run
    doc["kernel_warnings"] = warnings(plan, msg)
    return doc


def _state_word(state: int) -> str:
    try:
        return BY_STATE[TcpState(state)].ss_name
    except (ValueError, KeyError):
        return str(state)


def _owner(rec, msg) -> str:
    if rec.owners:
        return ",".join(f"{o.comm} (pid {o.pid})" for o in rec.owners)
    if rec.inode == 0:
        return msg("kill.owner.timewait") if rec.timewait_type else msg("kill.owner.orphan")
    return msg("kill.owner.unknown")


def render(plan: kill_plan.KillPlan, results, msg, *, dry_run: bool, width: int,
           fds=()) -> list[str]:
    lines: list[str] = []
    multi = len({t.socket.netns.inode for t in plan.targets if t.socket.netns}) > 1
    outcome = {id(r.target): r for r in results or ()}
    if dry_run:
        lines.append(msg("kill.head.dry", n=len(plan.targets)))
    else:
        lines.append(msg("kill.head.act", n=len(plan.targets)))
    if plan.targets:
        headers = [msg("kill.col.state"), msg("kill.col.local"), msg("kill.col.remote"),
                   msg("kill.col.age"), msg("kill.col.owner"), msg("kill.col.peer")]
        if multi:
            headers.insert(0, msg("kill.col.netns"))
        if results is not None:
            headers.append(msg("kill.col.result"))
        rows = []
        for t in plan.targets:
            s = t.socket
            row = [_state_word(s.state), str(s.local), str(s.remote), age_text(s),
                   _owner(s, msg), msg(f"kill.peer.{t.peer_sees}")]
            if multi:
                row.insert(0, s.netns.label() if s.netns else "")
            if results is not None:
                r = outcome.get(id(t))
                row.append(_result_text(r, msg) if r else "")
            rows.append(row)
        lines += ["  " + x for x in render_table(headers, rows, max_width=width)]
        owners_see = sorted({t.owner_sees for t in plan.targets if t.owner_sees != "none"})
        for key in owners_see:
            lines.append(msg(f"kill.owner_sees.{key}"))
        lines += _fd_lines(fds, msg, dry_run)
        if any(t.peer_sees == "nothing" for t in plan.targets):
            lines.append(msg("kill.peer_nothing_note"))
        if any(t.socket.state == TcpState.TIME_WAIT for t in plan.targets):
            lines.append(msg("kill.tw_note"))
    if plan.refused:
        lines.append(msg("kill.refused.head", n=len(plan.refused)))
        for r in plan.refused:
            s = r.socket
            lines.append(f"  {_state_word(s.state)} {s.local} -> {s.remote}  {_owner(s, msg)}:"
                         f" {msg('kill.refused.' + r.reason.value)}")
            if r.reason is kill_plan.Refusal.KERNEL:
                lines.append("    " + msg("kill.alt.kernel." + r.kind.value))
            if r.reason in (kill_plan.Refusal.KERNEL, kill_plan.Refusal.ESTABLISHED,
                            kill_plan.Refusal.NO_COOKIE):
                lines.append("    " + msg("kill.alt.ss", line=r.ss_kill))
    if plan.age_unknown:
        lines.append(msg("kill.left.age", n=plan.age_unknown,
                         t=_seconds(plan.criteria.older_than)))
    if plan.over_max:
        lines.append(msg("kill.left.max", n=plan.over_max, max=plan.criteria.max))
    if not plan.targets and not plan.refused and not plan.age_unknown:
        lines.append(msg("kill.nothing"))
    lines.append(_kernel_line(plan.support, msg))
    if results is not None and results:
        s = kill_exec.summary(results)
        lines.append(msg("kill.summary", ended=s["ended"], total=len(results),
                         gone=s["already_gone"],
                         failed=len(results) - s["ended"] - s["already_gone"]))
        failures = [r for r in results if r.outcome not in (kill_exec.Outcome.ENDED,
                                                            kill_exec.Outcome.ALREADY_GONE)]
        for key in sorted({r.outcome.value for r in failures}):
            lines.append("  " + msg(f"kill.why.{key}"))
    elif dry_run and plan.targets:
        lines.append(msg("kill.hint_yes"))
    return lines


def _fd_lines(fds, msg, dry_run: bool) -> list[str]:
    """Ending a socket does not close the owner's fd (act/kill_exec.OwnerFds)."""
    if not fds:
        return []
    lines = [msg("kill.fd_note")]
    for f in fds:
        limit = f.limit if f.limit is not None else msg("kill.fds.unlimited")
        if dry_run or f.after is None:
            lines.append("  " + msg("kill.fds.dry", comm=f.comm, pid=f.pid, n=f.sockets,
                                    fds="?" if f.before is None else f.before, limit=limit))
        else:
            lines.append("  " + msg("kill.fds.act", comm=f.comm, pid=f.pid, n=f.sockets,
                                    before="?" if f.before is None else f.before,
                                    after=f.after, limit=limit))
    return lines


def _result_text(r: kill_exec.Result, msg) -> str:
    text = msg(f"kill.result.{r.outcome.value}")
    if r.errno and r.outcome is not kill_exec.Outcome.ALREADY_GONE:
        text += f" ({kill_exec.describe_errno(r.errno)})"
    return text


def _seconds(value) -> str:
    from ...ui.table import duration
    return duration(value)


def _kernel_line(support: Support, msg) -> str:
    if support.where == "none":
        return msg("kill.kernel.none")
    parts = [msg("kill.kernel.item", kind=msg("kill.kind." + k.value),
                 status=msg("kill.status." + support.get(k).status.value))
             for k in Kind if k in support.results]
    return msg("kill.kernel.line", kinds=msg("kill.kernel.sep").join(parts),
               where=msg("kill.where." + support.where))


def warnings(plan: kill_plan.KillPlan, msg) -> list[str]:
    """Kernel limits that matter for this plan (stderr in text, a list in JSON)."""
    out = []
    needed = {r.kind for r in plan.refused if r.reason is kill_plan.Refusal.KERNEL}
    needed |= set(plan.kinds_needed)
    for kind in sorted(needed, key=lambda k: k.value):
        p = plan.support.get(kind)
        if p.status is Status.UNSUPPORTED:
            out.append(msg("kill.warn.unsupported." + kind.value, detail=p.detail))
        elif p.status is Status.STUCK:
            out.append(msg("kill.warn.stuck." + kind.value, detail=p.detail))
        elif p.status is Status.DENIED:
            out.append(msg("kill.warn.denied", detail=p.detail))
        elif p.status is Status.UNKNOWN and plan.support.where != "none":
            out.append(msg("kill.warn.unknown", kind=msg("kill.kind." + kind.value),
                           detail=p.detail))
    return out
