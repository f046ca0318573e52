"""Fork a batched simulation in two at an event-order split.

When two pending events come in a different order for different points of
a batch, the engine stops *before* running either (num.OrderSplit), so the
whole simulation is in a consistent state. Rather than simulating both
halves again from time 0, :func:`fork` copies the run and keeps, in each
copy, only its half of every per-point array. Splits inside an event
handler cannot be forked (the state is half updated); those halves are
simulated again from the start (sim/sweep.py).

>>> import numpy as np
>>> class Box:
...     def __init__(self):
...         self.t = np.array([1.0, 2.0, 3.0]); self.k = 5; self.items = [np.array([7, 8, 9])]
>>> left, right = fork(Box(), np.array([True, False, True]), 3)
>>> left.t.tolist(), right.t.tolist(), left.items[0].tolist(), right.k
([1.0, 3.0], [2.0], [7, 9], 5)
"""

from __future__ import annotations

import copy
import types

import numpy as np

_ATOMS = (int, float, str, bool, bytes, type(None), np.generic, types.FunctionType,
          types.BuiltinFunctionType, type)


def _slots(cls) -> list[str]:
    out = []
    for klass in cls.__mro__:
        s = klass.__dict__.get("__slots__", ())
        out.extend([s] if isinstance(s, str) else s)
    return out


def restrict(root, mask: np.ndarray, n: int):
    """Replace, in place and throughout the object graph, every array of
    shape (n,) by its elements where ``mask`` is true."""
    seen: set[int] = set()

    def fix(x):
        if isinstance(x, np.ndarray):
            return x[mask] if x.shape == (n,) else x
        if isinstance(x, _ATOMS):
            return x
        if isinstance(x, tuple):
            items = [fix(v) for v in x]
            return type(x)(*items) if hasattr(x, "_fields") else type(x)(items)
        if id(x) in seen:
            return x
        seen.add(id(x))
        if isinstance(x, list):
            for i, v in enumerate(x):
                x[i] = fix(v)
        elif isinstance(x, dict):
            for k, v in list(x.items()):
                x[k] = fix(v)
        elif isinstance(x, types.MethodType):
            fix(x.__self__)
        else:
            if hasattr(x, "__dict__"):
                for k, v in list(vars(x).items()):
                    object.__setattr__(x, k, fix(v))
            for slot in _slots(type(x)):
                if hasattr(x, slot):
                    object.__setattr__(x, slot, fix(getattr(x, slot)))
        return x

    fix(root)
    return root


def fork(state, mask: np.ndarray, n: int):
    """(the part of ``state`` where mask is true, the rest); the second is
    ``state`` itself, restricted."""
    left = copy.deepcopy(state)
    restrict(left, mask, n)
    restrict(state, ~mask, n)
    return left, state
