"""``tcplinger tune``: a reviewed plan of sysctl changes from the findings.

Modes (docs/act.md):

* plan (default): the diagnosis (``report``'s gathering), then
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
from ...act import tune_bounds as tb
from ...act import tune_plan
from ...collect import snapshot as snap_mod
from ...collect.snapshot import Scope
from ...model.socket import NetnsRef
from ..errors import CliError, Exit
from ..output import report_problems
from .report import DiagnoseOptions, add_diagnose_args, diagnose_options, gather

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


def register(sub) -> None:
    p = sub.add_parser(
        NAME, help="a reviewed plan of sysctl changes from the findings (--apply, --revert)",
        description="Turn the findings into sysctl changes: current -> proposed value, the "
                    "finding each answers, its risk and the bound that limits it. Says when no "
                    "sysctl can help (a CLOSE_WAIT leak is a code bug). Never proposes "
                    "tcp_tw_recycle.")
    add_diagnose_args(p)
    p.add_argument("--json", action="store_true", help="JSON output (docs/act.md)")
    p.add_argument("--write", type=Path, metavar="FILE", help="write the plan as a sysctl.d snippet")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--apply", action="store_true",
                      help="apply the plan to the namespace after confirmation")
    mode.add_argument("--revert", action="store_true",
                      help="restore the values recorded by the last --apply")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--force", action="store_true",
                   help="with --revert: also restore values changed since by someone else")
    p.add_argument("--state-file", type=Path, metavar="PATH",
                   help="where --apply records previous values (default "
                        "/var/lib/tcplinger/tune-state.json for root)")
    p.add_argument("--audit-log", type=Path, metavar="PATH",
                   help="audit log file (default /var/log/tcplinger/audit.jsonl for root)")
    p.set_defaults(run=lambda args, term, msg: run(TuneOptions(
        diagnose_options(args), args.json, args.write, args.apply, args.revert, args.yes,
        args.force, args.state_file, args.audit_log), term, msg))


# ---- namespaces -----------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    ref: NetnsRef
    path: str | None  # None: the caller's own namespace
    host: bool


def _host_inode() -> int | None:
    try:
        return os.stat("/proc/1/ns/net").st_ino
    except OSError:
        return None


def _targets(scope: Scope) -> list[Target]:
    infos, _ = snap_mod.resolve(scope)
    host = _host_inode()
    return [Target(i.ref, None if i.current else i.path, i.inode == host) for i in infos]


def _one_target(scope: Scope, msg) -> Target:
    if scope.all_netns:
        raise CliError(msg("tune.err.one_netns"), Exit.USAGE)
    return _targets(scope)[0]


def _extras(target: Target) -> dict:
    paths = [tb.sysctl_path(k) for k in tb.EXTRA_PATHS]
    got = st.in_netns(target.path, st.read_values, paths)
    out = {}
    for key in tb.EXTRA_PATHS:
        text = got.get(tb.sysctl_path(key))
        if text is not None and text.strip().lstrip("-").isdigit():
            out[key] = int(text)
    return out


# ---- running --------------------------------------------------------------------------

def run(opts: TuneOptions, term, msg) -> int:
    scope = opts.diagnose.scope
    if opts.revert:
        return _revert(opts, _one_target(scope, msg), term, msg)
    if (opts.apply or opts.write) and scope.all_netns:
        raise CliError(msg("tune.err.one_netns"), Exit.USAGE)
    diag = gather(opts.diagnose)
    targets = {t.ref.inode: t for t in _targets(scope)}
    facts = []
    for part in diag.view.parts:
        t = targets.get(part.ns.netns.inode)
        sysctls = dict(part.ns.kernel.sysctls)
        if t is not None:
            try:
                sysctls.update(_extras(t))
            except OSError:
                pass
        facts.append(tune_plan.NamespaceFacts(part.ns.netns, sysctls,
                                              bool(t and t.host)))
    plan = tune_plan.plan(diag.findings, facts)
    doc = {"schema": SCHEMA_VERSION, "mode": "apply" if opts.apply else "plan"}
    doc.update(plan_json(plan, msg))
    code = Exit.OK
    lines = render_plan(plan, msg, facts)
    if opts.write:
        inode = facts[0].netns.inode if facts else None
        text = snippet(plan, msg, inode, facts[0].host if facts else False)
        _write_file(opts.write, text)
        doc["written"] = str(opts.write)
        lines.append(msg("tune.written", path=str(opts.write)))
    if opts.apply:
        target = _one_target(scope, msg)
        props = [p for p in plan.for_netns(target.ref.inode)
                 if target.host or not p.host_wide]
        skipped = [p for p in plan.for_netns(target.ref.inode) if p not in props]
        for p in skipped:
            lines.append(msg("tune.skip_host_wide", sysctl=p.sysctl))
        if not props:
            lines.append(msg("tune.apply.nothing"))
            doc["applied"] = []
        else:
            _emit(opts, term, lines, None)
            lines = []
            if not _confirm(opts, term, msg, "tune.confirm.apply", n=len(props),
                            netns=target.ref.label()):
                term.out(msg("tune.declined"))
                return int(Exit.INTERRUPTED)
            outcomes, state_path, run_id, audit_path = _apply(opts, target, props, term, msg)
            doc["applied"] = [o.to_json() for o in outcomes]
            doc["state_file"] = str(state_path)
            doc["audit_log"] = str(audit_path)
            doc["run"] = run_id
            for o in outcomes:
                lines.append(_outcome_line(o, msg))
            lines.append(msg("tune.apply.done", ok=sum(o.ok for o in outcomes),
                             n=len(outcomes), state=str(state_path)))
            if not all(o.ok for o in outcomes):
                code = Exit.PERMISSION if all(_denied(o) for o in outcomes if not o.ok) \
                    else Exit.ERROR
    elif not opts.write and plan.proposals:
        lines.append(msg("tune.hint"))
    _emit(opts, term, lines, doc)
    report_problems(diag.view, term, msg)
    return int(code)


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


def _paths(opts: TuneOptions, term) -> tuple[Path, Path]:
    uid = os.geteuid()
    state = opts.state_file or st.default_state_path(uid, term.env)
    log = opts.audit_log or audit_mod.default_path(uid, term.env)
    return state, log


def _open_log(path: Path, msg):
    try:
        return audit_mod.AuditLog(path)
    except audit_mod.AuditError as exc:
        raise CliError(msg("tune.err.audit", error=exc.strerror or str(exc)),
                       Exit.PERMISSION) from None


def _apply(opts, target: Target, props, term, msg):
    state_path, log_path = _paths(opts, term)
    state = st.StateFile(state_path)
    changes = [st.Change(p.sysctl, p.path, tune_plan.format_value(p.proposed)) for p in props]
    with _open_log(log_path, msg) as log:
        run_id = audit_mod.new_run_id()
        who = audit_mod.who_am_i(term.env)
        when = audit_mod.now_iso()
        current = st.in_netns(target.path, st.read_values, [c.path for c in changes])
        log.append(audit_mod.record("tune.apply.start", run_id, who, when,
                                    netns=target.ref.to_json(), state_file=str(state_path),
                                    changes=[{"sysctl": c.sysctl, "from": current.get(c.path),
                                              "to": c.value, "rules": list(p.rules)}
                                             for c, p in zip(changes, props)]))
        try:
            st.record_intent(state, target.ref, changes, current, when, run_id)
        except (OSError, ValueError) as exc:
            raise CliError(msg("tune.err.state", path=str(state_path), error=str(exc)),
                           Exit.PERMISSION) from None
        outcomes = st.in_netns(target.path, st.write_values, changes)
        st.record_applied(state, target.ref, outcomes)
        log.append(audit_mod.record("tune.apply.result", run_id, who, audit_mod.now_iso(),
                                    netns=target.ref.to_json(),
                                    results=[o.to_json() for o in outcomes]))
    return outcomes, state_path, run_id, log_path


def _revert(opts: TuneOptions, target: Target, term, msg) -> int:
    state_path, log_path = _paths(opts, term)
    state = st.StateFile(state_path)
    try:
        entry = state.entry(target.ref)
    except ValueError as exc:
        raise CliError(str(exc), Exit.ERROR) from None
    doc = {"schema": SCHEMA_VERSION, "mode": "revert", "netns": target.ref.to_json(),
           "state_file": str(state_path), "reverted": []}
    if not entry or not entry.get("values"):
        if opts.json:
            term.out(json.dumps(doc, indent=1))
        else:
            term.out(msg("tune.revert.nothing", netns=target.ref.label(), path=str(state_path)))
        return int(Exit.OK)
    paths = [v["path"] for v in entry["values"].values()]
    current = st.in_netns(target.path, st.read_values, paths)
    items = st.revert_items(entry, current)
    todo = [i for i in items if opts.force or not i.drifted]
    drifted = [i for i in items if i.drifted and not opts.force]
    lines = [msg("tune.revert.head", n=len(todo), netns=target.ref.label(),
                 when=entry.get("applied_at", "?"))]
    for i in todo:
        lines.append(f"  {i.sysctl}: {i.current} -> {i.previous}")
    for i in drifted:
        lines.append("  " + msg("tune.revert.drifted", sysctl=i.sysctl, current=i.current,
                                applied=i.applied, previous=i.previous))
    if not opts.json:
        for line in lines:
            term.out(line)
        lines = []
    if todo and not _confirm(opts, term, msg, "tune.confirm.revert", n=len(todo),
                             netns=target.ref.label()):
        term.out(msg("tune.declined"))
        return int(Exit.INTERRUPTED)
    outcomes: list[st.Outcome] = []
    if todo:
        with _open_log(log_path, msg) as log:
            run_id = audit_mod.new_run_id()
            who = audit_mod.who_am_i(term.env)
            changes = [st.Change(i.sysctl, i.path, i.previous) for i in todo]
            log.append(audit_mod.record("tune.revert.start", run_id, who, audit_mod.now_iso(),
                                        netns=target.ref.to_json(), state_file=str(state_path),
                                        changes=[{"sysctl": c.sysctl, "from": i.current,
                                                  "to": c.value}
                                                 for c, i in zip(changes, todo)]))
            outcomes = st.in_netns(target.path, st.write_values, changes)
            st.forget(state, target.ref, [o.sysctl for o in outcomes if o.ok])
            log.append(audit_mod.record("tune.revert.result", run_id, who, audit_mod.now_iso(),
                                        netns=target.ref.to_json(),
                                        results=[o.to_json() for o in outcomes]))
            doc["run"] = run_id
            doc["audit_log"] = str(log_path)
    doc["reverted"] = [o.to_json() for o in outcomes]
    doc["drifted"] = [{"sysctl": i.sysctl, "current": i.current, "applied": i.applied,
                       "previous": i.previous} for i in drifted]
    for o in outcomes:
        lines.append(_outcome_line(o, msg))
    lines.append(msg("tune.revert.done", ok=sum(o.ok for o in outcomes), n=len(outcomes)))
    if opts.json:
        term.out(json.dumps(doc, indent=1))
    else:
        for line in lines:
            term.out(line)
    if drifted or not all(o.ok for o in outcomes):
        return int(Exit.ERROR)
    return int(Exit.OK)


def _outcome_line(o: st.Outcome, msg) -> str:
    if o.ok:
        return "  " + msg("tune.set", sysctl=o.sysctl, before=o.before, after=o.after)
    return "  " + msg("tune.set_failed", sysctl=o.sysctl, error=o.error or "?")


def _write_file(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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
            "command": _command(p), "sources": list(tb.BOUNDS[p.key].sources),
        } for p in plan.proposals],
        "no_sysctl": [{"netns": a.netns.to_json(), "rule": a.rule,
                       "text": [t.render(msg) for t in a.texts], "keys": [t.key for t in a.texts]}
                      for a in plan.advice],
        "below_warning": plan.below_warning,
        "findings": [{"rule": r, "severity": s, "netns": n.to_json()}
                     for r, s, n in plan.findings_used],
        "never": list(tb.NEVER),
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
