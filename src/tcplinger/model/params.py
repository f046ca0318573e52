"""Documented parameters: one :class:`Param` for the lab's scenarios and
sysctls and for the simulator's profiles, middleboxes and presets.

A parameter names its kind, default, bounds, unit and (for the
simulator's generated documentation) what it means and where the value
comes from. Values arrive as text (``--set NAME=VALUE``, ``--vary``) or as
TOML numbers; :meth:`Param.parse` reads either through the one number and
duration grammar (model/units.py), so ``tcp_fin_timeout=1m`` means 60
wherever a parameter counts seconds.

Kinds: ``seconds`` (a duration, float), ``count`` (a whole number),
``int`` and ``float`` (numbers in ``unit``; with unit ``s`` they take
durations too), ``bool`` (0/1, yes/no, on/off, true/false), ``choice``,
``range`` (two ports, ``"LOW HIGH"``) and ``text``. The lab's JSON shows
int/float, the simulator's seconds/count: both are part of their contracts.

>>> p = Param("fin_timeout", 5, "int", minimum=0, maximum=3600, unit="s")
>>> p.parse("12"), p.parse("1m"), p.describe_range()
(12, 60, '0..3600')
>>> p.parse("4000")
Traceback (most recent call last):
...
tcplinger.model.params.ParamError: fin_timeout: invalid value '4000' (at most 1h)
>>> Param("tcp_fin_timeout", 60, "seconds", "orphan FIN_WAIT2 timeout").parse("2m")
120.0
>>> Param("x", 0, "bool").parse("yes"), Param("close_at", math.inf, "seconds", never=True).parse("inf")
(1, inf)
>>> Param("tw_in_use", 0, "count").parse("inf")
Traceback (most recent call last):
...
tcplinger.model.params.ParamError: tw_in_use: invalid value 'inf' (nan and infinity are not numbers here)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import units

KINDS = ("seconds", "count", "int", "float", "bool", "choice", "range", "text")
#: bounds of a parameter that states none: a C int (what a sysctl holds),
#: and ten years of seconds
COUNT_MAX = 2**31 - 1

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ParamError(ValueError):
    """A parameter that does not exist, or a value it does not take (the
    CLI turns it into exit 2).

    ``str()`` is the English text; ``key`` and ``fields`` name the catalog
    message (``param.*`` in messages/*/core.toml) so the CLI says it in the
    user's language; a field that is a units.BadValue is said by its own key.

    >>> e = ParamError("param.not_bool", "{name}={value}: expected 0 or 1", name="x", value="2")
    >>> str(e), e.key
    ('x=2: expected 0 or 1', 'param.not_bool')
    """

    def __init__(self, key: str, english: str, /, **fields):  # a field may be named "key"
        self.key = key
        self.fields = fields
        super().__init__(english.format(**fields))


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    kind: str
    doc: str = ""
    #: man page, vendor document, kernel source file, or the measurement
    source: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""  # "s", "ms", "count", "" (seconds kinds are in s)
    #: a namespace sysctl this parameter sets (full dotted name), and where
    sysctl: str | None = None
    roles: tuple[str, ...] = ()
    #: a seconds value may be infinite (``inf``, ``never``): "never happens"
    never: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")

    def numeric(self) -> bool:
        return self.kind in ("seconds", "count", "int", "float", "bool")

    def describe_range(self) -> str:
        if self.kind == "choice":
            return "|".join(self.choices)
        if self.kind == "bool":
            return "0|1"
        lo = "" if self.minimum is None else f"{self.minimum:g}"
        hi = "" if self.maximum is None else f"{self.maximum:g}"
        return f"{lo}..{hi}" if lo or hi else ""

    def parse(self, value) -> object:
        """A text or TOML value as this parameter's type, within bounds."""
        if isinstance(value, np.ndarray):
            return self._array(value)
        try:
            if self.kind == "bool":
                return self._bool(value)
            if self.kind == "choice":
                if str(value).strip() not in self.choices:
                    raise ParamError("param.not_choice",
                                     "{name}={value}: expected one of {choices}",
                                     name=self.name, value=value,
                                     choices=", ".join(self.choices))
                return str(value).strip()
            if self.kind == "range":
                return self._range(str(value))
            if self.kind == "text":
                return str(value)
            return self._number(value)
        except units.BadValue as exc:
            raise ParamError("param.bad_value", "{name}: {reason}", name=self.name,
                             reason=exc) from None

    def check(self, values: np.ndarray) -> None:
        """Refuse a batch (a sweep's column) if any value is out of bounds,
        with the message :meth:`parse` gives for the first such value."""
        lo, hi = self._bounds()
        arr = np.asarray(values, dtype=float)
        ok = (arr >= (-math.inf if lo is None else lo)) & (arr <= hi)
        if self.never:
            ok |= arr == math.inf
        if not ok.all():
            first = np.asarray(values)[~ok][0].item()
            self.parse(first)
            raise ParamError("param.invalid", "{name}: invalid value {value}", name=self.name,
                             value=repr(first))

    def to_json(self) -> dict:
        out = {"name": self.name, "default": self.default, "kind": self.kind,
               "min": self.minimum, "max": self.maximum,
               "choices": list(self.choices) or None, "unit": self.unit or None}
        if self.sysctl:
            out["sysctl"] = self.sysctl
            out["namespaces"] = list(self.roles)
        return out

    # ---- the kinds ----

    def _bounds(self) -> tuple[float | None, float]:
        """(minimum or None for "any negative too", maximum): a parameter
        that states no maximum gets COUNT_MAX or ten years of seconds."""
        if self.kind == "bool":
            return 0, 1
        if self.maximum is not None:
            return self.minimum, self.maximum
        return self.minimum, units.LONGEST if self.kind in ("seconds", "float") else COUNT_MAX

    def _seconds(self) -> bool:
        return self.kind == "seconds" or (self.unit == "s" and self.kind in ("int", "float"))

    def _number(self, value):
        lo, hi = self._bounds()
        if self._seconds():
            out = units.parse_duration(value, minimum=-math.inf if lo is None else lo,
                                       maximum=hi, never=self.never)
            if self.kind == "int":
                if not out.is_integer():
                    raise units.BadValue("value.invalid_count", "invalid number {value} (a whole"
                                         " number, like 12)", value)
                return int(out)
            return out
        return units.parse_number(value, minimum=lo, maximum=hi,
                                  integer=self.kind in ("count", "int"))

    def _bool(self, value) -> int:
        if isinstance(value, str):
            low = value.strip().lower()
            if low in _TRUE:
                return 1
            if low in _FALSE:
                return 0
        elif isinstance(value, (bool, int)) and value in (0, 1):
            return int(value)
        raise ParamError("param.not_bool", "{name}={value}: expected 0 or 1", name=self.name,
                         value=value)

    def _range(self, text: str) -> str:
        parts = text.strip().replace(",", " ").replace("-", " ").split()
        if len(parts) != 2:
            raise ParamError("param.not_range",
                             "{name}={value}: expected two port numbers, LOW HIGH",
                             name=self.name, value=text)
        lo, hi = (units.parse_count(x, minimum=self.minimum, maximum=self.maximum)
                  for x in parts)
        if lo > hi:
            raise ParamError("param.range_order", "{name}={value}: LOW is above HIGH",
                             name=self.name, value=text)
        return f"{lo} {hi}"

    def _array(self, value: np.ndarray) -> np.ndarray:
        if self.kind not in ("seconds", "count", "int", "float", "bool"):
            raise ParamError("param.not_numeric", "{name}: only numeric parameters can vary in a"
                             " batch", name=self.name)
        self.check(value)
        return value.astype(float) if self.kind in ("seconds", "float") else value.astype(np.int64)
