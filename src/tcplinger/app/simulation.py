"""Use case: predict how long a connection lingers (``tcplinger sim``,
docs/simulator.md): load a scenario (a preset with its knobs, or a TOML
file), apply ``--set``, then simulate it once and judge the timeline, or
sweep it over a grid of values. The simulator (sim/) is pure; this is
where a front end's source, settings and horizon meet it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..fsutil import read_regular
from ..model.params import ParamError
from ..model.timeline import Timeline
from ..sim import presets as presets_mod
from ..sim.scenario import Scenario, from_document, param_for, parse_toml, with_values
from ..sim.simulation import simulate
from ..sim.sweep import SweepResult, parse_vary, run_sweep
from ..sim.verdict import Verdict, judge

#: A scenario is a page of TOML (docs/simulator.md); a larger file is not one.
SCENARIO_MAX_BYTES = 1 << 20

#: every preset, for ``sim presets``
all_presets = presets_mod.all_presets


@dataclass(frozen=True)
class Source:
    """A preset by name or a scenario file: exactly one is given."""
    preset: str | None
    file: Path | None


class NoPreset(LookupError):
    """No preset of that name; ``names`` are the ones there are."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name
        self.names = tuple(p.name for p in presets_mod.all_presets())


class Loaded:
    """A preset or a file, with --set applied, able to build the document
    for given values of further keys (the sweep's varied keys). Raises
    NoPreset, ParamError, OSError (FileNotFoundError; a directory, device
    or FIFO: fsutil.NotARegularFile)."""

    def __init__(self, source: Source, sets: tuple[tuple[str, str], ...]):
        self.preset = None
        self.doc = None
        if source.preset:
            try:
                self.preset = presets_mod.get(source.preset)
            except KeyError:
                raise NoPreset(source.preset) from None
            self.name = self.preset.name
        else:
            # a regular file only: /dev/null or a FIFO is no scenario
            data = read_regular(source.file, limit=SCENARIO_MAX_BYTES)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ParamError("param.not_utf8", "{path}: scenario is not UTF-8 text (byte "
                                 "{byte})", path=str(source.file), byte=exc.start) from None
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
            raise ParamError("param.no_key", "{key}: no such parameter in this scenario", key=key)
        return spec.kind


@dataclass(frozen=True)
class Prediction:
    loaded: Loaded
    scenario: Scenario
    timeline: Timeline
    verdict: Verdict


def predict(source: Source, sets: tuple[tuple[str, str], ...],
            horizon_s: float | None = None) -> Prediction:
    """One run of the scenario and its verdict."""
    loaded = Loaded(source, sets)
    doc = loaded.document()
    if horizon_s is not None:
        doc["horizon"] = horizon_s
    sc = from_document(doc)
    timeline = simulate(sc).timeline()
    return Prediction(loaded, sc, timeline, judge(sc, timeline))


@dataclass(frozen=True)
class Sweep:
    loaded: Loaded
    keys: list[str]
    result: SweepResult


def sweep(source: Source, sets: tuple[tuple[str, str], ...], vary: tuple[str, ...],
          horizon_s: float | None = None,
          progress: Callable[[int], Callable | None] | None = None) -> Sweep:
    """The scenario at every point of the grid ``vary`` (``KEY=V1,V2,...``
    each). ``progress(points)`` may return a callback ``(done, total)``."""
    loaded = Loaded(source, sets)
    # every --set value is judged, also one that a --vary of the same key
    # overrides (`--set tcp_fin_timeout=nan` passed unseen: issue 13)
    doc = loaded.document()
    if horizon_s is not None:
        doc["horizon"] = horizon_s
    from_document(doc)
    axes = [parse_vary(t) for t in vary]
    kinds = {a.key: loaded.kind(a.key) for a in axes}
    total = 1
    for a in axes:
        total *= len(a.values)
    bar = progress(total) if progress is not None else None
    result = run_sweep(loaded.document, axes, kinds, horizon_s=horizon_s, progress=bar)
    return Sweep(loaded, [a.key for a in axes], result)
