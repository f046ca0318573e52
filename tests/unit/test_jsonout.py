"""The fast ls --json writer gives exactly SocketRecord.to_json()."""

import json
import socket

import numpy as np
from hypothesis import given, settings, strategies as hs

from tcplinger.export import jsonout
from tcplinger.model.socket import Age, AgeSource, NetnsRef, Owner, UNKNOWN_AGE
from tcplinger.model.table import SocketTable, TCP_INFO_DTYPE, empty

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
