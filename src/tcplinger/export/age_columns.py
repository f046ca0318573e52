"""The age columns of ``ls --json``'s socket objects, a block of rows at a
time (export/socket_array.py writes them into its record matrix).

Made per block rather than for the whole table: at 1M rows the whole-table
columns (milliseconds, sources, flags and their temporaries) were 30 MB
more at the peak of ``ls --json`` (205-211 MB).
"""

from __future__ import annotations

import numpy as np

from ..model.table import SocketTable
from ..track import age as age_mod

#: Ages the matrix writes as digits: round(x, 3) of such an x prints as
#: its milliseconds with trailing zeros dropped (repr() gives the shortest
#: round-tripping string, and below 1e12 no shorter one than that exists).
AGE_MAX = 1e12


class BlockAges:
    """Ages of rows lo..hi, from the (exact, lower bound) seconds of
    track.age.age_arrays() or the tracked (seconds, at_least, source codes)
    triple, as the record matrix writes them: ``known``, ``millis``
    (rounded, int64), ``at_least``, ``source`` (codes of socket_array's
    _SOURCE_V: 1 timer, 2 last_recv, 5 since_close), and ``per_row``: rows
    the matrix cannot express (a negative timer, an age outside 0..AGE_MAX s
    or on an exact half millisecond, where rint's tie rule and round(x, 3)
    on the decimal value could differ).

    >>> from tcplinger.model.table import empty
    >>> rows = empty(3)
    >>> rows["state"] = [6, 5, 1]
    >>> a = BlockAges(rows, np.array([1.5, np.nan, np.nan]), np.array([np.nan, 2.0, np.nan]),
    ...               None, 0, 3)
    >>> a.known.tolist(), a.millis.tolist(), a.source.tolist(), a.at_least.tolist()
    ([True, True, False], [1500, 2000, 0], [1, 5, 0], [False, True, False])
    """

    def __init__(self, rows: np.ndarray, exact: np.ndarray, bound: np.ndarray, tracked,
                 lo: int, hi: int):
        self.lo, self.hi = lo, hi
        exact, bound = exact[lo:hi], bound[lo:hi]
        timed = ~np.isnan(exact)
        value = np.where(timed, exact, bound)
        known = ~np.isnan(value)
        with np.errstate(invalid="ignore", over="ignore"):
            millis = np.where(known, value, 0.0) * 1000.0
            rounded = np.rint(millis)
            ok = ~known | ((value >= 0) & (value < AGE_MAX) & ~np.signbit(value)
                           & (np.abs(np.abs(millis - rounded) - 0.5) > 1e-6))
        self.known = known
        if tracked is not None:
            self.source = np.where(known, np.asarray(tracked[2])[lo:hi], 0).astype(np.int8)
            self.at_least = np.asarray(tracked[1], bool)[lo:hi] & known
        else:
            orphan = age_mod.since_close_mask(SocketTable(rows[lo:hi]))
            lower = np.where(orphan, np.int8(5), np.int8(2))
            self.source = np.where(timed, np.int8(1), np.where(known, lower, np.int8(0)))
            self.at_least = known & ~timed
        self.millis = np.where(known & ok, rounded, 0).astype(np.int64)
        self.per_row = ~ok | (rows["expires_ms"][lo:hi] < 0)

    def local(self, idx):
        """``idx`` (rows of the table: a slice or an index array) as
        positions in this block."""
        if isinstance(idx, slice):
            return slice(idx.start - self.lo, idx.stop - self.lo)
        return idx - self.lo
