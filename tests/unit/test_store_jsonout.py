"""Tracked ages (from the watch database) through export/jsonout.py: the
fast block writer and the per-object path agree, and every source and the
at_least flag come out as the tracker merged them."""

import io
import json

import numpy as np

from tcplinger.export import jsonout, socket_array
from tcplinger.model.table import SocketTable, empty
from tcplinger.track.events import FIRST_SEEN, LAST_RECV, TIMER, TRACE, UNKNOWN, TrackedAges


def table(n):
    rows = empty(n)
    rows["state"] = 8
    rows["family"] = 2
    rows["sport"] = np.arange(n) + 1000
    rows["cookie"] = np.arange(n) + 1
    rows["expires_ms"] = 0
    rows["expires_ms"][-1] = -5  # forces the per-object path for one row
    return SocketTable(rows)


AGES = TrackedAges(
    seconds=np.array([1.5, 30.0, 12.25, 4.0, np.nan, 0.0005, 7.0]),
    at_least=np.array([False, False, True, True, False, False, True]),
    source=np.array([TRACE, TIMER, FIRST_SEEN, LAST_RECV, UNKNOWN, FIRST_SEEN, TRACE], np.int8))

WANT = [
    {"seconds": 1.5, "at_least": False, "source": "trace"},
    {"seconds": 30.0, "at_least": False, "source": "timer"},
    {"seconds": 12.25, "at_least": True, "source": "first_seen"},
    {"seconds": 4.0, "at_least": True, "source": "last_recv"},
    {"seconds": None, "at_least": False, "source": "unknown"},
    {"seconds": 0.001, "at_least": False, "source": "first_seen"},
    {"seconds": 7.0, "at_least": True, "source": "trace"},
]


def fast(tab, ages, block):
    out = io.BytesIO()
    socket_array.SocketArray(out.write, block=block).add(tab, ages=ages)
    return json.loads("[" + out.getvalue().decode("ascii") + "]")


def test_fast_writer_keeps_source_and_bound():
    tab = table(7)
    for block in (1, 3, 100):
        got = [s["age"] for s in fast(tab, AGES.as_tuple(), block)]
        assert got == WANT, block


def test_object_path_agrees():
    tab = table(7)
    got = [json.loads(s)["age"] for s in jsonout.socket_objects(tab, ages=AGES.as_tuple())]
    assert got == WANT


def test_to_ages_matches():
    ages = AGES.to_ages()
    assert [a.to_json() for a in ages] == WANT
