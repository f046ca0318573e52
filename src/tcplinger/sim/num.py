"""Arithmetic that works on one scenario or on a whole sweep at once.

The simulator's times and parameters are either Python numbers (``sim
run``: one scenario) or numpy arrays holding one value per grid point
(``sim sweep``: every point of a grid simulated in lockstep). Arithmetic
(+, -, *, /) works on both as is. A *decision* (``if a < b``) can only be
taken when it comes out the same for every point of the batch:
:func:`truth` returns it, or raises :class:`Split` with the mask of the
points for which it is true, and the sweep runs the two halves separately
(sim/sweep.py). Python itself refuses ``if array:`` for arrays of more
than one element, so a decision that forgot to go through :func:`truth`
fails loudly instead of giving wrong results.

>>> import numpy as np
>>> truth(3 < 4), truth(np.array([1, 2]) < 5)
(True, True)
>>> try:
...     truth(np.array([1, 9]) < 5)
... except Split as s:
...     print(s.mask)
[ True False]
>>> minimum(2.0, 3.0), maximum(np.array([1.0, 5.0]), 2.0).tolist()
(2.0, [2.0, 5.0])
"""

from __future__ import annotations

import math

import numpy as np


class Split(Exception):
    """A decision differs across the batch: ``mask`` is True where the
    condition holds."""

    def __init__(self, mask: np.ndarray):
        super().__init__("decision differs across the batch")
        self.mask = mask


class OrderSplit(Split):
    """The order of the next two events differs across the batch. Raised
    before the event runs, so the simulation is in a consistent state and
    can be forked (sim/fork.py) instead of restarted."""


#: Points of the running batch that are still simulated: a point whose
#: next event lies beyond the horizon rides along inactive (its results are
#: clipped at the horizon, sim/sweep.py), and decisions ignore it.
_active: np.ndarray | None = None


def set_active(mask: np.ndarray | None) -> None:
    global _active
    _active = mask


def truth(cond) -> bool:
    """The value of a decision, the same for all (active) points of the
    batch."""
    if isinstance(cond, np.ndarray):
        live = cond if _active is None or cond.shape != _active.shape else cond[_active]
        if live.all():
            return True
        if not live.any():
            return False
        mask = np.asarray(cond, dtype=bool)
        if _active is not None and cond.shape == _active.shape:
            mask = mask | ~_active  # inactive points go either way: send them left
        raise Split(mask)
    return bool(cond)


def is_batch(x) -> bool:
    return isinstance(x, np.ndarray)


def minimum(a, b):
    if is_batch(a) or is_batch(b):
        return np.minimum(a, b)
    return a if a <= b else b


def maximum(a, b):
    if is_batch(a) or is_batch(b):
        return np.maximum(a, b)
    return a if a >= b else b


def floor(x):
    if is_batch(x):
        return np.floor(x)
    return float(math.floor(x))


def ceil(x):
    if is_batch(x):
        return np.ceil(x)
    return float(math.ceil(x))


def where(cond, a, b):
    """Elementwise choice without a decision (both sides are computed)."""
    if is_batch(cond):
        return np.where(cond, a, b)
    return a if cond else b


def to_int(x):
    """Integer-valued parameter (a count): numpy int64 array or int."""
    if is_batch(x):
        return x.astype(np.int64)
    return int(x)


def scalar(x, i: int | None = None):
    """One point's value: ``x`` itself when it is a plain number."""
    if is_batch(x):
        return x.item() if i is None else x[i].item()
    if isinstance(x, np.generic):
        return x.item()
    return x
