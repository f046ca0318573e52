"""``tcplinger sim``: predict how long a connection lingers on each TCP
stack and behind each middlebox (docs/simulator.md).

    tcplinger sim presets [--json]
    tcplinger sim run (--preset NAME | SCENARIO.toml) [--set KEY=VALUE ...]
                      [--horizon DURATION] [--json] [--svg FILE] [--packets]
    tcplinger sim sweep (--preset NAME | SCENARIO.toml) --vary KEY=V1,V2,... [...]
                      [--set KEY=VALUE ...] [--horizon DURATION] [--json] [--svg FILE]
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ...app import simulation
from ...app.simulation import NoPreset, Source
from ...fsutil import atomic_write
from ...model.params import ParamError
from ...ui import simulation as sim_view
from ...ui import timeline as tl_view
from ..errors import CatalogError, CliError, Exit, said
from ..options import LONGEST, OptionError, duration_type, output_file

NAME = "sim"

#: Grids at least this large get a progress bar on a terminal.
PROGRESS_MIN_POINTS = 2000


@dataclass(frozen=True)
class RunOptions:
    source: Source
    sets: tuple[tuple[str, str], ...]
    horizon_s: float | None
    json: bool
    svg: Path | None
    packets: bool


@dataclass(frozen=True)
class SweepOptions:
    source: Source
    sets: tuple[tuple[str, str], ...]
    vary: tuple[str, ...]
    horizon_s: float | None
    json: bool
    svg: Path | None


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise OptionError("opt.expected_key_value", "expected KEY=VALUE, got {value}", value=text)
    return key.strip(), value.strip()


def _add_source(p, h) -> None:
    p.add_argument("scenario", nargs="?", metavar="SCENARIO.toml", help=h("sim.help.scenario"))
    p.add_argument("--preset", metavar="NAME", help=h("sim.help.preset"))
    p.add_argument("--set", dest="sets", action="append", type=_key_value, default=[],
                   metavar="KEY=VALUE", help=h("sim.help.set"))
    p.add_argument("--horizon", type=duration_type(maximum=LONGEST, positive=True),
                   metavar="DURATION", help=h("sim.help.horizon"))
    p.add_argument("--json", action="store_true", help=h("sim.help.json"))
    p.add_argument("--svg", type=output_file, metavar="FILE", help=h("sim.help.svg"))


def _source(args) -> Source:
    if bool(args.preset) == bool(args.scenario):
        raise CatalogError("sim.err.source", Exit.USAGE)
    return Source(args.preset, Path(args.scenario) if args.scenario else None)


def register(sub, h) -> None:
    p = sub.add_parser(NAME, help=h("sim.help.command"), description=h("sim.help.description"))
    actions = p.add_subparsers(dest="sim_action", metavar="ACTION", parser_class=type(p))

    pp = actions.add_parser("presets", help=h("sim.help.presets"),
                            description=h("sim.help.presets"))
    pp.add_argument("--json", action="store_true", help=h("sim.help.json"))
    pp.set_defaults(run=lambda args, term, msg: run_presets(args.json, term, msg))

    pr = actions.add_parser("run", help=h("sim.help.run"), description=h("sim.help.run"))
    _add_source(pr, h)
    pr.add_argument("--packets", action="store_true", help=h("sim.help.packets"))
    pr.set_defaults(run=lambda args, term, msg: run(RunOptions(
        _source(args), tuple(args.sets), args.horizon, args.json, args.svg, args.packets),
        term, msg))

    ps = actions.add_parser("sweep", help=h("sim.help.sweep"), description=h("sim.help.sweep"))
    _add_source(ps, h)
    ps.add_argument("--vary", action="append", required=True, metavar="KEY=V1,V2,...",
                    help=h("sim.help.vary"))
    ps.set_defaults(run=lambda args, term, msg: sweep(SweepOptions(
        _source(args), tuple(args.sets), tuple(args.vary), args.horizon, args.json, args.svg),
        term, msg))

    def no_action(args, term, msg):
        raise CatalogError("sim.err.action", Exit.USAGE)

    p.set_defaults(run=no_action)


@contextmanager
def _errors(source: Source, msg):
    """The application layer's errors as the command's exit codes."""
    try:
        yield
    except NoPreset as exc:
        raise CliError(msg("sim.error.no_preset", name=exc.name, names=", ".join(exc.names)),
                       Exit.NOT_FOUND) from None
    except FileNotFoundError:
        raise CliError(msg("sim.error.no_file", path=str(source.file)), Exit.NOT_FOUND) from None
    except ParamError as exc:
        raise CliError("sim: " + said(msg, exc.key, exc.fields), Exit.USAGE) from None


def micro_s(x):
    """Seconds for JSON, rounded to microseconds (None when unknown or infinite)."""
    if x is None:
        return None
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return round(float(x), 6)


# ---- presets ----

def run_presets(as_json: bool, term, msg) -> int:
    items = simulation.all_presets()
    if as_json:
        out = [{"name": p.name, "seed": p.seed or None, "tags": list(p.tags),
                "description": msg("sim.preset." + p.name),
                "knobs": [{"name": k.name, "kind": k.kind,
                           "default": None if isinstance(k.default, float)
                           and not math.isfinite(k.default) else k.default,
                           "choices": list(k.choices) or None,
                           "description": msg("sim.knob." + k.name)}
                          for k in p.knobs]} for p in items]
        term.out(json.dumps({"presets": out}, indent=2, ensure_ascii=False))
        return 0
    for p in items:
        term.out(p.name + (f"  [seed {p.seed}]" if p.seed else ""))
        term.out("    " + msg("sim.preset." + p.name))
        for k in p.knobs:
            default = "|".join(k.choices) if k.choices else sim_view.value_text(k.default)
            term.out(f"    --set {k.name}={default}  "
                     + msg("sim.knob_line", doc=msg("sim.knob." + k.name)))
    return 0


# ---- run ----

def run(opts: RunOptions, term, msg) -> int:
    with _errors(opts.source, msg):
        pred = simulation.predict(opts.source, opts.sets, opts.horizon_s)
    loaded, sc, timeline, verdict = pred.loaded, pred.scenario, pred.timeline, pred.verdict
    if opts.svg is not None:
        atomic_write(opts.svg, tl_view.render_svg(timeline, title=sc.name, msg=msg).encode())
    if opts.json:
        doc = {"scenario": sc.name, "horizon_s": micro_s(sc.horizon_s),
               "parties": {p.name: {"role": p.role, "profile": p.profile,
                                    "states": [_span_json(s) for s in p.spans]}
                           for p in timeline.parties},
               "verdict": _verdict_json(verdict)}
        if opts.packets:
            doc["packets"] = [{**pk.to_json(), "t_s": micro_s(pk.t_s)} for pk in timeline.packets]
        doc["notes"] = [{"t_s": micro_s(n.t_s), "party": n.party, "key": n.key,
                         "text": msg(n.key, **n.field_dict())} for n in timeline.notes]
        term.out(json.dumps(doc, indent=2, ensure_ascii=False))
        return 0
    title = msg("sim.title", name=sc.name, horizon=tl_view.fmt_s(sc.horizon_s))
    if loaded.preset is not None:
        title += "\n" + msg("sim.preset." + loaded.preset.name)
    for line in tl_view.render_text(timeline, msg, width=term.width,
                                    colour=bool(term.is_tty), title=title):
        term.out(line)
    term.out("")
    term.out(msg("sim.events_heading"))
    for line in sim_view.event_lines(timeline.notes, msg):
        term.out(line)
    if opts.packets:
        term.out("")
        term.out(msg("sim.packets_heading"))
        for pk in timeline.packets:
            fate = msg("sim.dropped_by", by=pk.dropped_by) if pk.dropped_by else ""
            term.out(f"  {tl_view.fmt_s(pk.t_s):>9}  {pk.src:>8} -> {pk.dst:<8} {pk.flags:<4} "
                     f"{pk.length:>5}  {pk.tag} {fate}".rstrip())
    term.out("")
    for line in sim_view.verdict_lines(verdict, sc, msg):
        term.out(line)
    return 0


def _span_json(s) -> dict:
    d = s.to_json()
    d["start_s"], d["end_s"] = micro_s(s.start_s), micro_s(s.end_s)
    return d


def _verdict_json(v) -> dict:
    d = v.to_json()
    d["lifetimes"] = {p: {k: micro_s(x) for k, x in st.items()} for p, st in v.lifetimes.items()}
    d["lingering_s"] = {p: micro_s(x) for p, x in v.lingering.items()}
    d["forgotten_at_s"] = {p: micro_s(x) for p, x in v.forgotten.items()}
    if d["first_to_forget"]:
        d["first_to_forget"]["at_s"] = micro_s(d["first_to_forget"]["at_s"])
    if d["next_packet"]:
        d["next_packet"] = {**d["next_packet"], "at_s": micro_s(d["next_packet"]["at_s"])}
    return d


# ---- sweep ----

def sweep(opts: SweepOptions, term, msg) -> int:
    def progress(points: int):
        return _progress(term, msg) if term.is_tty and points >= PROGRESS_MIN_POINTS else None

    try:
        with _errors(opts.source, msg):
            swept = simulation.sweep(opts.source, opts.sets, opts.vary, opts.horizon_s, progress)
    finally:
        if term.is_tty:
            term.stderr.write("\r\x1b[K")
    loaded, keys, result = swept.loaded, swept.keys, swept.result
    if opts.svg is not None:
        atomic_write(opts.svg, sim_view.sweep_chart(result, keys, loaded.name, msg).encode())
    if opts.json:
        w = term.stdout.write
        w('{"scenario": ' + json.dumps(loaded.name) + ', "varied": ' + json.dumps(keys)
          + ', "points": [')
        for i in range(len(result)):
            pt = result.point(i)
            d = pt.to_json()
            d["values"] = {k: (v if not isinstance(v, float) else micro_s(v))
                           for k, v in d["values"].items()}
            for p in d["parties"].values():
                p["lingering_s"], p["forgotten_at_s"] = micro_s(p["lingering_s"]), micro_s(p["forgotten_at_s"])
                p["states"] = {k: micro_s(x) for k, x in p["states"].items()}
            w((", " if i else "") + json.dumps(d))
        w("]}\n")
        return 0
    for line in sim_view.sweep_lines(result, keys, msg):
        term.out(line)
    return 0


def _progress(term, msg):
    width = 30

    def cb(done, total):
        filled = int(width * done / total) if total else width
        term.stderr.write("\r" + msg("sim.progress", bar="#" * filled + "." * (width - filled),
                                     done=done, total=total))
        term.stderr.flush()
    return cb


