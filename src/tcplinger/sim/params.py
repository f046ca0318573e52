"""Documented parameters of profiles, middleboxes and presets.

Every parameter names its unit, default and *source* (man page, vendor
document, kernel source file, or the measurement that set it); the
documentation (docs/simulator.md) is generated from these tables.

Values come from TOML (numbers, booleans, strings) or from the command
line (text): :func:`coerce` turns either into the parameter's type.
Durations are seconds, or text with a unit: ``250ms``, ``90s``, ``5m``,
``2h``, ``1d``.

>>> p = Param("tcp_fin_timeout", 60, "seconds", "orphan FIN_WAIT2 timeout", "ip-sysctl.rst")
>>> coerce(p, "2m"), coerce(p, 30)
(120.0, 30.0)
>>> coerce(Param("x", 0, "bool", "", ""), "yes"), parse_duration("1h30m")
(1, 5400.0)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


class ParamError(ValueError):
    """A parameter value that does not fit (the CLI turns it into exit 2)."""


def parse_duration(text) -> float:
    """Seconds from ``90``, ``"90s"``, ``"5m"``, ``"1h30m"``, ``"inf"``."""
    if isinstance(text, bool):
        raise ParamError(f"not a duration: {text!r}")
    if isinstance(text, (int, float)):
        return float(text)
    t = str(text).strip().lower()
    if t in ("inf", "never", "forever"):
        return math.inf
    try:
        return float(t)
    except ValueError:
        pass
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)", t)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)", "", t).strip():
        raise ParamError(f"not a duration: {text!r} (try 90, 90s, 5m, 2h, 1d)")
    return sum(float(n) * UNITS[u] for n, u in parts)


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    #: "seconds" | "count" | "bool" | "choice" | "text"
    kind: str
    doc: str
    source: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def numeric(self) -> bool:
        return self.kind in ("seconds", "count", "bool")


def coerce(param: Param, value):
    """A TOML or command-line value as the parameter's type."""
    k = param.kind
    if isinstance(value, np.ndarray):  # a sweep's column of values
        if not param.numeric():
            raise ParamError(f"{param.name}: only numeric parameters can vary in a batch")
        check_range(param, value)
        return value.astype(float) if k == "seconds" else value.astype(np.int64)
    try:
        if k == "seconds":
            out = parse_duration(value)
        elif k == "count":
            if isinstance(value, bool):
                raise ValueError
            f = float(value)
            if f != int(f):
                raise ValueError
            out = int(f)
        elif k == "bool":
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    out = 1
                elif low in ("0", "false", "no", "off"):
                    out = 0
                else:
                    raise ValueError
            else:
                out = 1 if value else 0
        elif k == "choice":
            out = str(value)
            if out not in param.choices:
                raise ParamError(f"{param.name}: {value!r} is not one of {', '.join(param.choices)}")
        else:
            out = str(value)
    except ParamError:
        raise
    except (TypeError, ValueError):
        raise ParamError(f"{param.name}: {value!r} is not a valid {k} value") from None
    check_range(param, out)
    return out


def check_range(param: Param, value) -> None:
    """Reject values outside [minimum, maximum] (arrays: any element)."""
    if not param.numeric():
        return
    arr = np.asarray(value, dtype=float)
    if param.minimum is not None and (arr < param.minimum).any():
        raise ParamError(f"{param.name}: {value!r} is below the minimum {param.minimum:g}")
    if param.maximum is not None and (arr > param.maximum).any():
        raise ParamError(f"{param.name}: {value!r} is above the maximum {param.maximum:g}")


class Values:
    """Attribute access to parameter values (``p.tcp_fin_timeout``)."""

    def __init__(self, specs: tuple[Param, ...], values: dict):
        known = {s.name for s in specs}
        unknown = set(values) - known
        if unknown:
            raise ParamError(f"unknown parameter(s): {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(sorted(known))})")
        for s in specs:
            setattr(self, s.name, values.get(s.name, s.default))

    def __repr__(self) -> str:
        return f"Values({vars(self)})"
