"""Sweeps: the same scenario over a grid of parameter values.

Numeric parameters (durations, counts) are simulated in *lockstep*: one
run of the engine carries a numpy array of values, one per grid point, and
every time and parameter derived from them (sim/num.py). When a decision
differs between points (a timeout above or below 60 s, one event before
or after another) the batch splits in two and each half runs again from
the start, so each point follows exactly the path a scalar run would take
(tests/unit/test_sim_sweep.py checks this point by point). Choices and
booleans group the grid instead.

>>> axes = [parse_vary("tcp_fin_timeout=30,61..63:1")]
>>> axes[0].values
('30', 61.0, 62.0, 63.0)
>>> from tcplinger.sim import presets
>>> make = lambda v: presets.build("linux-orphan-fin-wait-2", v)
>>> pts = run_sweep(make, axes, kinds={"tcp_fin_timeout": "seconds"})
>>> [round(p.lingering["client"], 3) for p in pts.points()]
[31.026, 2.036, 4.036, 6.26]
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..model import units
from ..model.params import ParamError
from ..model.states import name as state_name
from ..model.timeline import TEARDOWN_STATES
from .fork import fork
from .num import OrderSplit, Split, scalar
from .scenario import from_document
from .simulation import Run

#: Grid points simulated together at most (memory and split cost).
CHUNK = 16384
#: Grid points of one sweep at most: 100 000 take ~8 s and 60 MB here, a
#: million ~90 s and 200 MB (`sim sweep --preset linux-orphan-fin-wait-2
#: --vary tcp_fin_timeout=1..1000000:1`); bench/sim_speed.py's largest grid
#: is 100 000.
MAX_POINTS = 200_000


@dataclass(frozen=True)
class Axis:
    key: str
    values: tuple


def _range(text: str) -> list[float] | None:
    """``START..STOP:STEP`` (inclusive) as numbers, or None."""
    if ".." not in text:
        return None
    head, _, step = text.partition(":")
    a, _, b = head.partition("..")
    try:
        start, stop = (units.parse_number(x, minimum=None, maximum=units.LONGEST) for x in (a, b))
        step_v = units.parse_number(step, maximum=units.LONGEST) if step else 1.0
    except units.BadValue as exc:
        raise ParamError("param.range_syntax", "bad range {text} (START..STOP:STEP): {reason}",
                         text=repr(text), reason=exc) from None
    if step_v <= 0 or stop < start:
        raise ParamError("param.range_bounds", "bad range {text} (START <= STOP, STEP > 0)",
                         text=repr(text))
    n = int(math.floor((stop - start) / step_v + 1e-9)) + 1
    if n > MAX_POINTS:
        raise ParamError("param.range_points", "range {text!r} has {n} points (at most {max})",
                         text=text, n=n, max=MAX_POINTS)
    return [start + i * step_v for i in range(n)]


def parse_vary(text: str) -> Axis:
    """``key=v1,v2,...``; an item may be a range ``a..b:step``."""
    key, sep, rest = text.partition("=")
    if not sep or not key.strip() or not rest.strip():
        raise ParamError("param.vary_format", "--vary needs KEY=V1,V2,... (got {text})",
                         text=repr(text))
    values: list = []
    for item in rest.split(","):
        item = item.strip()
        if not item:
            continue
        rng = _range(item)
        values.extend(rng if rng is not None else [item])
    if not values:
        raise ParamError("param.vary_empty", "--vary {key}: no values", key=key)
    return Axis(key.strip(), tuple(values))


@dataclass(frozen=True)
class Point:
    values: dict
    #: party -> seconds from the first teardown state to forgetting (None:
    #: held at the horizon, or no teardown)
    lingering: dict
    #: party -> {STATE: seconds} (None: still held at the horizon)
    states: dict
    #: party -> time the connection was forgotten (None: held)
    forgotten: dict

    def to_json(self) -> dict:
        return {"values": self.values, "parties": {
            p: {"lingering_s": self.lingering[p], "forgotten_at_s": self.forgotten[p],
                "states": self.states[p]} for p in self.states}}


def _none(x: float):
    return None if math.isnan(x) else float(x)


class SweepResult:
    """Columns, one entry per grid point (NaN: held at the horizon, or no
    teardown for ``lingering``). ``values[key]`` is a numpy array for
    numeric keys, a list otherwise."""

    def __init__(self, keys: list[str], values: dict, n: int):
        self.keys = keys
        self.n = n
        self.values = values
        self.parties: list[str] = []
        self.lingering: dict[str, np.ndarray] = {}
        self.forgotten: dict[str, np.ndarray] = {}
        self.states: dict[str, dict[str, np.ndarray]] = {}

    def _party(self, name: str) -> None:
        if name not in self.lingering:
            self.parties.append(name)
            self.lingering[name] = np.full(self.n, np.nan)
            self.forgotten[name] = np.full(self.n, np.nan)
            self.states[name] = {}

    def store(self, run: Run, where: np.ndarray) -> None:
        """Columns of one (batched or scalar) run into rows ``where``.

        Spans are clipped at the horizon: in a batch, points that reached
        it ride along inactive while the others go on (engine.py), so a
        span may start after the horizon (it did not happen) or end after
        it (it is still held)."""
        horizon = float(run.scenario.horizon_s)
        holders = [(ep.name, ep.spans, True) for ep in run.endpoints()]
        holders += [(mb.name, mb.spans, False) for mb in run.middleboxes]
        m = len(where)

        def col_of(x):
            return np.broadcast_to(np.asarray(np.nan if x is None else x, float), (m,))

        for name, spans, endpoint in holders:
            self._party(name)
            first = np.full(m, np.nan)
            last_end = np.full(m, np.nan)  # NaN: held (or never held)
            seen = np.zeros(m, dtype=bool)
            for span in spans:
                st, a, b = span[0], col_of(span[1]), col_of(span[2])
                present = a <= horizon
                held = present & (np.isnan(b) | (b > horizon))
                key = state_name(st)
                col = self.states[name].get(key)
                if col is None:
                    col = self.states[name][key] = np.zeros(self.n)
                rows = col[where]
                rows = np.where(present & ~held, rows + (b - a), rows)
                rows = np.where(held, np.nan, rows)
                col[where] = rows
                if st in TEARDOWN_STATES:
                    first = np.where(present & np.isnan(first), a, first)
                last_end = np.where(present, np.where(held, np.nan, b), last_end)
                seen |= present
            self.forgotten[name][where] = np.where(seen, last_end, np.nan)
            if endpoint:
                self.lingering[name][where] = last_end - first

    def value(self, key: str, i: int):
        v = self.values[key][i]
        return scalar(v)

    def point(self, i: int) -> Point:
        values = {k: self.value(k, i) for k in self.keys}
        states = {}
        for p in self.parties:
            states[p] = {s: _none(col[i]) for s, col in self.states[p].items()
                         if math.isnan(col[i]) or col[i] != 0.0}
        return Point(values, {p: _none(self.lingering[p][i]) for p in self.parties}, states,
                     {p: _none(self.forgotten[p][i]) for p in self.parties})

    def points(self):
        return [self.point(i) for i in range(self.n)]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Point:
        return self.point(i)


def run_sweep(make_document: Callable[[dict], dict], axes: list[Axis], kinds: dict,
              horizon_s: float | None = None, progress: Callable[[int, int], None] | None = None,
              batch: bool = True) -> SweepResult:
    """Simulate every point of the grid (the cartesian product of ``axes``).

    ``make_document(values)`` builds the scenario document for a dict of
    values (strings, numbers or, for numeric keys in batch mode, arrays);
    ``kinds`` maps each varied key to its parameter kind ("seconds",
    "count", "bool", "choice", "text").
    """
    keys = [a.key for a in axes]
    shape = tuple(len(a.values) for a in axes)
    total = math.prod(shape)
    if total > MAX_POINTS:
        raise ParamError("param.grid_points", "the grid has {n} points (at most {max})", n=total,
                         max=MAX_POINTS)
    numeric = [k for k in keys if kinds.get(k) in ("seconds", "count")]
    # one index array per axis: point i uses axis value idx[k][i]
    idx = dict(zip(keys, np.unravel_index(np.arange(total), shape)))
    axis_values, values = {}, {}
    for a in axes:
        if a.key in numeric:
            arr = np.array([_axis_number(a.key, kinds[a.key], v) for v in a.values])
            if kinds[a.key] == "count":
                arr = arr.astype(np.int64)
            axis_values[a.key] = arr
            values[a.key] = arr[idx[a.key]]
        else:
            axis_values[a.key] = list(a.values)
            values[a.key] = [a.values[j] for j in idx[a.key]]
    result = SweepResult(keys, values, total)
    done = 0

    def finish(n):
        nonlocal done
        done += n
        if progress:
            progress(done, total)

    def doc_for(values: dict) -> dict:
        doc = make_document(values)
        if horizon_s is not None:
            doc["horizon"] = horizon_s
        return doc

    if not batch or not numeric:
        for i in range(total):
            point = {k: result.value(k, i) for k in keys}
            run = Run(from_document(doc_for(point)), record=False).run()
            result.store(run, np.array([i]))
            finish(1)
        return result

    # group by the non-numeric keys; batch the numeric ones
    fixed_keys = [k for k in keys if k not in numeric]
    for combo in itertools.product(*(range(len(axis_values[k])) for k in fixed_keys)):
        mask = np.ones(total, dtype=bool)
        for k, j in zip(fixed_keys, combo):
            mask &= idx[k] == j
        fixed = {k: axis_values[k][j] for k, j in zip(fixed_keys, combo)}
        _run_batched(np.nonzero(mask)[0], fixed, {k: values[k] for k in numeric}, doc_for,
                     result, finish)
    return result


def _run_batched(members: np.ndarray, fixed: dict, columns: dict, doc_for, result: SweepResult,
                 finish) -> None:
    """The grid points ``members`` (sharing the ``fixed`` values) in
    lockstep batches of at most CHUNK, split where their paths part: at an
    event-order difference the run is forked where it stands, inside an
    event both halves start again (sim/num.py)."""
    stack = [(members[i:i + CHUNK], None) for i in range(0, len(members), CHUNK)]
    while stack:
        sub, run = stack.pop()
        try:
            if run is None:
                point = dict(fixed)
                point.update({k: col[sub] for k, col in columns.items()})
                run = Run(from_document(doc_for(point)), batch=True, record=False)
            run.run()  # starts, or resumes a forked run
        except OrderSplit as s:
            left, right = fork(run, s.mask, len(sub))
            stack.append((sub[~s.mask], right))
            stack.append((sub[s.mask], left))
            continue
        except Split as s:
            stack.append((sub[~s.mask], None))
            stack.append((sub[s.mask], None))
            continue
        result.store(run, sub)
        finish(len(sub))


def _axis_number(key: str, kind: str, value) -> float:
    """A numeric axis value in the one grammar (model/units.py): seconds
    take durations; the parameter's own bounds are checked later, on the
    whole column (Param.check)."""
    try:
        if kind == "seconds":
            return units.parse_duration(value, minimum=-math.inf, maximum=math.inf, never=True)
        return float(units.parse_number(value, minimum=None, maximum=math.inf,
                                        integer=kind == "count"))
    except units.BadValue as exc:
        raise ParamError("param.vary_value", "--vary {key}: {reason}", key=key,
                         reason=exc) from None
