"""The columnar fast path (wire/fastpath.py, wire/restored.py) against the
per-packet engine alone, on the same captures: every connection, in the
same order, with every field the records carry (Zeek's columns, both
sides' observed facts, state timelines, notable packets), the same
findings, summary and counts. Captures: the hand-built corner cases, a
large generated mix of plain and odd connections (tests/data/wire/mix.py),
each read in blocks small enough that connections span several (so the
fast path's connections are carried across blocks and rebuilt for the
engine). The lab's real captures get the same check in
tests/privileged/test_wire_lab.py."""

import importlib.util
import io
import sys
from pathlib import Path

import pytest

from tcplinger.wire import restored
from tcplinger.wire.observe import Side
from tcplinger.wire.pcapfile import read_blocks
from tcplinger.wire.summary import Summary
from tcplinger.wire.tracker import analyse_stream

DATA = Path(__file__).resolve().parents[1] / "data" / "wire"
_spec = importlib.util.spec_from_file_location("wire_mix", DATA / "mix.py")
mix = sys.modules["wire_mix"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mix)

FIXTURES = sorted(p for p in DATA.iterdir() if p.suffix in (".pcap", ".pcapng"))
BLOCKS = (8 << 20, 1 << 16, 4096, 600)


def fingerprint(rec, found) -> tuple:
    def side(s):
        return tuple(getattr(s, k) for k in Side.__slots__)
    return (rec.to_json(packets=True), side(rec.orig_side), side(rec.resp_side),
            rec.raw_packets, rec.packets_seen, rec.orig_low, rec.first_t, rec.last_t,
            rec.capture_end, [f.to_json() for f in found])


def run(blob: bytes, block_bytes: int, columnar: bool, **opts):
    out, summary, notices = [], Summary(keep=50), []

    def emit(rec):
        out.append(fingerprint(rec, summary.add(rec)))
    counts = analyse_stream(read_blocks(io.BytesIO(blob), notices, block_bytes), emit, notices,
                            columnar=columnar, **opts)
    return out, summary.to_json(), [f.to_json() for f in summary.sorted_findings()], \
        [r.uid for r in summary.records()], counts.to_json(), notices


def same(blob: bytes, block_bytes: int, **opts):
    ref = run(blob, block_bytes, False, **opts)
    fast = run(blob, block_bytes, True, **opts)
    assert len(ref[0]) == len(fast[0])
    for i, (a, b) in enumerate(zip(ref[0], fast[0])):
        assert a == b, f"connection {i}: {a[0]['uid']}"
    assert ref[1:] == fast[1:]
    return ref


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixtures_same_on_both_paths(path, block):
    same(path.read_bytes(), block)


@pytest.fixture(scope="module")
def mixed():
    return mix.mixed(seed=7, n=1500)


@pytest.fixture(scope="module")
def mixed_small():
    """For the tiny blocks: every few packets a block boundary already, so
    fewer connections prove as much (the 600-byte run of the big mix took
    27 s of the unit suite)."""
    return mix.mixed(seed=7, n=300)


class Count:
    """How many connections the fast path made, and how many of those
    the engine had to take over (materialise) later."""

    def __init__(self, monkeypatch):
        self.made = self.rebuilt = 0
        make, materialise = restored.Restored.make.__func__, restored.Restored.materialise

        def counted_make(cls, *a):
            self.made += 1
            return make(cls, *a)

        def counted_materialise(conn):
            self.rebuilt += 1
            return materialise(conn)
        monkeypatch.setattr(restored.Restored, "make", classmethod(counted_make))
        monkeypatch.setattr(restored.Restored, "materialise", counted_materialise)


@pytest.mark.parametrize("block", BLOCKS)
def test_mixed_capture_same_on_both_paths(mixed, mixed_small, block, monkeypatch):
    count = Count(monkeypatch)
    recs = same(mixed_small if block < 4096 else mixed, block)[0]
    states = {r[0]["conn_state"] for r in recs}
    # the mix has what it should: odd endings and plain ones, both paths used
    assert {"SF", "S0", "REJ", "S1", "S2", "S3", "RSTO", "RSTR"} <= states, states
    assert count.made > len(recs) // 3, (count.made, len(recs))
    if block <= 4096:
        assert count.rebuilt > 20, count.rebuilt  # carried across blocks, then rebuilt


def test_mixed_capture_with_an_inactivity_timeout(mixed):
    same(mixed, 1 << 16, inactivity_s=2.0)


def test_mixed_capture_with_bad_checksums(monkeypatch):
    """Checksums verified (--checksums), 3% wrong: a corrupt packet leaves
    its connection to the engine; both paths give the same C letters."""
    count = Count(monkeypatch)
    recs = same(mix.mixed(seed=11, n=600, bad_sums=0.03), 4096, checksums=True)[0]
    assert sum("C" in r[0]["history"].upper() for r in recs) > 30
    assert count.made > len(recs) // 4, (count.made, len(recs))


def test_mixed_capture_by_interface_off(mixed_small):
    same(mixed_small, 4096, by_interface=False)


def test_reference_path_really_differs_in_work(mixed, monkeypatch):
    """The comparison is not vacuous: the fast path runs the per-packet
    engine on far fewer packets than the reference (the mix is mostly odd
    connections; on a busy server's capture it is under a fifth)."""
    from tcplinger.wire.connection import Connection
    calls = {"n": 0}
    process = Connection.process

    def counted(self, *a):
        calls["n"] += 1
        return process(self, *a)
    monkeypatch.setattr(Connection, "process", counted)
    run(mixed, 8 << 20, False)
    ref = calls["n"]
    calls["n"] = 0
    run(mixed, 8 << 20, True)
    assert calls["n"] < ref * 3 // 4, (calls["n"], ref)
