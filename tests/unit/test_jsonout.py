"""The fast ls --json writer gives exactly SocketRecord.to_json()."""

import json
import socket

import numpy as np
from hypothesis import given, settings, strategies as hs

from tcplinger.export import jsonout, socket_array
from tcplinger.model.socket import Age, AgeSource, NetnsRef, Owner, UNKNOWN_AGE
from tcplinger.model.table import SocketTable, TCP_INFO_DTYPE, empty
from tcplinger.track.age import bound_sources

row = hs.fixed_dictionaries({
    "family": hs.sampled_from([2, 10]),
    "state": hs.sampled_from(list(range(1, 13))),
    "timer": hs.integers(0, 4),
    "retrans": hs.integers(0, 255),
    "timewait": hs.booleans(),
    "shutdown": hs.integers(-1, 3),
    "sport": hs.integers(0, 65535),
    "dport": hs.integers(0, 65535),
    "expires_ms": hs.integers(0, 10**7),
    "uid": hs.integers(0, 2**32 - 1),
    "inode": hs.sampled_from([0, 1, 12345, 2**32 - 1]),
    "cookie": hs.integers(0, 2**64 - 1),
    "recv_q": hs.integers(0, 2**32 - 1),
    "send_q": hs.integers(0, 2**32 - 1),
    "saddr": hs.binary(min_size=16, max_size=16),
    "daddr": hs.binary(min_size=16, max_size=16),
})


def _table(dicts, with_info):
    rows = empty(len(dicts))
    for i, d in enumerate(dicts):
        for k, v in d.items():
            rows[i][k] = np.void(v) if k in ("saddr", "daddr") else v
    info = None
    if with_info:
        info = np.zeros(len(dicts), TCP_INFO_DTYPE)
        info["present"][::2] = True
        info["last_ack_recv"] = 1234
    return SocketTable(rows, info)


@settings(max_examples=60, deadline=None)
@given(hs.lists(row, min_size=1, max_size=8), hs.booleans())
def test_same_as_records(dicts, with_info):
    table = _table(dicts, with_info)
    ns = NetnsRef(4026531840, "blue", None)
    owners = {12345: (Owner(10, "srv", 3, "srv --x", "root"),)}
    ages = [Age(1.5, False, AgeSource.TIMER) if i % 2 else UNKNOWN_AGE for i in range(len(table))]
    got = [json.loads(s) for s in jsonout.socket_objects(table, netns=ns, owners=owners, ages=ages)]
    want = [table.record(i, netns=ns, owners=owners.get(int(table.rows["inode"][i]), ())
                         if table.rows["inode"][i] else (), age=ages[i]).to_json()
            for i in range(len(table))]
    assert got == want


def test_write_array_streams_valid_json():
    out = []
    jsonout.write_array(out.append, "sockets", (json.dumps({"i": i}) for i in range(10000)))
    doc = json.loads("{" + "".join(out) + "}")
    assert [d["i"] for d in doc["sockets"]] == list(range(10000))


def test_empty_table():
    assert list(jsonout.socket_objects(SocketTable())) == []


def test_ipv4_mapped_address_reads_like_ss():
    d = dict(family=10, saddr=bytes(10) + b"\xff\xff" + socket.inet_aton("10.0.0.1"),
             daddr=bytes(15) + b"\x01")
    table = _table([d], False)
    obj = json.loads(next(jsonout.socket_objects(table)))
    assert obj["local"]["address"] == "::ffff:10.0.0.1"
    assert obj["remote"]["address"] == "::1"


def test_age_arrays_same_as_age_list():
    from tcplinger.model.kernel import KernelContext
    from tcplinger.track import age as age_mod
    rows = empty(4)
    rows["state"] = [6, 5, 8, 1]
    rows["timer"] = [3, 3, 0, 0]
    rows["timewait"] = [True, True, False, False]
    rows["expires_ms"] = [59000, 1500, 0, 0]
    info = np.zeros(4, TCP_INFO_DTYPE)
    info["present"][2] = True
    info["last_ack_recv"][2] = 4200
    table = SocketTable(rows, info)
    k = KernelContext(sysctls={"tcp_fin_timeout": 2})
    a = [json.loads(s)["age"] for s in jsonout.socket_objects(table, ages=age_mod.age_arrays(table, k))]
    b = [json.loads(s)["age"] for s in jsonout.socket_objects(table, ages=age_mod.ages(table, k))]
    assert a == b
    assert a[2] == {"seconds": 4.2, "at_least": True, "source": "last_recv"}
    assert a[3]["source"] == "unknown"


@settings(max_examples=30, deadline=None)
@given(hs.lists(row, min_size=1, max_size=6), hs.booleans())
def test_iter_records_same_as_record(dicts, with_info):
    from tcplinger.model.table import iter_records
    table = _table(dicts, with_info)
    owners = {12345: (Owner(10, "srv", 3),)}
    fast = list(iter_records(table, owners=owners))
    slow = [table.record(i, owners=owners.get(int(table.rows["inode"][i]), ())
                         if table.rows["inode"][i] else ()) for i in range(len(table))]
    assert fast == slow


def test_concat_with_empty_parts():
    a, b = empty(0), empty(3)
    b["cookie"] = [1, 2, 3]
    t = SocketTable.concat([SocketTable(a), SocketTable(b), SocketTable(empty(0))])
    assert t.rows["cookie"].tolist() == [1, 2, 3] and t.rows["shutdown"].tolist() == [-1] * 3


# ---- the columnar writer (ls --json) ------------------------------------------

ages_values = hs.one_of(
    hs.just(float("nan")), hs.just(0.0), hs.just(-0.0), hs.just(0.001), hs.just(59.999),
    hs.just(0.0005), hs.just(2.5e-4), hs.just(1e12), hs.just(123456789.5),
    hs.integers(0, 10**9).map(lambda ms: ms / 1000.0),
    hs.integers(0, 3600 * 1000).map(lambda ms: 60.0 - ms / 1000.0),
    hs.floats(min_value=-10, max_value=1e13), hs.floats())

fast_row = row.map(dict) | hs.fixed_dictionaries({
    "family": hs.just(10),
    "state": hs.sampled_from([1, 6, 8, 10]),
    "expires_ms": hs.integers(-5, 10**6),
    "inode": hs.sampled_from([0, 12345, 777]),
    "saddr": hs.sampled_from([bytes(16), bytes(15) + b"\x01",
                              bytes(10) + b"\xff\xff" + bytes([10, 1, 2, 3]),
                              bytes.fromhex("20010db8000000000000000000000042")]),
    "daddr": hs.binary(min_size=16, max_size=16),
})


def _fast(table, *, netns=None, owners=None, ages=None, block=3):
    import io
    out = io.BytesIO()
    socket_array.SocketArray(out.write, block=block).add(table, netns=netns, owners=owners, ages=ages)
    text = out.getvalue().decode("ascii")
    return json.loads("[" + text + "]")


def _expected(table, *, netns=None, owners=None, exact=None, bound=None):
    owners = owners or {}
    out = []
    # an orphan's lower bound counts from close() (track.age.bound_sources)
    lower = bound_sources(table)
    for i in range(len(table)):
        if exact is not None and exact[i] == exact[i]:
            age = Age(float(exact[i]), False, AgeSource.TIMER)
        elif bound is not None and bound[i] == bound[i]:
            age = Age(float(bound[i]), True, lower[i])
        else:
            age = UNKNOWN_AGE
        ino = int(table.rows["inode"][i])
        out.append(table.record(i, netns=netns, owners=owners.get(ino, ()) if ino else (),
                                age=age).to_json())
    return out


@settings(max_examples=150, deadline=None)
@given(hs.lists(fast_row, min_size=1, max_size=12), hs.booleans(),
       hs.lists(ages_values, min_size=12, max_size=12),
       hs.lists(ages_values, min_size=12, max_size=12),
       hs.booleans(), hs.integers(1, 5))
def test_columnar_writer_same_as_records(dicts, with_info, exact, bound, with_owners, block):
    table = _table(dicts, with_info)
    if with_info:
        rng = np.random.default_rng(len(dicts))
        for name in ("rto", "last_data_recv", "total_retrans", "probes"):
            table.info[name] = rng.integers(0, np.iinfo(table.info[name].dtype).max,
                                            len(dicts), endpoint=True)
    n = len(table)
    exact = np.array(exact[:n])
    bound = np.array(bound[:n])
    ns = NetnsRef(4026531840, "blue", None) if with_owners else None
    owners = {12345: (Owner(10, "srv", 3, "srv --x \u00e9", "root"), Owner(11, "w", 4)),
              777: (Owner(12, 'q"uote', 9),)} if with_owners else None
    got = _fast(table, netns=ns, owners=owners, ages=(exact, bound), block=block)
    assert got == _expected(table, netns=ns, owners=owners, exact=exact, bound=bound)


def test_columnar_writer_without_ages_and_across_calls():
    import io
    rows = empty(5)
    rows["family"] = 2
    rows["state"] = [10, 1, 1, 6, 8]
    rows["saddr"] = [bytes([10, 0, 0, i]) + bytes(12) for i in range(5)]
    rows["cookie"] = [2**64 - 1, 0, 1, 10**10, 7]
    out = io.BytesIO()
    array = socket_array.SocketArray(out.write, block=2)
    array.add(SocketTable(rows[:3]))
    array.add(SocketTable(empty(0)))
    array.add(SocketTable(rows[3:]), netns=NetnsRef(1, "x", "docker:abc"))
    doc = json.loads("[" + out.getvalue().decode() + "]")
    assert [d["cookie"] for d in doc] == [2**64 - 1, 0, 1, 10**10, 7]
    assert [d["local"]["address"] for d in doc] == [f"10.0.0.{i}" for i in range(5)]
    assert [d["netns"] for d in doc] == [None] * 3 + [{"inode": 1, "name": "x",
                                                      "container": "docker:abc"}] * 2
    # one object per line, as before
    assert out.getvalue().count(b"\n") == 4


def test_columnar_writer_big_block_matches_per_row_writer():
    """Many rows, few distinct addresses, interleaved tcp_info rows."""
    rng = np.random.default_rng(7)
    n = 5000
    rows = empty(n)
    rows["family"] = rng.choice([2, 10], n, p=[0.9, 0.1])
    rows["state"] = rng.choice([1, 5, 6, 8, 10], n)
    rows["sport"] = rng.integers(0, 65536, n)
    rows["dport"] = rng.integers(0, 65536, n)
    rows["cookie"] = rng.integers(0, 2**63, n)
    rows["inode"] = rng.integers(0, 2**33, n)
    rows["expires_ms"] = rng.integers(0, 60000, n)
    rows["timer"] = rng.integers(0, 5, n)
    rows["shutdown"] = rng.integers(-1, 4, n)
    addrs = [bytes([127, 0, 0, i]) + bytes(12) for i in range(20)]
    rows["saddr"] = [addrs[i] for i in rng.integers(0, 20, n)]
    rows["daddr"] = [addrs[i] for i in rng.integers(0, 20, n)]
    info = np.zeros(n, TCP_INFO_DTYPE)
    info["present"] = rng.random(n) < 0.3
    info["last_ack_recv"] = rng.integers(0, 10**7, n)
    table = SocketTable(rows, info)
    exact = np.where(rng.random(n) < 0.2, rows["expires_ms"] / 1000.0, np.nan)
    bound = np.where(info["present"], info["last_ack_recv"] / 1000.0, np.nan)
    got = _fast(table, ages=(exact, bound), block=1024)
    want = [json.loads(s) for s in jsonout.socket_objects(table, ages=(exact, bound))]
    assert got == want


def test_columnar_writer_rows_it_cannot_express():
    """A negative timer and ages outside 0..1e12 s go through the per-row
    writer, in their place among the others."""
    rows = empty(6)
    rows["family"] = 2
    rows["state"] = 6
    rows["expires_ms"] = [5, -3, 7, 0, 1, 2]
    exact = np.array([1.5, 2.0, float("inf"), -0.0, 1e13, 0.0005])
    bound = np.full(6, np.nan)
    table = SocketTable(rows)
    got = _fast(table, ages=(exact, bound), block=4)
    assert got == _expected(table, exact=exact, bound=bound)
    assert [d["timer"]["expires_ms"] for d in got] == [5, -3, 7, 0, 1, 2]


def test_concat_keeps_tcp_info_aligned():
    a, b, c = empty(2), empty(0), empty(3)
    info = np.zeros(3, TCP_INFO_DTYPE)
    info["present"] = [True, False, True]
    info["rto"] = [201000, 0, 4294967295]
    t = SocketTable.concat([SocketTable(a), SocketTable(b, np.zeros(0, TCP_INFO_DTYPE)),
                            SocketTable(c, info)])
    assert t.info["present"].tolist() == [False, False, True, False, True]
    assert t.info["rto"].tolist() == [0, 0, 201000, 0, 4294967295]
    empty_both = SocketTable.concat([SocketTable(empty(0), np.zeros(0, TCP_INFO_DTYPE)),
                                     SocketTable(empty(0))])
    assert len(empty_both) == 0 and len(empty_both.info) == 0


def test_columnar_writer_memory_is_per_block():
    """The age columns are made a block at a time (export/age_columns.py):
    writing 400k rows allocates, beyond the table and its ages, the address
    codes and a block's matrices (33 bytes a row here, 10 MB of it the
    block), not also whole-table age columns and their temporaries (60
    bytes a row; ls --json at 1M peaked at 205-211 MB with them, 182-186 MB
    without)."""
    import tracemalloc
    n = 400_000
    rows = empty(n)
    rows["family"] = 2
    rows["state"] = np.resize([1, 5, 6, 8], n)
    rows["expires_ms"] = np.resize([0, 3000, 59_000, 0], n)
    rows["inode"] = np.resize([7, 0, 0, 9], n)
    rows["sport"] = np.arange(n) % 60000
    exact = np.where(rows["state"] == 6, 1.0, np.nan)
    bound = np.where(rows["state"] == 8, 2.5, np.nan)
    tracemalloc.start()
    try:
        array = socket_array.SocketArray(lambda b: None, block=16384)
        array.add(SocketTable(rows), ages=(exact, bound))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 45 * n, f"{peak / n:.1f} bytes a row"
