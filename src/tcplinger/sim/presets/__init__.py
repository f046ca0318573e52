"""Named scenarios with a few *knobs* each.

A preset builds a scenario document from its knob values (each knob is a
documented :class:`~tcplinger.model.params.Param`); ``--set NAME=VALUE``
sets a knob, ``--set a.b.c=VALUE`` any key of the document afterwards.
Descriptions shown to users are catalog messages ``sim.preset.<name>``.

Parties are ``client`` and ``server``; a middlebox is named after its
profile. Times: the connection is set up at 0 and torn down at 1 s.

>>> doc = build("linux-orphan-fin-wait-2", {"tcp_fin_timeout": 90})
>>> doc["client"]["tcp_fin_timeout"], doc["client"]["app"]["close_at"]
(90.0, 1.0)
>>> sorted(get("linux-close-wait").knob_names())
['keepcnt', 'keepidle', 'keepintvl', 'peer', 'so_keepalive']
"""

from __future__ import annotations

from ...model.params import ParamError
from . import linux, seeds
from .parts import Preset

_BY_NAME: dict[str, Preset] = {}


def all_presets() -> list[Preset]:
    """Every preset: the calibrated Linux ones, then the seeds'."""
    return list(linux.PRESETS + seeds.PRESETS)


def get(name: str) -> Preset:
    if not _BY_NAME:
        _BY_NAME.update({p.name: p for p in all_presets()})
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(name) from None


def knob_values(preset: Preset, given: dict) -> dict:
    """Every knob's value: given (coerced and checked) or its default."""
    out = {}
    for k in preset.knobs:
        out[k.name] = k.parse(given[k.name]) if k.name in given else k.default
    unknown = set(given) - set(out)
    if unknown:
        if preset.knob_names():
            raise ParamError("param.unknown_knob", "preset {preset}: unknown knob(s) {names}"
                             " (knobs: {knobs})", preset=preset.name,
                             names=", ".join(sorted(unknown)), knobs=", ".join(preset.knob_names()))
        raise ParamError("param.no_knobs", "preset {preset}: unknown knob(s) {names} (knobs: none)",
                         preset=preset.name, names=", ".join(sorted(unknown)))
    return out


def build(name: str, given: dict | None = None) -> dict:
    preset = get(name)
    return preset.build(knob_values(preset, given or {}))
