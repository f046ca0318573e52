"""``tcplinger tune``: a reviewed plan of sysctl changes from the findings.

Modes (docs/act.md):

* plan (default): the diagnosis (app/diagnosis.py, as ``report``), then
  current -> proposed for each sysctl, the finding it answers, the risk and
  the bound; and the findings no sysctl can fix, with what can.
* ``--write FILE``: the plan as a sysctl.d(5) snippet (nothing applied).
* ``--apply``: after confirmation (``--yes`` skips it), the plan is applied
  to one namespace (the current one, or ``--netns`` / ``--netns-pid``); the
  previous values go to a state file first.
* ``--revert``: puts back every value the state file holds for that
  namespace, exactly as it was read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ...act import audit as audit_mod
from ...act import sysctl_state as st
from ...act import tune_plan
from ...act.audit import AuditError
from ...app import tuning
from ...app.diagnosis import DiagnoseOptions, diagnose
from ...collect.roots import Roots
from ...diagnose.sysctl_bounds import BOUNDS, NEVER
from ..errors import CliError, Exit
from ..options import add_diagnose_args, diagnose_options, input_file, output_file
from ..output import report_problems

NAME = "tune"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TuneOptions:
    diagnose: DiagnoseOptions
    json: bool = False
    write: Path | None = None
    apply: bool = False
    revert: bool = False
    yes: bool = False
    force: bool = False
    state_file: Path | None = None
    audit_log: Path | None = None


def register(sub, h) -> None:
    p = sub.add_parser(
        NAME, help=h("help.tune"),
        description=h("help.tune.about"))
    add_diagnose_args(p, h)
    p.add_argument("--json", action="store_true", help=h("help.tune.json"))
    p.add_argument("--write", type=output_file, metavar="FILE", help=h("help.tune.write"))
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--apply", action="store_true",
                      help=h("help.tune.apply"))
    mode.add_argument("--revert", action="store_true",
                      help=h("help.tune.revert"))
    p.add_argument("--yes", action="store_true", help=h("help.tune.yes"))
    p.add_argument("--force", action="store_true",
                   help=h("help.tune.force"))
    p.add_argument("--state-file", type=input_file, metavar="PATH",
                   help=h("help.tune.state-file"))
    p.add_argument("--audit-log", type=input_file, metavar="PATH",
                   help=h("help.tune.audit-log"))
    p.set_defaults(run=lambda args, term, msg: run(TuneOptions(
        diagnose_options(args), args.json, args.write, args.apply, args.revert, args.yes,
        args.force, args.state_file, args.audit_log), term, msg))


# ---- running --------------------------------------------------------------------------

def run(opts: TuneOptions, term, msg, roots: Roots = Roots()) -> int:
    scope = opts.diagnose.observe.scope
    if scope.all_netns and (opts.revert or opts.apply or opts.write):
        raise CliError(msg("tune.err.one_netns"), Exit.USAGE)
    where = tuning.paths(opts.state_file, opts.audit_log, term.env, os.geteuid())
    if opts.revert:
        return _revert(opts, tuning.targets(scope, roots)[0], where, term, msg)
    diag = diagnose(opts.diagnose, roots)
    plan, facts = tuning.plan(diag, scope, roots)
    doc = {"schema": SCHEMA_VERSION, "mode": "apply" if opts.apply else "plan"}
    doc.update(plan_json(plan, msg))
    lines = render_plan(plan, msg, facts)
    if opts.write:
        inode = facts[0].netns.inode if facts else None
        tuning.write_snippet(opts.write, snippet(plan, msg, inode,
                                                 facts[0].host if facts else False))
        doc["written"] = str(opts.write)
        lines.append(msg("tune.written", path=str(opts.write)))
    code = Exit.OK
    if opts.apply:
        code, lines = _apply(opts, tuning.targets(scope, roots)[0], plan, where, doc, lines,
                             term, msg)
        if code is Exit.INTERRUPTED:
            return int(code)
    elif not opts.write and plan.proposals:
        lines.append(msg("tune.hint"))
    _emit(opts, term, lines, doc)
    report_problems(diag.view, term, msg)
    return int(code)


def _apply(opts, target: tuning.Target, plan, where, doc, lines, term,
           msg) -> tuple[Exit, list[str]]:
    """Confirm and apply one namespace's proposals (host-wide ones only on
    the host). Returns the exit code and the lines still to show."""
    props = [p for p in plan.for_netns(target.ref.inode) if target.host or not p.host_wide]
    for p in plan.for_netns(target.ref.inode):
        if p not in props:
            lines.append(msg("tune.skip_host_wide", sysctl=p.sysctl))
    if not props:
        lines.append(msg("tune.apply.nothing"))
        doc["applied"] = []
        return Exit.OK, lines
    _emit(opts, term, lines, None)
    if not _confirm(opts, term, msg, "tune.confirm.apply", n=len(props),
                    netns=target.ref.label()):
        term.out(msg("tune.declined"))
        return Exit.INTERRUPTED, []
    try:
        done = tuning.apply(target, props, where, term.env)
    except AuditError as exc:
        raise CliError(msg("tune.err.audit", error=exc.strerror or str(exc)),
                       Exit.PERMISSION) from None
    except tuning.StateError as exc:
        raise CliError(msg("tune.err.state", path=str(exc.path), error=exc.error),
                       Exit.PERMISSION) from None
    doc.update(applied=[o.to_json() for o in done.outcomes], state_file=str(where.state),
               audit_log=str(where.audit_log), run=done.run_id)
    lines = [_outcome_line(o, msg) for o in done.outcomes]
    lines.append(msg("tune.apply.done", ok=sum(o.ok for o in done.outcomes),
                     n=len(done.outcomes), state=str(where.state)))
    if all(o.ok for o in done.outcomes):
        return Exit.OK, lines
    denied = all(_denied(o) for o in done.outcomes if not o.ok)
    return (Exit.PERMISSION if denied else Exit.ERROR), lines


def _emit(opts, term, lines, doc) -> None:
    if opts.json:
        if doc is not None:
            term.out(json.dumps(doc, indent=1, default=str))
        return
    for line in lines:
        term.out(line)


def _denied(o: st.Outcome) -> bool:
    return bool(o.error) and ("denied" in o.error.lower() or "not permitted" in o.error.lower())


def _confirm(opts: TuneOptions, term, msg, key: str, **fields) -> bool:
    if opts.yes:
        return True
    term.stderr.write(msg(key, **fields) + " ")
    term.stderr.flush()
    stdin = term.stdin
    answer = stdin.readline()
    if not answer:
        term.stderr.write("\n")
    return answer.strip().lower() in ("y", "yes", msg("tune.yes_word").lower())


def _revert(opts: TuneOptions, target: tuning.Target, where, term, msg) -> int:
    # a --state-file named for a revert must be there (the default one may
    # be absent: nothing was applied); one that is not ours: exit 7
    entry, items = tuning.revert_items(target, where, required=opts.state_file is not None)
    doc = {"schema": SCHEMA_VERSION, "mode": "revert", "netns": target.ref.to_json(),
           "state_file": str(where.state), "reverted": []}
    if not items:
        if opts.json:
            term.out(json.dumps(doc, indent=1))
        else:
            term.out(msg("tune.revert.nothing", netns=target.ref.label(), path=str(where.state)))
        return int(Exit.OK)
    todo = [i for i in items if opts.force or not i.drifted]
    drifted = [i for i in items if i.drifted and not opts.force]
    lines = [msg("tune.revert.head", n=len(todo), netns=target.ref.label(),
                 when=entry.get("applied_at", "?"))]
    lines += [f"  {i.sysctl}: {i.current} -> {i.previous}" for i in todo]
    lines += ["  " + msg("tune.revert.drifted", sysctl=i.sysctl, current=i.current,
                         applied=i.applied, previous=i.previous) for i in drifted]
    _emit(opts, term, lines, None)
    lines = []
    if todo and not _confirm(opts, term, msg, "tune.confirm.revert", n=len(todo),
                             netns=target.ref.label()):
        term.out(msg("tune.declined"))
        return int(Exit.INTERRUPTED)
    outcomes: list[st.Outcome] = []
    if todo:
        try:
            done = tuning.revert(target, todo, where, term.env)
        except AuditError as exc:
            raise CliError(msg("tune.err.audit", error=exc.strerror or str(exc)),
                           Exit.PERMISSION) from None
        outcomes = done.outcomes
        doc["run"], doc["audit_log"] = done.run_id, str(where.audit_log)
    doc["reverted"] = [o.to_json() for o in outcomes]
    doc["drifted"] = [{"sysctl": i.sysctl, "current": i.current, "applied": i.applied,
                       "previous": i.previous} for i in drifted]
    lines += [_outcome_line(o, msg) for o in outcomes]
    lines.append(msg("tune.revert.done", ok=sum(o.ok for o in outcomes), n=len(outcomes)))
    _emit(opts, term, lines, doc)
    if drifted or not all(o.ok for o in outcomes):
        return int(Exit.ERROR)
    return int(Exit.OK)


def _outcome_line(o: st.Outcome, msg) -> str:
    if o.ok:
        return "  " + msg("tune.set", sysctl=o.sysctl, before=o.before, after=o.after)
    return "  " + msg("tune.set_failed", sysctl=o.sysctl, error=o.error or "?")


# ---- output ---------------------------------------------------------------------------

def render_plan(plan: tune_plan.TunePlan, msg, facts) -> list[str]:
    lines: list[str] = []
    for nf in facts:
        props = plan.for_netns(nf.netns.inode)
        advice = [a for a in plan.advice if a.netns.inode == nf.netns.inode]
        lines.append(msg("tune.head", netns=nf.netns.label(), n=len(props)))
        for p in props:
            lines.append(f"  {p.sysctl}: {tune_plan.format_value(p.current)} -> "
                         f"{tune_plan.format_value(p.proposed)}   ({', '.join(p.rules)})"
                         + ("  " + msg("tune.host_wide") if p.host_wide else ""))
            for w in p.why:
                lines.append("    " + msg("tune.label.why") + " " + w.render(msg))
            lines.append("    " + msg("tune.label.risk") + " " + p.risk.render(msg))
            lines.append("    " + msg("tune.label.bound") + " " + p.bound.render(msg))
        if advice:
            lines.append(msg("tune.advice.head"))
            for a in advice:
                lines.append(f"  {a.rule}: " + a.texts[0].render(msg))
                for t in a.texts[1:]:
                    lines.append("    " + t.render(msg))
    if plan.below_warning:
        lines.append(msg("tune.below_warning", n=plan.below_warning))
    if not plan.proposals and not plan.advice:
        lines.append(msg("tune.nothing"))
    return lines


def plan_json(plan: tune_plan.TunePlan, msg) -> dict:
    return {
        "proposals": [{
            "netns": p.netns.to_json(), "sysctl": p.sysctl, "path": p.path,
            "current": _jv(p.current), "proposed": _jv(p.proposed), "rules": list(p.rules),
            "why": [w.render(msg) for w in p.why], "risk": p.risk.render(msg),
            "bound": p.bound.render(msg), "host_wide": p.host_wide,
            "command": _command(p), "sources": list(BOUNDS[p.key].sources),
        } for p in plan.proposals],
        "no_sysctl": [{"netns": a.netns.to_json(), "rule": a.rule,
                       "text": [t.render(msg) for t in a.texts], "keys": [t.key for t in a.texts]}
                      for a in plan.advice],
        "below_warning": plan.below_warning,
        "findings": [{"rule": r, "severity": s, "netns": n.to_json()}
                     for r, s, n in plan.findings_used],
        "never": list(NEVER),
    }


def _jv(value):
    return list(value) if isinstance(value, tuple) else value


def _command(p: tune_plan.Proposal) -> str:
    value = tune_plan.format_value(p.proposed)
    return f'sysctl -w {p.sysctl}="{value}"' if " " in value else f"sysctl -w {p.sysctl}={value}"


def snippet(plan: tune_plan.TunePlan, msg, inode: int | None, host: bool) -> str:
    """A sysctl.d(5) file for one namespace's proposals, each with its reasons."""
    props = [p for p in plan.proposals if p.netns.inode == inode]
    out = [f"# {msg('tune.snippet.head', when=audit_mod.now_iso())}",
           f"# {msg('tune.snippet.load')}"]
    if not host:
        out.append(f"# {msg('tune.snippet.child')}")
    for p in props:
        out.append("")
        out.append(f"# {p.sysctl}: {tune_plan.format_value(p.current)} -> "
                   f"{tune_plan.format_value(p.proposed)} ({', '.join(p.rules)})")
        for w in p.why:
            out.append(f"#   {msg('tune.label.why')} {w.render(msg)}")
        out.append(f"#   {msg('tune.label.risk')} {p.risk.render(msg)}")
        out.append(f"#   {msg('tune.label.bound')} {p.bound.render(msg)}")
        out.append(f"{p.sysctl} = {tune_plan.format_value(p.proposed)}")
    if not props:
        out.append(f"# {msg('tune.nothing')}")
    return "\n".join(out) + "\n"
