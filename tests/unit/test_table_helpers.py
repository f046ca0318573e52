"""model/table.median and distinct: np.median's value (and np.nanmedian's,
of the values that are not NaN) and np.unique's, without numpy's import of
numpy.ma (np.median always, a plain np.unique through its hash path),
17 ms of CPU a report (issue 16). Compared with numpy's own on random
arrays of every length, parity and kind the rules give them (ages in float
seconds, integer gaps, ports, states, row numbers), and a diagnosis that
runs the rules which call them is checked not to import numpy.ma, in a
fresh process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tcplinger.model.states import TcpState
from tcplinger.model.table import MEMBER_MAX, distinct, median, member

SRC = Path(__file__).resolve().parents[2] / "src"


def _arrays(seed: int):
    rng = np.random.default_rng(seed)
    for n in (1, 2, 3, 4, 5, 8, 17, int(rng.integers(1, 2000))):
        yield rng.random(n) * 1000
        yield np.round(rng.random(n) * 100, 3)  # ties
        yield rng.integers(0, 5, n).astype(np.float64) / 3
        yield rng.integers(-5, 1 << 40, n)
        yield rng.integers(0, 1 << 16, n).astype(np.uint16)
        yield (rng.random(n) * 10).astype(np.float32)


@pytest.mark.parametrize("seed", range(25))
def test_median_is_numpys(seed):
    for values in _arrays(seed):
        want, got = np.median(values), median(values)
        assert got == want and got.dtype == want.dtype, (values, got, want)


@pytest.mark.parametrize("seed", range(25))
def test_median_of_the_known_is_nanmedian(seed):
    rng = np.random.default_rng(1000 + seed)
    for values in _arrays(seed):
        if values.dtype.kind != "f":
            continue
        values = values.copy()
        values[rng.random(len(values)) < 0.3] = np.nan
        known = ~np.isnan(values)
        if known.any():
            assert median(values[known]) == np.nanmedian(values)


def test_nan_and_empty():
    assert np.isnan(median(np.array([1.0, np.nan, 2.0])))
    with pytest.raises(ValueError):
        median(np.array([]))


@pytest.mark.parametrize("seed", range(40))
def test_distinct_is_numpys_unique(seed):
    rng = np.random.default_rng(seed)
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64, np.int64, np.int16, np.float64):
        for n in (0, 1, 2, int(rng.integers(3, 5000))):
            top = int(rng.choice([3, 200, 60_000]))
            values = rng.integers(0, top, n).astype(dtype)
            want, got = np.unique(values), distinct(values)
            assert got.dtype == want.dtype and got.tolist() == want.tolist()


PROBE = r"""
import json, sys
from tcplinger.diagnose import engine
from tcplinger.diagnose.builder import SocketBuilder, namespace
b = SocketBuilder()
# close-wait-leak (ages, the other ends), half-closed-fin-wait-2
b.add("CLOSE_WAIT", "10.0.0.1:80", "10.0.0.2:40000", recv_q=1, count=40, last_data_recv=90_000)
b.add("FIN_WAIT2", "10.0.0.2:40000", "10.0.0.1:80", count=40, timer=1, expires_ms=30_000,
      last_data_recv=90_000)
# time-wait-pressure with its culprit groups (listener, client side)
b.add("LISTEN", "10.0.0.1:80", inode=5000)
b.add("TIME_WAIT", "10.0.0.1:80", "10.0.0.3:41000", inode=0, timer=3, expires_ms=50_000,
      count=700)
b.add("TIME_WAIT", "10.0.0.1:42000", "10.0.0.9:5432", inode=0, timer=3, expires_ms=50_000,
      vary="sport", count=700)
# orphaned FIN_WAIT2 of a client (time left: the median of the known)
b.add("FIN_WAIT2", "10.0.0.1:50000", "10.0.0.8:80", inode=0, timer=1, expires_ms=20_000,
      vary="sport", count=1200, last_data_recv=30_000)
# orphaned FIN_WAIT2 of the server, their clients in CLOSE_WAIT with tcp_info
b.add("FIN_WAIT2", "10.0.0.1:80", "10.0.0.4:43000", inode=0, timer=1, expires_ms=20_000,
      count=60, last_data_recv=5000)
b.add("CLOSE_WAIT", "10.0.0.4:43000", "10.0.0.1:80", recv_q=1, vary="sport", count=60,
      last_data_recv=9000, last_ack_recv=8000)
found = engine.diagnose([namespace(b.table(), sysctls={"tcp_max_tw_buckets": 2000})])
# no socket wanted (the owner policy's inodes of a host without teardown sockets)
import numpy as np
from tcplinger.model.table import distinct
assert [len(distinct(np.array([], t))) for t in (np.uint64, np.int64, np.uint32)] == [0, 0, 0]
print(json.dumps({"findings": sorted({f.rule for f in found}), "ma": "numpy.ma" in sys.modules}))
"""


def test_a_diagnosis_does_not_import_numpy_ma():
    env = dict(os.environ, PYTHONPATH=str(SRC))
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         env=env, timeout=60, check=True)
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    # the rules that take medians and distinct values ran
    assert {"close-wait-leak", "half-closed-fin-wait-2", "time-wait-pressure",
            "orphan-fin-wait-2"} <= set(doc["findings"]), doc["findings"]
    assert doc["ma"] is False


@pytest.mark.parametrize("seed", range(20))
def test_member_is_numpys_isin(seed):
    """model/table.member (one == per choice, issue 16's 150 pods): the
    same boolean array as np.isin for every column kind the callers give
    it (states, ports, inodes, row numbers) and every kind of choices:
    lists of ints and IntEnums, arrays of other widths, values no row can
    hold (300 for uint8, negatives for unsigned, 2**64-1), duplicates,
    none, and more than MEMBER_MAX (np.isin itself)."""
    rng = np.random.default_rng(seed)
    for dtype, hi in ((np.uint8, 12), (np.uint8, 256), (np.uint16, 65536),
                      (np.uint32, 1 << 32), (np.uint64, 1 << 63), (np.int64, 1 << 40)):
        for n in (0, 1, 7, 46, int(rng.integers(1, 5000))):
            values = rng.integers(0, hi, n, dtype=np.uint64).astype(dtype)
            present = values[rng.integers(0, n, 3)].tolist() if n else []
            choice_sets = [
                [], present, present + [int(rng.integers(0, hi))],
                [int(s) for s in (TcpState.CLOSE_WAIT, TcpState.FIN_WAIT2, TcpState.LISTEN)],
                [TcpState.TIME_WAIT, TcpState.ESTABLISHED],
                [300, -1, (1 << 64) - 1] + present[:1],
                np.array(present, dtype=np.uint64), np.array(present[:2], dtype=np.uint16
                                                             if hi <= 65536 else np.uint64),
                rng.integers(0, hi, MEMBER_MAX, dtype=np.uint64).tolist(),
                rng.integers(0, hi, MEMBER_MAX + 1, dtype=np.uint64).tolist() + present,
            ]
            for choices in choice_sets:
                listed = [int(c) for c in (choices.tolist() if isinstance(choices, np.ndarray)
                                           else choices)]
                got = member(values, choices)
                assert got.dtype == np.bool_ and got.shape == values.shape
                assert got.tolist() == [v in set(listed) for v in values.tolist()], \
                    (dtype, listed)
                info = np.iinfo(dtype)
                if listed and all(info.min <= c <= info.max for c in listed):
                    want = np.isin(values, np.array(listed, dtype=dtype))
                    assert got.tolist() == want.tolist(), (dtype, listed)
