"""Sparklines: a series as a row of block characters.

>>> sparkline([0, 1, 2, 3, 4, 5, 6, 7])
'▁▂▃▄▅▆▇█'
>>> sparkline([5, 5, 5])
'▁▁▁'
>>> sparkline(list(range(100)), width=10)
'▁▂▃▃▄▅▆▆▇█'
>>> sparkline([])
''
"""

from __future__ import annotations

import numpy as np

BLOCKS = "▁▂▃▄▅▆▇█"


def resample(values, width: int) -> np.ndarray:
    """Means of ``width`` equal slices (or the values when fewer)."""
    v = np.asarray(values, float)
    if len(v) <= width:
        return v
    edges = np.linspace(0, len(v), width + 1).astype(int)
    return np.array([v[a:b].mean() for a, b in zip(edges, edges[1:])])


def sparkline(values, width: int = 40, lo: float | None = None, hi: float | None = None) -> str:
    v = resample(values, width)
    if len(v) == 0:
        return ""
    lo = float(v.min()) if lo is None else lo
    hi = float(v.max()) if hi is None else hi
    if hi <= lo:
        return BLOCKS[0] * len(v)
    idx = np.clip(((v - lo) / (hi - lo) * (len(BLOCKS) - 1)).round().astype(int), 0,
                  len(BLOCKS) - 1)
    return "".join(BLOCKS[i] for i in idx)
