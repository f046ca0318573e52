"""``tcplinger lab``: reproduce a teardown pathology on this kernel, in
throwaway network namespaces, and show its timeline (docs/lab.md).

    tcplinger lab list [--json]
    tcplinger lab run SCENARIO [--set NAME=VALUE ...] [--duration S] [--json] [--svg FILE]
    tcplinger lab clean [--json]
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ...app import lab
from ...app.lab import ALL, DEFAULT_INTERVAL_S, MAX_INTERVAL_S, MIN_INTERVAL_S, SYSCTLS, parse_sets
from ...fsutil import atomic_write
from ...model.params import ParamError
from ...ui import timeline as tl_view
from ..errors import CatalogError, CliError, Exit, said
from ..options import DAY, duration_type, output_file
from ..output import generated, write_page

NAME = "lab"

#: Runs expected to last longer than this show their progress on a terminal.
PROGRESS_MIN_S = 3.0


@dataclass(frozen=True)
class RunOptions:
    scenario: str
    sets: tuple[tuple[str, str], ...]
    duration: float | None
    json: bool
    svg: Path | None
    interval: float
    tracefs: bool
    capture: bool
    diagnose: bool
    html: Path | None = None


def register(sub, h) -> None:
    p = sub.add_parser(NAME, help=h("lab.help.command"), description=h("lab.help.description"))
    actions = p.add_subparsers(dest="lab_action", metavar="ACTION", parser_class=type(p))

    pl = actions.add_parser("list", help=h("lab.help.list"), description=h("lab.help.list"))
    pl.add_argument("--json", action="store_true", help=h("lab.help.json"))
    pl.set_defaults(run=lambda args, term, msg: run_list(args.json, term, msg))

    pr = actions.add_parser("run", help=h("lab.help.run"), description=h("lab.help.run"))
    pr.add_argument("scenario", metavar="SCENARIO", help=h("lab.help.scenario"))
    pr.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                    help=h("lab.help.set"))
    pr.add_argument("--duration", type=duration_type(maximum=DAY, positive=True), metavar="S",
                    help=h("lab.help.duration"))
    pr.add_argument("--json", action="store_true", help=h("lab.help.json"))
    pr.add_argument("--svg", type=output_file, metavar="FILE", help=h("lab.help.svg"))
    pr.add_argument("--html", type=output_file, metavar="FILE", help=h("lab.help.html"))
    pr.add_argument("--interval", type=duration_type(minimum=MIN_INTERVAL_S, maximum=MAX_INTERVAL_S),
                    default=DEFAULT_INTERVAL_S,
                    metavar="S", help=h("lab.help.interval"))
    pr.add_argument("--no-tracefs", dest="tracefs", action="store_false",
                    help=h("lab.help.no_tracefs"))
    pr.add_argument("--no-capture", dest="capture", action="store_false",
                    help=h("lab.help.no_capture"))
    pr.add_argument("--no-diagnose", dest="diagnose", action="store_false",
                    help=h("lab.help.no_diagnose"))
    pr.set_defaults(run=lambda args, term, msg: run(_run_options(args, msg), term, msg))

    pc = actions.add_parser("clean", help=h("lab.help.clean"), description=h("lab.help.clean"))
    pc.add_argument("--json", action="store_true", help=h("lab.help.json"))
    pc.set_defaults(run=lambda args, term, msg: run_clean(args.json, term, msg))

    def no_action(args, term, msg):
        raise CatalogError("lab.err.action", Exit.USAGE)

    p.set_defaults(run=no_action)


def _run_options(args, msg) -> RunOptions:
    try:
        sets = tuple(parse_sets(args.sets))
    except ParamError as exc:
        raise CliError("lab: " + said(msg, exc.key, exc.fields), Exit.USAGE) from None
    return RunOptions(args.scenario, sets, args.duration, args.json, args.svg, args.interval,
                      args.tracefs, args.capture, args.diagnose, args.html)


def param_doc(msg, scenario: str, name: str) -> str:
    for key in (f"lab.param.{scenario}.{name}", f"lab.param.{name}"):
        try:
            return msg(key)
        except KeyError:
            continue
    return ""


# ---- list ----

def run_list(as_json: bool, term, msg) -> int:
    if as_json:
        out = []
        for s in ALL:
            out.append({"name": s.name, "seeds": list(s.seeds), "router": s.router,
                        "description": msg("lab.scenario." + s.name),
                        "expected": msg("lab.expect." + s.name),
                        "params": [{**p.to_json(), "doc": param_doc(msg, s.name, p.name)}
                                   for p in s.params],
                        "moments": list(s.moments)})
        sysctls = [{**sc.param.to_json(), "name": sc.name, "namespaces": list(sc.roles)}
                   for sc in SYSCTLS]
        term.out(json.dumps({"scenarios": out, "sysctls": sysctls}, indent=2,
                            ensure_ascii=False))
        return 0
    for s in ALL:
        term.out(f"{s.name}  [" + msg("lab.list.seeds", seeds=", ".join(s.seeds)) + "]")
        term.out("    " + msg("lab.scenario." + s.name))
        term.out("    " + msg("lab.list.expect", text=msg("lab.expect." + s.name)))
        for p in s.params:
            unit = f" {p.unit}" if p.unit and p.unit != "count" else ""
            default = p.default if not isinstance(p.default, str) or " " not in p.default \
                else f"'{p.default}'"
            fields = dict(name=p.name, default=default, range=p.describe_range(), unit=unit,
                          doc=param_doc(msg, s.name, p.name))
            if p.sysctl:
                term.out("      " + msg("lab.list.sysctl_param", sysctl=p.sysctl,
                                        where=",".join(p.roles), **fields))
            else:
                term.out("      " + msg("lab.list.param", **fields))
        term.out("")
    term.out(msg("lab.list.sysctls", names=", ".join(
        sc.short + ("" if sc.roles == ("client", "server") else f" ({','.join(sc.roles)})")
        for sc in SYSCTLS)))
    return 0


# ---- run ----

def _progress(term):
    state = {"last": 0.0}

    def show(text: str) -> None:
        now = time.monotonic()
        if now - state["last"] < 0.25 and not text.endswith("..."):
            return
        state["last"] = now
        term.stderr.write("\r\x1b[K" + text[: max(20, (term.width or 100) - 1)])
        term.stderr.flush()
    return show


def run(opts: RunOptions, term, msg) -> int:
    try:
        scenario = lab.get(opts.scenario)
    except KeyError:
        raise CliError("lab: " + msg("lab.error.no_scenario", name=opts.scenario,
                                     names=", ".join(s.name for s in ALL)),
                       Exit.NOT_FOUND) from None
    ropts = lab.RunOptions(opts.scenario, opts.sets, opts.duration, opts.interval,
                           opts.tracefs, opts.capture, opts.diagnose)
    progress = None
    if term.is_tty and not opts.json and lab.expected_s(scenario, ropts) > PROGRESS_MIN_S:
        progress = _progress(term)
    try:
        result = lab.run(scenario, ropts, msg, progress)
    except ParamError as exc:
        raise CliError("lab: " + said(msg, exc.key, exc.fields), Exit.USAGE) from None
    except lab.LabError as exc:
        raise CliError(f"lab: {exc}", Exit.UNSUPPORTED) from None
    finally:
        if progress is not None:
            term.stderr.write("\r\x1b[K")
            term.stderr.flush()
    timeline = result.timeline()
    title = msg("lab.title", scenario=scenario.name, kernel=result.kernel, run_id=result.run_id,
                duration=tl_view.fmt_s(result.horizon_s))
    if opts.svg is not None:
        atomic_write(opts.svg, tl_view.render_svg(timeline, title=title, msg=msg).encode())
    if opts.html is not None:
        _write_html(opts.html, result, timeline, title, msg)
    if opts.json:
        term.out(json.dumps(result.to_json(msg), indent=2, ensure_ascii=False))
        return 0
    for line in text_report(result, timeline, title, msg, width=term.width or 100,
                            colour=bool(term.is_tty)):
        term.out(line)
    for w in result.warnings:
        term.err("tcplinger: " + w)
    failed = [c for c in result.checks if not c.ok]
    if failed:
        term.err("tcplinger: " + msg("lab.warn.checks_failed", n=len(failed),
                                     total=len(result.checks)))
    return 0


def _write_html(path: Path, result, timeline, title: str, msg) -> None:
    """The run as one self-contained page: the timeline picture and the text report."""
    from ...ui.html import render_timeline_page

    page = render_timeline_page(title, tl_view.render_svg(timeline, msg=msg),
                                text_report(result, timeline, title, msg, width=110), msg,
                                generated=generated(),
                                lang=msg.lang)
    write_page(path, page, msg)


def text_report(result, timeline, title: str, msg, *, width: int = 100,
                colour: bool = False) -> list[str]:
    lines = [title, msg("lab.scenario." + result.scenario.name)]
    params = ", ".join(f"{k}={v}" for k, v in result.prepared.params.items())
    lines.append(msg("lab.params_line", params=params))
    for role, values in result.prepared.sysctl_json().items():
        lines.append(msg("lab.sysctls_line", role=role, values=", ".join(
            f"{k}={v}" for k, v in values.items())))
    lines.append("")
    lines += tl_view.render_text(timeline, msg, width=width, colour=colour)
    lines.append("")
    lines.append(msg("lab.packets_heading"))
    if not result.packets:
        lines.append(msg("lab.no_packets"))
    for pk in result.packets:
        fate = " " + msg("lab.dropped_by", by=pk.dropped_by) if pk.dropped_by else ""
        tag = f" {pk.tag}" if pk.tag else ""
        lines.append(f"  {tl_view.fmt_s(pk.t_s):>9}  {pk.src:>7} -> {pk.dst:<7} {pk.flags:<3}"
                     f" {pk.length:>4}{tag}{fate}")
    lines.append("")
    lines.append(msg("lab.events_heading"))
    for n in result.notes:
        lines.append(f"  {tl_view.fmt_s(n.t_s):>9}  {n.party:<9} " + msg(n.key, **n.field_dict()))
    by_side: dict[str, int] = {}
    for f in result.failed_connects:
        by_side[f.side] = by_side.get(f.side, 0) + 1
    for side, n in by_side.items():
        lines.append("  " + msg("lab.failed_connect", side=side, n=n))
    lines.append("")
    lines.append(msg("lab.diagnosis_heading"))
    if not result.findings:
        lines.append(msg("lab.no_diagnosis"))
    for f in result.findings:
        lines.append("  " + msg("lab.diagnosis_line", at=f.at, t=f"{f.t_s:.1f}", side=f.side,
                                severity=f.severity, title=f.title))
    lines.append("")
    passed = sum(1 for c in result.checks if c.ok)
    lines.append(msg("lab.checks_heading", passed=passed, total=len(result.checks)))
    for c in result.checks:
        mark = msg("lab.check_ok") if c.ok else msg("lab.check_failed")
        measured = "" if c.measured is None else "  " + msg("lab.measured", value=c.measured)
        lines.append(f"  {mark} " + msg(c.key, **c.fields) + measured)
    facts = {k: v for k, v in result.facts.items() if not k.startswith("_")}
    if facts:
        lines.append("  " + msg("lab.facts_line", facts=", ".join(f"{k}={v}"
                                                                  for k, v in facts.items())))
    rec = result.recorder
    lines.append("")
    lines.append(msg("lab.recorder_line",
                     source=msg("lab.source.trace" if rec["tracefs"] else "lab.source.polls"),
                     polls=rec["polls"], interval=rec["poll_interval_s"],
                     gap=rec["longest_poll_gap_s"], events=rec["trace_events"],
                     lost=rec["trace_lost"]))
    return lines


# ---- clean ----

def run_clean(as_json: bool, term, msg) -> int:
    if os.geteuid() != 0:
        raise PermissionError(1, "`lab clean` needs root (it deletes network namespaces)")
    cleaned = lab.clean()
    report, left_names = cleaned.report, cleaned.left
    if as_json:
        term.out(json.dumps({"namespaces": report.namespaces, "processes": report.processes,
                             "instances": report.instances, "records": report.records,
                             "in_use": report.in_use, "left": left_names}, indent=2))
    else:
        if report.empty():
            term.out(msg("lab.clean.nothing"))
        else:
            term.out(msg("lab.clean.removed", namespaces=len(report.namespaces),
                         processes=len(report.processes), instances=len(report.instances),
                         records=len(report.records)))
        if report.in_use:
            term.out(msg("lab.clean.in_use", runs=", ".join(report.in_use)))
        if left_names:
            term.err("tcplinger: " + msg("lab.clean.left", names=", ".join(left_names)))
    return 1 if left_names else 0
