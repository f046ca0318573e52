"""``tcplinger sim``: predict how long a connection lingers on each TCP
stack and behind each middlebox (docs/simulator.md).

    tcplinger sim presets [--json]
    tcplinger sim run (--preset NAME | SCENARIO.toml) [--set KEY=VALUE ...]
                      [--horizon DURATION] [--json] [--svg FILE] [--packets]
    tcplinger sim sweep (--preset NAME | SCENARIO.toml) --vary KEY=V1,V2,... [...]
                      [--set KEY=VALUE ...] [--horizon DURATION] [--json] [--svg FILE]
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ...i18n import Messages, lang_from_env
from ...model.states import name as state_name
from ...sim import presets as presets_mod
from ...model.params import ParamError
from ...sim.scenario import from_document, param_for, parse_toml, with_values
from ...sim.sweep import parse_vary, run_sweep
from ...sim.verdict import judge
from ...sim.simulation import simulate
from ...ui import timeline as tl_view
from ...ui.table import render
from ..errors import CliError, Exit
from ..options import LONGEST, duration_type

NAME = "sim"

#: Grids at least this large get a progress bar on a terminal.
PROGRESS_MIN_POINTS = 2000


@dataclass(frozen=True)
class Source:
    preset: str | None
    file: Path | None


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
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _add_source(p, h) -> None:
    p.add_argument("scenario", nargs="?", metavar="SCENARIO.toml", help=h("sim.help.scenario"))
    p.add_argument("--preset", metavar="NAME", help=h("sim.help.preset"))
    p.add_argument("--set", dest="sets", action="append", type=_key_value, default=[],
                   metavar="KEY=VALUE", help=h("sim.help.set"))
    p.add_argument("--horizon", type=duration_type(maximum=LONGEST, positive=True),
                   metavar="DURATION", help=h("sim.help.horizon"))
    p.add_argument("--json", action="store_true", help=h("sim.help.json"))
    p.add_argument("--svg", type=Path, metavar="FILE", help=h("sim.help.svg"))


def _source(args) -> Source:
    if bool(args.preset) == bool(args.scenario):
        raise CliError("sim: give either --preset NAME or a SCENARIO.toml file", Exit.USAGE)
    return Source(args.preset, Path(args.scenario) if args.scenario else None)


def register(sub) -> None:
    h = Messages(lang_from_env())
    p = sub.add_parser(NAME, help=h("sim.help.command"), description=h("sim.help.description"))
    actions = p.add_subparsers(dest="sim_action", metavar="ACTION", parser_class=type(p))

    pp = actions.add_parser("presets", help=h("sim.help.presets"))
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
        raise CliError("sim: choose an action: presets, run or sweep", Exit.USAGE)

    p.set_defaults(run=no_action)


# ---- loading a scenario ----

class Loaded:
    """A preset or a file, with --set applied, able to build the document
    for given values of further keys (the sweep's varied keys)."""

    def __init__(self, source: Source, sets: tuple[tuple[str, str], ...], msg):
        self.preset = None
        self.doc = None
        if source.preset:
            try:
                self.preset = presets_mod.get(source.preset)
            except KeyError:
                raise CliError(msg("sim.error.no_preset", name=source.preset,
                                   names=", ".join(p.name for p in presets_mod.all_presets())),
                               Exit.NOT_FOUND) from None
            self.name = self.preset.name
        else:
            try:
                text = source.file.read_text("utf-8")
            except FileNotFoundError:
                raise CliError(msg("sim.error.no_file", path=str(source.file)),
                               Exit.NOT_FOUND) from None
            self.doc = parse_toml(text)
            self.name = str(self.doc.get("name", source.file.stem))
        self.knob_sets, self.path_sets = self.split(dict(sets))

    def split(self, values: dict) -> tuple[dict, dict]:
        knobs, paths = {}, {}
        for k, v in values.items():
            if self.preset is not None and self.preset.knob(k) is not None:
                knobs[k] = v
            else:
                paths[k] = v
        return knobs, paths

    def document(self, values: dict | None = None) -> dict:
        knobs, paths = self.split(values or {})
        if self.preset is not None:
            given = {**self.knob_sets, **knobs}
            doc = self.preset.build(presets_mod.knob_values(self.preset, given))
        else:
            doc = self.doc
        return with_values(doc, {**self.path_sets, **paths})

    def kind(self, key: str) -> str:
        if self.preset is not None and self.preset.knob(key) is not None:
            return self.preset.knob(key).kind
        spec = param_for(self.document(), key)
        if spec is None:
            raise ParamError(f"{key}: no such parameter in this scenario")
        return spec.kind


def _scenario(loaded: Loaded, horizon_s: float | None):
    doc = loaded.document()
    if horizon_s is not None:
        doc["horizon"] = horizon_s
    return from_document(doc)


def _r(x):
    """Round times for JSON (microseconds)."""
    if x is None:
        return None
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return round(float(x), 6)


# ---- presets ----

def run_presets(as_json: bool, term, msg) -> int:
    items = presets_mod.all_presets()
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
            default = "|".join(k.choices) if k.choices else _fmt_value(k.default)
            term.out(f"    --set {k.name}={default}  "
                     + msg("sim.knob_line", doc=msg("sim.knob." + k.name)))
    return 0


# ---- run ----

def run(opts: RunOptions, term, msg) -> int:
    try:
        loaded = Loaded(opts.source, opts.sets, msg)
        sc = _scenario(loaded, opts.horizon_s)
        timeline = simulate(sc).timeline()
        verdict = judge(sc, timeline)
    except ParamError as exc:
        raise CliError(f"sim: {exc}", Exit.USAGE) from None
    if opts.svg is not None:
        opts.svg.write_text(tl_view.render_svg(timeline, title=sc.name, msg=msg), "utf-8")
    if opts.json:
        doc = {"scenario": sc.name, "horizon_s": _r(sc.horizon_s),
               "parties": {p.name: {"role": p.role, "profile": p.profile,
                                    "states": [_span_json(s) for s in p.spans]}
                           for p in timeline.parties},
               "verdict": _verdict_json(verdict)}
        if opts.packets:
            doc["packets"] = [{**pk.to_json(), "t_s": _r(pk.t_s)} for pk in timeline.packets]
        doc["notes"] = [{"t_s": _r(n.t_s), "party": n.party, "key": n.key,
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
    for line in event_lines(timeline.notes, msg):
        term.out(line)
    if opts.packets:
        term.out("")
        term.out(msg("sim.packets_heading"))
        for pk in timeline.packets:
            fate = msg("sim.dropped_by", by=pk.dropped_by) if pk.dropped_by else ""
            term.out(f"  {tl_view.fmt_s(pk.t_s):>9}  {pk.src:>8} -> {pk.dst:<8} {pk.flags:<4} "
                     f"{pk.length:>5}  {pk.tag} {fate}".rstrip())
    term.out("")
    for line in verdict_lines(verdict, sc, msg):
        term.out(line)
    return 0


def event_lines(notes, msg) -> list[str]:
    """One line per event; a run of the same event (a middlebox's periodic
    keepalives) is shown once with how often it repeats."""
    out = []
    i = 0
    notes = list(notes)
    while i < len(notes):
        n = notes[i]
        j = i
        while j + 1 < len(notes) and (notes[j + 1].party, notes[j + 1].key, notes[j + 1].fields) \
                == (n.party, n.key, n.fields):
            j += 1
        out.append(f"  {tl_view.fmt_s(n.t_s):>9}  {n.party:<8} " + msg(n.key, **n.field_dict()))
        if j > i:
            out.append(" " * 22 + msg("sim.repeated", n=j - i, last=tl_view.fmt_s(notes[j].t_s)))
        i = j + 1
    return out


def _span_json(s) -> dict:
    d = s.to_json()
    d["start_s"], d["end_s"] = _r(s.start_s), _r(s.end_s)
    return d


def _verdict_json(v) -> dict:
    d = v.to_json()
    d["lifetimes"] = {p: {k: _r(x) for k, x in st.items()} for p, st in v.lifetimes.items()}
    d["lingering_s"] = {p: _r(x) for p, x in v.lingering.items()}
    d["forgotten_at_s"] = {p: _r(x) for p, x in v.forgotten.items()}
    if d["first_to_forget"]:
        d["first_to_forget"]["at_s"] = _r(d["first_to_forget"]["at_s"])
    if d["next_packet"]:
        d["next_packet"] = {**d["next_packet"], "at_s": _r(d["next_packet"]["at_s"])}
    return d


def verdict_lines(v, sc, msg) -> list[str]:
    lines = [msg("sim.verdict_heading")]
    rows = []
    for party, states in v.lifetimes.items():
        for state, secs in states.items():
            rows.append([party, state, tl_view.fmt_s(secs) if secs is not None
                         else msg("sim.still_held")])
    for line in render([msg("sim.col.party"), msg("sim.col.state"), msg("sim.col.held")], rows,
                       align="llr"):
        lines.append("  " + line)
    for party, secs in v.lingering.items():
        if secs is not None:
            lines.append("  " + msg("sim.verdict.lingered", party=party, held=tl_view.fmt_s(secs)))
    if v.first is None:
        lines.append("  " + msg("sim.verdict.nobody_forgets",
                                horizon=tl_view.fmt_s(sc.horizon_s)))
    else:
        lines.append("  " + msg("sim.verdict.first", party=v.first, at=tl_view.fmt_s(v.first_at)))
        np_ = v.next_packet
        if np_ is None:
            lines.append("  " + msg("sim.verdict.no_next_packet"))
        elif np_.get("fate") == "not_sent":
            lines.append("  " + msg("sim.verdict.cannot_send", party=np_["from"]))
        else:
            what = msg("sim.packet_kind." + np_.get("kind", "ack"))
            base = dict(party=np_["from"], what=what, at=tl_view.fmt_s(np_["at_s"]),
                        state=np_.get("state") or "-")
            if np_.get("fate") == "dropped" and np_.get("reply") and "R" in np_["reply"]:
                lines.append("  " + msg("sim.verdict.next_reset_by", by=np_["by"], **base))
            elif np_.get("fate") == "dropped":
                lines.append("  " + msg("sim.verdict.next_dropped", by=np_["by"], **base))
            elif np_.get("reply") and "R" in np_["reply"]:
                lines.append("  " + msg("sim.verdict.next_reset", peer=np_["by"], **base))
            elif np_.get("reply"):
                lines.append("  " + msg("sim.verdict.next_answered", peer=np_["by"],
                                        reply=np_["reply"], **base))
            else:
                lines.append("  " + msg("sim.verdict.next_silent", peer=np_["by"], **base))
    if v.held:
        held = ", ".join(f"{p} ({state_name(_last_state(v, p))})" for p in v.held)
        lines.append("  " + msg("sim.verdict.held", parties=held,
                                horizon=tl_view.fmt_s(sc.horizon_s)))
    return lines


def _last_state(v, party):
    from ...model.states import parse_state
    held = [s for s, secs in v.lifetimes[party].items() if secs is None]
    return parse_state(held[-1]) if held else 0


# ---- sweep ----

def sweep(opts: SweepOptions, term, msg) -> int:
    try:
        loaded = Loaded(opts.source, opts.sets, msg)
        axes = [parse_vary(t) for t in opts.vary]
        kinds = {a.key: loaded.kind(a.key) for a in axes}
        total = 1
        for a in axes:
            total *= len(a.values)
        bar = _progress(term, msg) if (term.is_tty and total >= PROGRESS_MIN_POINTS) else None
        result = run_sweep(loaded.document, axes, kinds, horizon_s=opts.horizon_s, progress=bar)
    except ParamError as exc:
        raise CliError(f"sim: {exc}", Exit.USAGE) from None
    finally:
        if term.is_tty:
            term.stderr.write("\r\x1b[K")
    keys = [a.key for a in axes]
    if opts.svg is not None:
        opts.svg.write_text(_sweep_chart(result, keys, loaded.name, msg), "utf-8")
    if opts.json:
        w = term.stdout.write
        w('{"scenario": ' + json.dumps(loaded.name) + ', "varied": ' + json.dumps(keys)
          + ', "points": [')
        for i in range(len(result)):
            pt = result.point(i)
            d = pt.to_json()
            d["values"] = {k: (v if not isinstance(v, float) else _r(v))
                           for k, v in d["values"].items()}
            for p in d["parties"].values():
                p["lingering_s"], p["forgotten_at_s"] = _r(p["lingering_s"]), _r(p["forgotten_at_s"])
                p["states"] = {k: _r(x) for k, x in p["states"].items()}
            w((", " if i else "") + json.dumps(d))
        w("]}\n")
        return 0
    endpoint_parties = [p for p in result.parties if p in ("client", "server")]
    boxes = [p for p in result.parties if p not in ("client", "server")]
    headers = keys + [msg("sim.col.lingers", party=p) for p in endpoint_parties] + \
        [msg("sim.col.forgets", party=p) for p in boxes]
    rows = []
    held = msg("sim.held_short")
    for i in range(len(result)):
        row = [_fmt_value(result.values[k][i]) for k in keys]
        for p in endpoint_parties:
            x = result.lingering[p][i]
            if not math.isnan(x):
                row.append(tl_view.fmt_s(x))
            else:
                row.append(held if _held(result, p, i) else "-")
        for p in boxes:
            x = result.forgotten[p][i]
            row.append(held if math.isnan(x) else tl_view.fmt_s(x))
        rows.append(row)
    for line in render(headers, rows, align="r" * len(headers)):
        term.out(line)
    term.out(msg("sim.sweep_footer", n=len(result)))
    return 0


def _held(result, party, i) -> bool:
    """Still held at the horizon (as opposed to never entering teardown)."""
    return math.isnan(result.forgotten[party][i]) and any(
        math.isnan(col[i]) for col in result.states[party].values())


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _progress(term, msg):
    width = 30

    def cb(done, total):
        filled = int(width * done / total) if total else width
        term.stderr.write("\r" + msg("sim.progress", bar="#" * filled + "." * (width - filled),
                                     done=done, total=total))
        term.stderr.flush()
    return cb


def _sweep_chart(result, keys, name, msg) -> str:
    x_key = keys[0]
    others = keys[1:]
    try:
        xs_all = [float(v) for v in result.values[x_key]]
    except ValueError:
        xs_all = list(range(len(result)))
    groups: dict[tuple, list[int]] = {}
    for i in range(len(result)):
        groups.setdefault(tuple(result.values[k][i] for k in others), []).append(i)
    series = {}
    xs = None
    for combo, idx in groups.items():
        suffix = "" if not others else " (" + ", ".join(
            f"{k}={_fmt_value(v)}" for k, v in zip(others, combo)) + ")"
        order = sorted(idx, key=lambda i: xs_all[i])
        xs = [xs_all[i] for i in order]
        for p in result.parties:
            col = result.lingering[p] if p in ("client", "server") else result.forgotten[p]
            vals = []
            for i in order:
                x = col[i]
                if not math.isnan(x):
                    vals.append(float(x))
                else:  # None: held at the horizon; NaN: never tore down
                    vals.append(None if _held(result, p, i) else math.nan)
            if all(v is not None and math.isnan(v) for v in vals):
                continue
            series[p + suffix] = vals
    return tl_view.render_chart_svg(xs or [], series, x_key, msg("sim.chart_y"), title=name,
                                    held_label=msg("sim.held_short"))
