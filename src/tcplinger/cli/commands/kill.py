"""``tcplinger kill``: end lingering sockets with SOCK_DESTROY, safely.

Without ``--yes`` it is a dry run: it prints the plan (each socket, its
owner, what its peer will see) and changes nothing. With ``--yes`` it
probes the kernel on sockets of its own, writes the intent to the audit
log, ends the targets in their own namespaces, looks each one up again
and reports what ended and what did not (docs/act.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...act import kill_exec, kill_plan, selection
from ...act.audit import AuditError
from ...model.sock_destroy import Kind, Status, Support
from ...app import kill as kill_app
from ...collect.roots import Roots
from ...collect.snapshot import Scope
from ...model.states import BY_STATE, TcpState
from ...ui.sockets import age_text
from ...ui.table import duration, render as render_table
from ..errors import CliError, Exit
from ..options import (LONGEST, OptionError, add_scope, count_type, duration_type, input_file,
                       pid, port, scope_from, states)
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
            raise OptionError.of(exc) from None
    parse.__name__ = fn.__name__
    return parse


def register(sub, h) -> None:
    p = sub.add_parser(
        NAME, help=h("help.kill"),
        description=h("help.kill.about"))
    add_scope(p, h)
    p.add_argument("--state", type=states, metavar="LIST",
                   help=h("help.kill.state"))
    p.add_argument("--pid", type=pid, help=h("help.kill.pid"))
    p.add_argument("--comm", metavar="NAME", help=h("help.kill.comm"))
    p.add_argument("--port", type=port, help=h("help.kill.port"))
    p.add_argument("--sport", type=port, help=h("help.kill.sport"))
    p.add_argument("--dport", type=port, help=h("help.kill.dport"))
    p.add_argument("--peer", type=_typed(selection.parse_peer), action="append", default=[],
                   metavar="ADDR[/PREFIX]", help=h("help.kill.peer"))
    p.add_argument("--older-than", type=duration_type(maximum=LONGEST), metavar="DURATION",
                   help=h("help.kill.older-than"))
    p.add_argument("--cookie", type=_typed(selection.parse_cookie), action="append", default=[],
                   help=h("help.kill.cookie"))
    p.add_argument("--include-established", action="store_true",
                   help=h("help.kill.include-established"))
    p.add_argument("--max", type=count_type(minimum=1, maximum=selection.MAX_MAX),
                   default=selection.DEFAULT_MAX,
                   metavar="N", help=h("help.kill.max", max=selection.DEFAULT_MAX))
    p.add_argument("--yes", action="store_true", help=h("help.kill.yes"))
    p.add_argument("--json", action="store_true", help=h("help.kill.json"))
    p.add_argument("--audit-log", type=input_file, metavar="PATH",
                   help=h("help.kill.audit-log"))
    p.set_defaults(run=lambda args, term, msg: run(options_from(args), term, msg))


def options_from(args) -> KillOptions:
    criteria = selection.KillCriteria(
        states=args.state, pid=args.pid, comm=args.comm, port=args.port, sport=args.sport,
        dport=args.dport, peers=tuple(args.peer), older_than=args.older_than,
        cookies=frozenset(args.cookie), include_established=args.include_established,
        max=args.max)
    return KillOptions(scope_from(args), criteria, args.yes, args.json, args.audit_log)


# ---- running --------------------------------------------------------------------

def run(opts: KillOptions, term, msg, roots: Roots = Roots()) -> int:
    if not opts.criteria.has_filter():
        raise CliError(msg("kill.err.no_filter"), Exit.USAGE)
    try:
        done = kill_app.kill(opts.scope, opts.criteria, act=opts.yes, audit_log=opts.audit_log,
                             env=term.env, roots=roots)
    except AuditError as exc:
        raise CliError(msg("kill.err.audit", error=exc.strerror or str(exc)),
                       Exit.PERMISSION) from None
    plan, results = done.plan, done.results
    if opts.json:
        doc = document(plan, results, msg, dry_run=not opts.yes,
                       audit_log=str(done.audit_log) if done.run_id else None, run=done.run_id)
        doc["owner_fds"] = [f.to_json() for f in done.fds]
        doc.update(snapshot_meta(done.view))
        term.out(json.dumps(doc, indent=1))
    else:
        for line in render(plan, results, msg, dry_run=not opts.yes, width=term.width,
                           fds=done.fds):
            term.out(line)
        if done.run_id:
            term.out(msg("kill.audit", path=str(done.audit_log), run=done.run_id))
    for line in warnings(plan, msg):
        term.err(line)
    report_problems(done.view, term, msg)
    if opts.yes and plan.refused and not plan.targets:
        term.err(msg("kill.err.all_refused"))
        return int(Exit.REFUSED)  # nothing was done: every selected socket was refused
    return int(exit_code(results))


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
                         t=duration(plan.criteria.older_than)))
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
